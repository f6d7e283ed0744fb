"""Trust at the HTTP edge (issue 11): tokens carry an identity and scopes, bodies are limited while they
stream, malformed JSON is a 400 that says where, and a Temporal outage is answered fast."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from domain.config import ConfigError, IncidentflowConfig, Settings, load_config
from incidentflow.api import create_app
from tests.conftest import binary, running_worker
from tests.helpers import eventually, uvicorn_serving
from workflows import search_attributes as sa

ROOT = Path(__file__).parent.parent
READER, WRITER, APPROVER, BOT, ADMIN = "rd-7f3a9c", "wr-51be0d", "ap-c04e77", "bt-9a2f61", "admin-secret"
RUNBOOK = """name: say-hello
title: Say hello
description: An approval, then a line on the timeline.
approvers: [bob]
steps:
  - {kind: approval, name: approve, prompt: "Say hello?"}
  - {kind: notify, name: hello, text: "hello from {{ incident.id }}"}
"""


def sha(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def tokens_config() -> IncidentflowConfig:
    people = [{"id": p, "name": p.title()} for p in ("alice", "bob", "carol", "dan")]
    return IncidentflowConfig.model_validate({"people": people, "api_tokens": [
        {"name": "dashboard", "person": "carol", "scopes": ["read"], "hash": sha(READER)},
        {"name": "alice-cli", "person": "alice", "scopes": ["read", "write"], "hash": sha(WRITER)},
        {"name": "bob-approver", "person": "bob", "scopes": ["read", "write", "approve"], "hash": sha(APPROVER)},
        {"name": "chatbot", "scopes": ["read", "write", "act-as"], "hash": sha(BOT)}]})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def client_for(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")  # type: ignore[arg-type]


@pytest.fixture
async def api(dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    (tmp_path / "say-hello.yaml").write_text(RUNBOOK)
    config = tokens_config()
    async with running_worker(dev_env.client, config=lambda: config, runbooks_dir=str(tmp_path)) as (settings, _):
        settings = Settings.model_validate({**settings.model_dump(), "api_token": ADMIN})
        async with client_for(create_app(settings, dev_env.client, config)) as http:
            yield http


async def declare(http: httpx.AsyncClient, **extra: Any) -> str:
    body = {"title": "Checkout errors", "declared_by": "dan", "page": False, **extra}
    resp = await http.post("/v1/incidents", json=body, headers=bearer(ADMIN))
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def timeline(http: httpx.AsyncClient, iid: str, text: str) -> dict[str, Any]:
    events = await eventually(lambda: http.get(f"/v1/incidents/{iid}/timeline", headers=bearer(READER)),
                              lambda r: any(e["text"] == text for e in r.json()))
    return next(e for e in events.json() if e["text"] == text)


# ------------------------------------------------------------------------------------- tokens, config


def test_the_config_holds_hashes_never_tokens(tmp_path: Path) -> None:
    config = tokens_config()
    assert all(t not in config.model_dump_json() for t in (READER, WRITER, APPROVER, BOT))
    plain = tmp_path / "plain.yaml"
    plain.write_text("people: [{id: alice, name: Alice}]\n"
                     "api_tokens:\n  - {name: ci, person: alice, scopes: [write], hash: s3cret-plaintext}\n")
    with pytest.raises(ConfigError) as err:
        load_config(plain)
    assert f"{plain}:3: api_tokens.0.hash" in str(err.value) and "sha256:<64 hex digits>" in str(err.value)
    assert "s3cret-plaintext" not in str(err.value), "a pasted token is never echoed"
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(f"people: [{{id: alice, name: Alice}}]\napi_tokens:\n"
                     f"  - {{name: ci, person: zed, scopes: [write], hash: '{sha('x')}'}}\n"
                     f"  - {{name: bot, scopes: [write], hash: '{sha('y')}'}}\n")
    with pytest.raises(ConfigError) as err:
        load_config(wrong)
    assert "api_tokens 'ci': person 'zed' is not in people" in str(err.value)
    assert "api_tokens 'bot': write and approve act as a person" in str(err.value)


def test_the_documented_one_liner_makes_the_hash() -> None:
    from domain.config import hash_token

    line = "from domain.config import hash_token; print(hash_token(input()))"
    out = subprocess.run([sys.executable, "-c", line], input=WRITER + "\n", capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert out.stdout.strip() == sha(WRITER) == hash_token(WRITER)


def test_the_example_config_documents_tokens_that_validate(tmp_path: Path) -> None:
    text = (ROOT / "config/example.yaml").read_text()
    block = [line[2:] for line in text[text.index("# api_tokens:"):].splitlines() if line.startswith("# ")]
    for i in range(len(block)):
        block[i] = block[i].replace("sha256:<64 hex digits>", sha(f"token-{i}"))
    (tmp_path / "tokens.yaml").write_text(text + "\n".join(block) + "\n")
    tokens = load_config(tmp_path / "tokens.yaml").api_tokens
    assert [(t.name, t.person) for t in tokens] == [("alice-laptop", "alice"), ("status-board", "carol"),
                                                    ("chatops-bot", None)]
    shell = subprocess.run(["sh", "-c", f'printf %s "{WRITER}" | sha256sum'], capture_output=True, text=True)
    assert "sha256:" + shell.stdout.split()[0] == sha(WRITER), "the documented shell line makes the same hash"


def test_tokens_are_compared_by_hash_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from incidentflow.api import security

    compared: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    config = tokens_config()
    who = security.identify(Settings(), config.api_tokens, READER)  # the first token: no early exit
    assert (who.name, who.person, who.scopes) == ("dashboard", "carol", frozenset({"read"}))
    assert compared == [(sha(READER), t.hash) for t in config.api_tokens], "every hash, never the token"
    compared.clear()
    with pytest.raises(Exception) as err:
        security.identify(Settings(), config.api_tokens, "nope")
    assert getattr(err.value, "status_code", None) == 401 and len(compared) == len(config.api_tokens)


# ------------------------------------------------------------------------------------ scopes, actors


async def test_a_read_only_token_cannot_write(api: httpx.AsyncClient) -> None:
    iid = await declare(api)
    assert (await api.get(f"/v1/incidents/{iid}", headers=bearer(READER))).status_code == 200
    assert (await api.get("/v1/oncall", headers=bearer(READER))).status_code == 200
    for path, body in ((f"/v1/incidents/{iid}/notes", {"text": "from the dashboard"}),
                       (f"/v1/incidents/{iid}/acknowledge", {}), ("/v1/incidents", {"title": "x"}),
                       ("/v1/alerts/generic", {"title": "x"}), (f"/v1/incidents/{iid}/runbooks", {"name": "say-hello"})):
        denied = await api.post(path, json=body, headers=bearer(READER))
        assert denied.status_code == 403, (path, denied.text)
        assert "token 'dashboard'" in denied.json()["error"] and "'write' scope" in denied.json()["error"]
    assert (await api.get("/v1/incidents")).status_code == 401
    wrong = await api.get("/v1/incidents", headers=bearer(sha(READER)))  # the hash is not the token
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
    state = (await api.get(f"/v1/incidents/{iid}", headers=bearer(READER))).json()
    assert all(e["actor"] != "carol" for e in state["timeline"]) and state["acknowledged_by"] is None


async def test_a_write_token_acts_as_its_person(api: httpx.AsyncClient) -> None:
    made = await api.post("/v1/incidents", json={"title": "Search slow", "page": False}, headers=bearer(WRITER))
    assert made.status_code == 201, made.text
    iid = made.json()["id"]
    assert (await api.get(f"/v1/incidents/{iid}", headers=bearer(WRITER))).json()["declared_by"] == "alice"
    forged = await api.post(f"/v1/incidents/{iid}/notes", json={"text": "bob did it", "by": "bob"},
                            headers=bearer(WRITER))
    assert forged.status_code == 403, forged.text
    assert "acts as 'alice', not 'bob'" in forged.json()["error"] and "act-as" in forged.json()["error"]
    note = await api.post(f"/v1/incidents/{iid}/notes", json={"text": "pool exhausted"}, headers=bearer(WRITER))
    assert note.status_code == 202, note.text
    assert (await timeline(api, iid, "pool exhausted"))["actor"] == "alice"
    ack = await api.post(f"/v1/incidents/{iid}/acknowledge", json={"by": "alice"}, headers=bearer(WRITER))
    assert ack.status_code == 200, "naming yourself is fine"
    state = (await api.get(f"/v1/incidents/{iid}", headers=bearer(WRITER))).json()
    assert state["acknowledged_by"] == "alice" and all(e["text"] != "bob did it" for e in state["timeline"])


async def test_an_act_as_token_may_name_the_actor(api: httpx.AsyncClient) -> None:
    iid = await declare(api)
    relayed = await api.post(f"/v1/incidents/{iid}/notes", json={"text": "relayed from chat", "by": "dan"},
                             headers=bearer(BOT))
    assert relayed.status_code == 202, relayed.text
    assert (await timeline(api, iid, "relayed from chat"))["actor"] == "dan"
    nobody = await api.post(f"/v1/incidents/{iid}/notes", json={"text": "who?"}, headers=bearer(BOT))
    assert nobody.status_code == 422 and nobody.json()["error"].startswith("by: ")


async def test_approving_needs_the_approve_scope(api: httpx.AsyncClient) -> None:
    iid = await declare(api, commander="alice")
    run = await api.post(f"/v1/incidents/{iid}/runbooks", json={"name": "say-hello"}, headers=bearer(WRITER))
    assert run.status_code == 202, run.text
    run_id = run.json()["ref"]
    await eventually(lambda: api.get(f"/v1/runbook-runs/{run_id}", headers=bearer(READER)),
                     lambda r: r.json()["status"] == "awaiting_approval")
    for token, body in ((WRITER, {}), (WRITER, {"by": "bob"}), (READER, {})):
        denied = await api.post(f"/v1/runbook-runs/{run_id}/approve", json=body, headers=bearer(token))
        assert denied.status_code == 403 and "'approve' scope" in denied.json()["error"], denied.text
    assert (await api.post(f"/v1/runbook-runs/{run_id}/deny", json={}, headers=bearer(READER))).status_code == 403
    as_alice = await api.post(f"/v1/runbook-runs/{run_id}/approve", json={"by": "alice"}, headers=bearer(APPROVER))
    assert as_alice.status_code == 403 and "acts as 'bob'" in as_alice.json()["error"]
    ok = await api.post(f"/v1/runbook-runs/{run_id}/approve", json={}, headers=bearer(APPROVER))
    assert ok.status_code == 200, ok.text
    done = await eventually(lambda: api.get(f"/v1/runbook-runs/{run_id}", headers=bearer(READER)),
                            lambda r: r.json()["ended_at"] is not None)
    assert done.json()["started_by"] == "alice" and "approved by bob" in done.json()["decisions"][0]


async def test_the_shared_api_token_is_still_an_admin(api: httpx.AsyncClient) -> None:
    iid = await declare(api)  # declared_by "dan": the admin token may name anyone
    assert (await api.get(f"/v1/incidents/{iid}", headers=bearer(ADMIN))).json()["declared_by"] == "dan"
    note = await api.post(f"/v1/incidents/{iid}/notes", json={"text": "ops note", "by": "carol"}, headers=bearer(ADMIN))
    assert note.status_code == 202 and (await timeline(api, iid, "ops note"))["actor"] == "carol"
    nobody = await api.post(f"/v1/incidents/{iid}/notes", json={"text": "x"}, headers=bearer(ADMIN))
    assert nobody.status_code == 422 and "by" in nobody.json()["error"], "the shared token names no person"
    unknown = await api.post("/v1/runbook-runs/no-such-run/approve", json={"by": "bob"}, headers=bearer(ADMIN))
    assert unknown.status_code == 404, "past the scope check"


# ------------------------------------------------------------------------------ bodies and malformed JSON


def limited_app(config: IncidentflowConfig | None = None) -> Any:
    cfg = Settings(temporal_address="127.0.0.1:1", max_body_bytes=65536, slack_signing_secret="slack-secret",
                   pagerduty_webhook_secrets=["pd-secret"])
    return create_app(cfg, config=config or IncidentflowConfig())


class Chunks:
    """A chunked body of `total` bytes that counts what the server pulled."""

    def __init__(self, total: int = 50_000_000, size: int = 16384) -> None:
        self.total, self.size, self.pulled = total, size, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.pulled < self.total:
            self.pulled += self.size
            yield b"x" * self.size


@pytest.mark.parametrize("path", ["/slack/commands", "/slack/events", "/v1/webhooks/pagerduty",
                                  "/v1/alerts/generic", "/v1/incidents"])
async def test_a_chunked_oversized_body_is_413_without_reading_it_all(path: str) -> None:
    body = Chunks()
    async with client_for(limited_app()) as http:
        resp = await http.post(path, content=body, headers={"content-type": "application/json"})
    assert "content-length" not in resp.request.headers, "streamed: the size is not announced"
    assert resp.status_code == 413, resp.text
    assert resp.json() == {"error": "request body is larger than 65536 bytes (INCIDENTFLOW_MAX_BODY_BYTES)"}
    assert body.pulled <= 65536 + body.size, f"read {body.pulled} bytes of {body.total}"


async def chunked_post(port: int, path: str, total: int = 50_000_000) -> tuple[int, bytes]:
    """A raw HTTP/1.1 request with a chunked body, sent until the answer comes; returns (bytes sent, answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST {path} HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    answer = asyncio.ensure_future(reader.read(4096))
    sent = 0
    try:
        while sent < total and not answer.done():
            writer.write(b"4000\r\n" + b"x" * 0x4000 + b"\r\n")
            await writer.drain()
            sent += 0x4000
            await asyncio.sleep(0.001)
    except ConnectionError:
        pass  # the server answered and closed: it stopped reading
    out = await asyncio.wait_for(answer, 10)
    writer.close()
    return sent, out


async def test_real_server_answers_413_on_slack_and_pagerduty_with_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    async with uvicorn_serving(limited_app()) as port:
        for path in ("/slack/commands", "/slack/interactions", "/v1/webhooks/pagerduty"):
            sent, answer = await chunked_post(port, path)
            assert answer.startswith(b"HTTP/1.1 413 "), (path, answer[:200])
            assert b'"error":"request body is larger than 65536 bytes' in answer
            assert sent < 5_000_000, f"{path}: the server kept reading ({sent} bytes)"
    assert "Exception in ASGI application" not in caplog.text and "Traceback" not in caplog.text


async def test_malformed_json_is_400_saying_where() -> None:
    broken = b'{"title": "x",\n  "severity" "SEV2"}'
    async with client_for(limited_app()) as http:
        for path in ("/v1/alerts/generic", "/v1/incidents", "/v1/incidents/incident-x/notes"):
            resp = await http.post(path, content=broken, headers={"content-type": "application/json"})
            assert resp.status_code == 400, (path, resp.text)
            assert resp.json()["error"] == ("body: not valid JSON: Expecting ':' delimiter at line 2, column 14 "
                                            "(character 29)")
        not_utf8 = await http.post("/v1/alerts/generic", content=b'{"title": "\xff"}',
                                   headers={"content-type": "application/json"})
        assert not_utf8.status_code == 400 and "JSON" in not_utf8.json()["error"]
        invalid = await http.post("/v1/alerts/generic", json={"title": "x", "severity": "SEV9"})
        assert invalid.status_code == 422 and invalid.json()["fields"][0].startswith("severity:"), "valid JSON, bad field"


# ----------------------------------------------------------------------------------- Temporal down: fast


async def timed(call: Callable[[], Any]) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    resp = await call()
    return resp, time.monotonic() - start


@asynccontextmanager
async def black_hole() -> AsyncIterator[str]:
    """An address that takes TCP connections and never says a word (a hung or firewalled frontend)."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_a_silent_temporal_is_answered_fast_and_then_at_once() -> None:
    async with black_hole() as address:
        app = create_app(Settings(temporal_address=address), config=IncidentflowConfig())
        async with client_for(app) as http:
            first, took = await timed(lambda: http.post("/v1/alerts/generic", json={"title": "x"}))
            assert first.status_code == 503 and took < 2.5 and address in first.json()["error"], (took, first.text)
            for _ in range(20):
                again, _ = await timed(lambda: http.get("/v1/incidents"))
                assert again.status_code == 503 and int(again.headers["retry-after"]) >= 1
                assert "not trying again" in again.json()["error"], again.text  # answered by the open circuit
            assert (await http.get("/v1/oncall")).status_code == 200, "what needs no Temporal still works"


async def start_dev(port: int) -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_local(
        port=port, dev_server_existing_path=binary("temporal"), search_attributes=sa.ALL,
        data_converter=pydantic_data_converter, ui=False)


async def test_temporal_going_down_fails_fast_and_coming_back_heals() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = await start_dev(port)
    app = create_app(Settings(temporal_address=f"127.0.0.1:{port}"), config=IncidentflowConfig())
    alert = {"title": "Disk full", "dedup_key": f"disk-{uuid.uuid4().hex[:6]}"}
    try:
        async with client_for(app) as http:
            assert (await http.post("/v1/alerts/generic", json=alert)).status_code == 202
            await env.shutdown()
            first, took = await timed(lambda: http.post("/v1/alerts/generic", json=alert))
            assert first.status_code == 503 and took < 2.5, (took, first.text)  # was 6–10 s
            assert first.headers["retry-after"] == "5" and f"127.0.0.1:{port}" in first.json()["error"]
            storm = await asyncio.gather(*[timed(lambda: http.post("/v1/alerts/generic", json=alert))
                                           for _ in range(50)])
            assert all(r.status_code == 503 and r.headers["retry-after"] for r, _ in storm)
            # the open circuit answers without trying Temporal (its own words say so; no timing asserted)
            assert all("not trying again" in r.json()["error"] for r, _ in storm), storm[0][0].text
            assert app.state.shedder.inflight == 0, "nothing waits: the in-flight limit is never reached"
            env = await start_dev(port)
            healed = await eventually(lambda: http.post("/v1/alerts/generic", json=alert),
                                      lambda r: r.status_code == 202, timeout=20, interval=0.25)
            assert healed.json()["outcome"] == "accepted"
            assert (await http.get("/v1/incidents")).status_code == 200
    finally:
        await env.shutdown()


async def test_the_circuit_lets_one_probe_through_when_half_open() -> None:
    from incidentflow.api.errors import Circuit, CircuitOpen

    probes: list[float] = []
    gate = asyncio.Event()

    async def probe() -> None:
        probes.append(time.monotonic())
        await gate.wait()

    circuit = Circuit(probe, "Temporal at test:7233", open_for=0.2)
    circuit.trip("Temporal at test:7233: connection refused")
    with pytest.raises(CircuitOpen) as err:
        await circuit.admit()
    assert "connection refused" in str(err.value) and err.value.retry_after == 1 and probes == []
    await asyncio.sleep(0.25)
    first = asyncio.ensure_future(circuit.admit())  # half-open: this one probes …
    await asyncio.sleep(0.01)
    with pytest.raises(CircuitOpen):
        await circuit.admit()  # … and the others are still answered at once
    gate.set()
    await first
    assert len(probes) == 1 and not circuit.is_open
    await circuit.admit()


def test_openapi_documents_the_new_answers() -> None:
    paths = create_app(Settings()).openapi()["paths"]
    assert {"403", "413", "400", "503"} <= set(paths["/v1/alerts/generic"]["post"]["responses"])
    assert "403" in paths["/v1/oncall"]["get"]["responses"]
    body = json.dumps(paths["/v1/alerts/generic"]["post"].get("security", []))
    assert "HTTPBearer" in body, "the bearer token is declared, so /docs can send it"
