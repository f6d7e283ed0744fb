"""Postmortems and action items through every door: the CLI (`incidentflow postmortem|action …`), the HTTP API
(`/v1/incidents/{id}/postmortem`, `/v1/action-items`) and Slack (`/incident postmortem|action …`).

One real API + worker on the shared dev server serves the module, with a fake Slack and a directory sink under
tmp; the CLI is our real `main(argv)` in a thread against the same task queue and the same config (as YAML).
Each surface runs start/show/set/publish and add/list/show/due/done/drop end to end, refuses bad input naming
what is wrong with nothing applied, and applies a retried request once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from domain.actions.models import ActionItem
from domain.config import IncidentflowConfig, Settings
from domain.models import DeclareInput, ResolveInput, Severity
from incidentflow.api import create_app
from incidentflow.cli import main
from incidentflow.client import Incidents
from incidentflow.slack.gateway import SlackGateway
from tests.conftest import running_worker
from tests.fakes.slack import FakeSlack
from tests.helpers import eventually, free_port, uvicorn_serving
from tests.test_slack_e2e import SECRET, command_body, signed

WRITER, READER = "learning-writer", "learning-reader"  # bearer tokens: alice's (read, write), a dashboard's (read)
TODAY = datetime.now(UTC).date()
DUE, LATER = TODAY + timedelta(days=10), TODAY + timedelta(days=20)


def raw_config(sink: Path, ids: dict[str, str], **extra: Any) -> dict[str, Any]:
    def token(name: str, plain: str, scopes: list[str], person: str | None = None) -> dict[str, Any]:
        return {"name": name, "person": person, "scopes": scopes,
                "hash": "sha256:" + hashlib.sha256(plain.encode()).hexdigest()}
    return {"people": [{"id": "alice", "name": "Alice", "slack": ids["alice"]},
                       {"id": "bob", "name": "Bob", "email": "bob@example.com"}],
            "services": [{"name": "checkout"}],
            "api_tokens": [token("alice-cli", WRITER, ["read", "write"], "alice"), token("dashboard", READER, ["read"])],
            "postmortem": {"sink": {"kind": "directory", "directory": str(sink)}}, **extra}


@asynccontextmanager
async def serving(env: WorkflowEnvironment, config: IncidentflowConfig,
                  **settings: Any) -> AsyncIterator[tuple[str, Settings]]:
    """`tests.conftest.serve_api`, yielding the worker's settings too (the CLI needs its task queue); the worker
    lists action items for the digest through the client."""
    listing = Incidents(env.client, Settings(), config)
    async with running_worker(env.client, config=lambda: config, directory=listing, **settings) as (cfg, _):
        port = free_port()
        cfg = Settings.model_validate({**cfg.model_dump(), "api_port": port, **settings})
        async with uvicorn_serving(create_app(cfg, env.client, config), port):
            yield f"http://127.0.0.1:{port}", cfg


@dataclass
class Stack:
    env: WorkflowEnvironment
    settings: Settings
    config: IncidentflowConfig
    config_file: Path
    sink: Path
    slack: FakeSlack
    ids: dict[str, str]
    http: httpx.AsyncClient
    inc: Incidents
    general: str

    async def resolved(self, title: str) -> str:
        """A SEV3 incident (no postmortem of its own), resolved: ready for `postmortem start`."""
        iid = await self.inc.declare(DeclareInput(title=title, severity=Severity.SEV3, service="checkout",
                                                  declared_by="alice", page=False))
        await self.inc.resolve(iid, ResolveInput(by="alice", summary="rolled back the deploy"))
        return iid

    async def items(self, incident: str, count: int = 0) -> list[ActionItem]:
        """The incident's items from visibility, once there are `count` of them (it lags a moment)."""
        return await eventually(lambda: self.inc.action_items(incident=incident, open_only=False),
                                lambda found: len(found) >= count)


@pytest.fixture(scope="module")
async def stack(dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("learning")
    with FakeSlack() as slack:
        ids = {"alice": slack.add_user(name="alice", email="alice@example.com"),
               "bob": slack.add_user(name="bob", email="bob@example.com"),
               "mallory": slack.add_user(name="mallory", email="mallory@example.com")}
        raw = raw_config(tmp / "postmortems", ids)
        config_file = tmp / "incidentflow.yaml"
        config_file.write_text(yaml.safe_dump(raw))
        config = IncidentflowConfig.model_validate(raw)
        general = slack.add_channel(f"general-{time.monotonic_ns()}", members=list(ids.values()), bot_member=True)
        async with serving(dev_env, config, slack_signing_secret=SECRET, slack_bot_token=slack.bot_token,
                           slack_api_url=slack.base_url, data_dir=str(tmp / "data")) as (url, settings), \
                httpx.AsyncClient(base_url=url, timeout=60) as http:
            yield Stack(dev_env, settings, config, config_file, tmp / "postmortems", slack, ids, http,
                        Incidents(dev_env.client, settings, config), general)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("USER", "CONFIG", "TASK_QUEUE", "TEMPORAL_ADDRESS", "API_TOKEN", "GITHUB_WEBHOOK_SECRET",
                 "JIRA_WEBHOOK_SECRET"):
        monkeypatch.delenv(f"INCIDENTFLOW_{name}", raising=False)


# ---------------------------------------------------------------------------------------------- CLI
@dataclass
class Out:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("INCIDENTFLOW_TEMPORAL_ADDRESS", stack.env.client.service_client.config.target_host)
    monkeypatch.setenv("INCIDENTFLOW_TASK_QUEUE", stack.settings.task_queue)
    monkeypatch.setenv("INCIDENTFLOW_CONFIG", str(stack.config_file))
    monkeypatch.setenv("INCIDENTFLOW_USER", "alice")

    def exit_code(argv: list[str]) -> int:
        try:
            return main(argv)
        except SystemExit as exc:  # argparse: bad arguments
            return int(exc.code or 0)

    async def run(*args: str) -> Out:
        capsys.readouterr()
        code = await asyncio.to_thread(exit_code, list(args))  # main() runs its own event loop
        got = capsys.readouterr()
        return Out(code, got.out, got.err)
    return run


def one_line_usage(res: Out, *words: str) -> bool:
    return res.code == 2 and res.out == "" and len(res.err.strip().splitlines()) == 1 and all(
        w in res.err for w in words)


async def test_cli_postmortem(stack: Stack, cli: Any) -> None:
    iid = await stack.resolved("Checkout latency after deploy")
    shown = await cli("postmortem", "show", iid)
    assert shown.code == 1 and f"no postmortem for '{iid}' yet" in shown.err
    assert f"`incidentflow postmortem start {iid}`" in shown.err
    assert one_line_usage(await cli("postmortem", "set", iid), "nothing to set", "--root-cause")
    assert one_line_usage(await cli("postmortem", "set", iid, "--review-date", "12/10/2026"),
                          "'12/10/2026' is not a date; use YYYY-MM-DD")
    assert one_line_usage(await cli("postmortem", "set", iid, "--status", "published"), "draft or in_review")
    for action in ("start", "show", "publish"):
        nowhere = await cli("postmortem", action, "incident-20990101-0000-nope")
        assert nowhere.code == 1 and "no incident with id 'incident-20990101-0000-nope'" in nowhere.err, nowhere

    unknown = await cli("postmortem", "start", iid, "--template", "nope")
    assert unknown.code == 1 and "template: no template 'nope' (known: contributors, default, google-sre)" in unknown.err
    started = await cli("postmortem", "start", iid)
    assert started.code == 0, started.err
    document = stack.sink / f"{iid}.md"
    assert started.out == f"{iid}: postmortem draft (default): {document}\n"
    assert document.read_text().startswith("# Postmortem: Checkout latency after deploy")
    again = await cli("postmortem", "start", iid)
    assert again.code == 1 and "the postmortem is already started" in again.err

    stranger = await cli("postmortem", "set", iid, "--root-cause", "x", "--reviewer", "zed")
    assert stranger.code == 1 and "reviewers: 'zed' is not one of incidentflow's people" in stranger.err
    assert "x\n<!-- /incidentflow:root_cause -->" not in document.read_text(), "nothing half-applied"
    filled = await cli("postmortem", "set", iid, "--root-cause", "The connection pool had no bound",
                       "--went-well", "The rollback took 4 minutes", "--reviewer", "bob",
                       "--review-date", f"{LATER}", "--status", "in-review")
    assert filled.code == 0, filled.err
    assert filled.out.startswith(f"{iid}: set root cause, went well, review date, reviewers (in_review)\n")
    text = document.read_text()
    assert "The connection pool had no bound" in text and "The rollback took 4 minutes" in text and f"{LATER}" in text

    shown = await cli("postmortem", "show", iid)
    assert shown.code == 0, shown.err
    for line in (f"Postmortem of {iid}: Checkout latency after deploy", "status in_review, template default, SEV3",
                 f"link: {document}", f"review: {LATER}; reviewers: bob", "filled: root cause, went well",
                 "alice: set root cause, went well, review date, reviewers"):
        assert line in shown.out, (line, shown.out)
    as_json = json.loads((await cli("postmortem", "show", iid, "--json")).out)
    assert as_json["status"] == "in_review" and as_json["fields"]["reviewers"] == ["bob"]

    published = await cli("postmortem", "publish", iid)
    assert published.code == 0, published.err
    assert published.out.startswith(f"{iid}: published; 0 new action item(s) (published)\n  {document}\n")
    assert (await stack.inc.postmortem(iid)).published_by == "alice"


async def test_cli_action_items(stack: Stack, cli: Any) -> None:
    iid = await stack.resolved("Card payments failing")
    add = ("action", "add", iid, "Bound the connection pool", "--owner", "bob")
    assert one_line_usage(await cli(*add, "--due", "2026-13-40"), "--due", "'2026-13-40' is not a date")
    assert one_line_usage(await cli(*add, "--due", f"{DUE}", "--priority", "P7"),
                          "unknown priority 'P7'; use one of: P0, P1, P2")
    assert one_line_usage(await cli(*add, "--due", f"{DUE}", "--kind", "blame"), "unknown kind 'blame'")
    assert one_line_usage(await cli(*add, "--due", "2020-01-01"), "'2020-01-01' is in the past")
    stranger = await cli("action", "add", iid, "Bound it", "--owner", "zed", "--due", f"{DUE}")
    assert stranger.code == 1 and "owner: 'zed' is not one of incidentflow's people (known: alice, bob)" in stranger.err
    nowhere = await cli("action", "add", "incident-20990101-0000-nope", "x", "--owner", "bob", "--due", f"{DUE}")
    assert nowhere.code == 1 and "no incident with id" in nowhere.err
    assert (await cli("action", "list", "--incident", iid)).out == "no action items\n", "nothing half-applied"

    first = await cli(*add, "--due", f"{DUE}", "--priority", "p1", "--kind", "prevent")
    assert first.code == 0, first.err
    aid = first.out.splitlines()[0]
    assert first.out.splitlines()[1] == f"  Bound the connection pool — owner bob, due {DUE}, P1 prevent ({iid})"
    keyed = [await cli("--idempotency-key", "cli-k1", "action", "add", iid, "Add a canary stage", "--owner", "alice",
                       "--due", f"{DUE}") for _ in range(2)]
    assert keyed[0].code == keyed[1].code == 0 and keyed[0].out == keyed[1].out, "the same key: the same item"
    other = keyed[0].out.splitlines()[0]
    assert {i.aid for i in await stack.items(iid, 2)} == {aid, other}

    listed = await eventually(lambda: cli("action", "list", "--incident", iid), lambda r: other in r.out)
    assert f"{aid:<12} open    {DUE}         P1 prevent  bob" in listed.out
    mine = json.loads((await cli("action", "list", "--owner", "bob", "--incident", iid, "--json")).out)
    assert [i["aid"] for i in mine] == [aid]
    shown = await cli("action", "show", aid)
    assert shown.out.startswith(f"{aid}: Bound the connection pool\n  open; P1 prevent; owner bob; due {DUE}\n")
    unknown = await cli("action", "show", "ai-zzzzzzzz")
    assert unknown.code == 1 and "no action item 'ai-zzzzzzzz'" in unknown.err

    assert one_line_usage(await cli("action", "due", aid, "2020-01-01"), "is in the past")
    moved = await cli("action", "due", aid, f"{LATER}")
    assert moved.out == f"{aid}: open, due {LATER}: Bound the connection pool\n"
    done = await cli("action", "done", aid, "--note", "pool bounded at 50")
    assert done.out == f"{aid}: done, due {LATER}: Bound the connection pool\n"
    twice = await cli("action", "done", aid)
    assert twice.code == 1 and f"{aid} is already done" in twice.err
    assert one_line_usage(await cli("action", "drop", other), "--reason")
    dropped = await cli("action", "drop", other, "--reason", "the canary stage exists already")
    assert dropped.out == f"{other}: dropped, due {DUE}: Add a canary stage\n"
    everything = await eventually(lambda: cli("action", "list", "--incident", iid, "--all"),
                                  lambda r: " open " not in r.out)
    assert f"{aid:<12} done" in everything.out and f"{other:<12} dropped" in everything.out
    assert (await cli("action", "list", "--incident", iid)).out == "no action items\n"
    history = (await stack.inc.action(aid)).history
    assert [h.split(" UTC ", 1)[1] for h in history] == [f"alice: due {DUE} → {LATER}", "alice: done: pool bounded at 50"]

    digest = await cli("action", "digest")
    assert digest.code == 0 and digest.out.startswith("review sent: "), digest


# ---------------------------------------------------------------------------------------------- HTTP
def auth(token: str = WRITER) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_http_postmortem(stack: Stack) -> None:
    iid = await stack.resolved("Search returns nothing")
    http, base = stack.http, f"/v1/incidents/{iid}/postmortem"
    missing = await http.get(base, headers=auth(READER))
    assert missing.status_code == 404 and f"no postmortem for '{iid}' yet" in missing.json()["error"]
    empty = await http.patch(base, json={}, headers=auth())
    assert empty.status_code == 422 and empty.json()["fields"][0].startswith("fields: nothing to set")
    early = await http.patch(base, json={"root_cause": "x"}, headers=auth())
    assert early.status_code == 409 and "has no postmortem yet" in early.json()["error"]
    assert (await http.post(base, json={}, headers=auth(READER))).status_code == 403, "read scope cannot start it"
    for template in ("../etc/passwd", "nope"):  # not a name; no such template (the draft would fail for good)
        bad = await http.post(base, json={"template": template}, headers=auth())
        assert bad.status_code == 422 and bad.json()["fields"][0].startswith("template:"), bad.text
    nowhere = await http.post("/v1/incidents/incident-20990101-0000-nope/postmortem", headers=auth())
    assert nowhere.status_code == 404

    started = await http.post(base, json={"template": "google-sre"}, headers=auth())
    assert started.status_code == 200, started.text
    state = started.json()
    assert (state["status"], state["template"], state["sink"]["link"]) == ("draft", "google-sre",
                                                                           str(stack.sink / f"{iid}.md"))
    for body, field in (({"review_date": "2026-13-01"}, "review_date"), ({"reviewers": ["zed"]}, "reviewers"),
                        ({"status": "published"}, "status"), ({"root_cause": "x" * 5000}, "root_cause")):
        refused = await http.patch(base, json=body, headers=auth())
        assert refused.status_code == 422 and refused.json()["fields"][0].startswith(f"{field}:"), (body, refused.text)
    fill = {"root_cause": "Retries amplified a slow index", "reviewers": ["bob"]}
    answers = [await http.patch(base, json=fill, headers={**auth(), "Idempotency-Key": "pm-set-1"}) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200] and answers[0].json() == answers[1].json()
    assert answers[0].json()["message"] == "set root cause, reviewers"
    shown = (await http.get(base, headers=auth(READER))).json()
    assert shown["fields"]["root_cause"] == "Retries amplified a slow index"
    assert sum("set root cause" in line for line in shown["history"]) == 1, "a retry is applied once"

    published = await http.post(f"{base}/publish", headers=auth())
    assert published.status_code == 200, published.text
    assert (published.json()["status"], published.json()["link"]) == ("published", str(stack.sink / f"{iid}.md"))
    assert (await http.get(base, headers=auth(READER))).json()["published_by"] == "alice", "the token's person"


async def test_http_action_items(stack: Stack) -> None:
    iid = await stack.resolved("Login loops")
    http, url = stack.http, f"/v1/incidents/{iid}/action-items"
    good = {"text": "Alert on login loops", "owner": "bob", "due": f"{DUE}", "priority": "P1", "kind": "detect"}
    for change, field in (({"due": "2026-13-40"}, "due"), ({"priority": "P7"}, "priority"), ({"kind": "blame"}, "kind"),
                          ({"owner": "zed"}, "owner"), ({"due": "2020-01-01"}, "due"), ({"text": ""}, "text")):
        refused = await http.post(url, json={**good, **change}, headers=auth())
        assert refused.status_code == 422 and refused.json()["fields"][0].startswith(f"{field}:"), (change, refused.text)
    assert (await http.post(url, json=good, headers=auth(READER))).status_code == 403
    assert await stack.items(iid) == [], "nothing half-applied"

    keyed = {**auth(), "Idempotency-Key": "ai-add-1"}
    first, second = [await http.post(url, json=good, headers=keyed) for _ in range(2)]
    assert first.status_code == second.status_code == 201 and first.json() == second.json()
    aid = first.json()["aid"]
    assert first.headers["location"] == f"/v1/action-items/{aid}" and first.json()["created_by"] == "alice"
    reused = await http.post(url, json={**good, "text": "Something else"}, headers=keyed)
    assert reused.status_code == 422 and "was used for another action item" in reused.json()["error"]
    other = (await http.post(url, json={**good, "text": "Rate-limit login retries", "kind": "prevent"},
                             headers=auth())).json()["aid"]
    assert {i.aid for i in await stack.items(iid, 2)} == {aid, other}, "the retry made no second item"

    listed = await eventually(lambda: http.get("/v1/action-items", params={"incident": iid}, headers=auth(READER)),
                              lambda r: len(r.json()) == 2)
    assert {i["aid"] for i in listed.json()} == {aid, other}
    assert (await http.get("/v1/action-items", params={"incident": iid, "overdue": "true"},
                           headers=auth(READER))).json() == []
    assert (await http.get(f"/v1/action-items/{aid}", headers=auth(READER))).json()["text"] == "Alert on login loops"
    assert (await http.get("/v1/action-items/ai-zzzzzzzz", headers=auth(READER))).status_code == 404

    for path, body, field in (("due", {"due": "2020-01-01"}, "due"), ("due", {"due": "2026-02-30"}, "due"),
                              ("drop", {}, "reason"), ("drop", {"reason": ""}, "reason")):
        refused = await http.post(f"/v1/action-items/{aid}/{path}", json=body, headers=auth())
        assert refused.status_code == 422 and refused.json()["fields"][0].startswith(f"{field}:"), refused.text
    moved = await http.post(f"/v1/action-items/{aid}/due", json={"due": f"{LATER}"}, headers=auth())
    assert moved.json() == {"aid": aid, "status": "open", "text": "Alert on login loops", "due": f"{LATER}",
                            "ticket": None}
    done = [await http.post(f"/v1/action-items/{aid}/done", json={"note": "alert merged"},
                            headers={**auth(), "Idempotency-Key": "ai-done-1"}) for _ in range(2)]
    assert [d.status_code for d in done] == [200, 200] and done[0].json() == done[1].json()
    assert done[0].json()["status"] == "done"
    again = await http.post(f"/v1/action-items/{aid}/done", json={}, headers=auth())
    assert again.status_code == 409 and f"{aid} is already done" in again.json()["error"]
    dropped = await http.post(f"/v1/action-items/{other}/drop", json={"reason": "covered by the new alert"},
                              headers=auth())
    assert dropped.json()["status"] == "dropped"
    closed = await eventually(lambda: http.get("/v1/action-items", params={"incident": iid, "all": "true"},
                                               headers=auth(READER)),
                              lambda r: {i["status"] for i in r.json()} == {"done", "dropped"})
    assert len(closed.json()) == 2
    assert (await http.get("/v1/action-items", params={"incident": iid}, headers=auth(READER))).json() == []


async def test_http_webhooks_are_off_until_their_secret_is_set(stack: Stack) -> None:
    for tracker, env in (("github", "INCIDENTFLOW_GITHUB_WEBHOOK_SECRET"), ("jira", "INCIDENTFLOW_JIRA_WEBHOOK_SECRET")):
        off = await stack.http.post(f"/v1/webhooks/{tracker}", json={"action": "closed"})
        assert off.status_code == 404 and env in off.json()["error"], off.text


def test_the_doors_are_documented() -> None:
    spec = create_app(Settings()).openapi()["paths"]
    assert set(spec["/v1/incidents/{incident_id}/postmortem"]) == {"get", "post", "patch"}
    for path in ("/v1/incidents/{incident_id}/postmortem/publish", "/v1/incidents/{incident_id}/action-items",
                 "/v1/action-items/{aid}/done", "/v1/action-items/{aid}/drop", "/v1/action-items/{aid}/due",
                 "/v1/webhooks/github", "/v1/webhooks/jira"):
        assert "post" in spec[path], path
    add = spec["/v1/incidents/{incident_id}/action-items"]["post"]
    assert {"201", "401", "403", "404", "422", "503"} <= set(add["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in add["parameters"])
    assert {p["name"] for p in spec["/v1/action-items"]["get"]["parameters"]} == {"overdue", "owner", "incident", "all"}
    assert "X-Hub-Signature-256" in {p["name"] for p in spec["/v1/webhooks/github"]["post"]["parameters"]}


# ---------------------------------------------------------------------------------------------- Slack
async def say(stack: Stack, text: str, channel: str, user: str = "alice") -> str:
    """The reply `/incident <text>` gets (the HTTP body, or what followed on the response_url when slow)."""
    url = stack.slack.new_response_url()
    body = command_body(text, stack.ids[user], channel, url)
    r = await stack.http.post("/slack/commands", content=body, headers=signed(body))
    assert r.status_code == 200, r.text
    reply: dict[str, Any] = r.json()
    if reply.get("text") == "Working on it…":
        reply = (await stack.slack.wait_for_response_async(url, timeout=30))[0]
    assert reply["response_type"] == "ephemeral", reply
    return str(reply["text"])


async def test_slack_postmortem(stack: Stack) -> None:
    iid = await stack.resolved("Checkout images missing")
    state = await eventually(lambda: stack.inc.get(iid), lambda s: s.chat is not None, timeout=60)
    assert state.chat is not None
    channel, usage = state.chat.channel_id, "Usage: `/incident postmortem [show|start [template]|publish]`"
    set_usage = "Usage: `/incident postmortem set <field> <text> (fields: summary, impact, root-cause"

    async def answer(text: str, where: str = channel, user: str = "alice") -> str:
        return await say(stack, text, where, user)

    outside = await answer("postmortem", stack.general)
    assert outside.startswith("This channel is not an incident channel: add the incident id") and usage in outside
    assert f"no postmortem for '{iid}' yet" in await answer("postmortem") and usage in await answer("postmortem")
    assert (await answer("postmortem frobnicate")).startswith("Unknown postmortem command `frobnicate`.")
    assert "is not in incidentflow's people" in await answer("postmortem start", user="mallory")

    started = await answer("postmortem start")
    document = stack.sink / f"{iid}.md"
    assert started.startswith(f"`{iid}`: postmortem started (default): {document}."), started
    assert "already started" in await answer(f"postmortem start {iid}", stack.general)
    for text, message in (("postmortem set", "Name a field: summary, impact, root-cause"),
                          ("postmortem set rootcause x", "Unknown field `rootcause`"),
                          ("postmortem set root-cause", "Give the text of `root-cause` after it."),
                          ("postmortem set review-date next-week", "`next-week` is not a date"),
                          ("postmortem set status published", "The status is `draft` or `in-review`"),
                          (f"postmortem set reviewers <@{stack.ids['mallory']}|mallory>",
                           "Rejected: reviewers: 'mallory' is not one of incidentflow's people")):
        reply = await answer(text)
        assert message in reply and set_usage in reply, (text, reply)
    assert "_To fill: system conditions" in document.read_text(), "nothing was set"
    filled = await answer("postmortem set root-cause The image cache evicted everything at once")
    assert filled == f"`{iid}`: postmortem set root cause. {document}"
    assert "The image cache evicted everything at once" in document.read_text()
    assert "set reviewers" in await answer(f"postmortem set reviewers <@{stack.ids['bob']}|bob>")
    assert "set review date" in await answer(f"postmortem set review-date {LATER}")
    shown = await answer(f"postmortem {iid} show", stack.general)
    assert shown.startswith(f"*Postmortem of `{iid}`* — draft, template default: {document}\nFilled: root cause;")
    assert f"Review: {LATER}; reviewers: bob." in shown
    published = await answer("postmortem publish")
    assert published == f"`{iid}`: postmortem published; 0 new action item(s). {document}"


async def test_slack_action_items(stack: Stack) -> None:
    iid = await stack.resolved("Webhooks delayed")
    state = await eventually(lambda: stack.inc.get(iid), lambda s: s.chat is not None, timeout=60)
    assert state.chat is not None
    channel, bob = state.chat.channel_id, f"<@{stack.ids['bob']}|bob>"
    usage = 'Usage: `/incident action add "<text>" @owner <YYYY-MM-DD> [P0|P1|P2] [fix|detect|prevent|process]`'

    async def answer(text: str, where: str = channel, user: str = "alice") -> str:
        return await say(stack, text, where, user)

    assert (await answer("action")).startswith("Say what to do with action items.\nUsage: `/incident action add")
    assert (await answer("action frobnicate")).startswith("Unknown action item command `frobnicate`.")
    for text, message in ((f'action add "Queue webhooks durably" {bob} 2026-13-40 P1', "`2026-13-40` is not a date"),
                          ('action add "Queue webhooks durably"', "Give the owner and the due date after the text"),
                          (f"action add {DUE} P1", "Give the text, then the owner"),
                          (f'action add "Queue webhooks durably" @zed {DUE} P1',
                           "Rejected: owner: 'zed' is not one of incidentflow's people"),
                          (f'action add "Queue webhooks durably" {bob} 2020-01-01', "due: 2020-01-01 is in the past")):
        reply = await answer(text)
        assert message in reply and usage in reply, (text, reply)
    assert "not an incident channel" in await answer(f'action add "x" {bob} {DUE}', stack.general)
    assert "is not in incidentflow's people" in await answer(f'action add "x" {bob} {DUE}', user="mallory")
    assert await stack.items(iid) == [], "nothing half-applied"

    # the same request handled twice (its key is its signature: a replay reaching another replica) adds one item
    async def door() -> Incidents:
        return stack.inc
    gateway = SlackGateway(door, lambda: stack.config, None)
    form = {"text": f'action add “Queue webhooks durably” bob {DUE} P1 prevent', "user_id": stack.ids["alice"],
            "channel_id": channel}
    replies = [(await gateway.command(form, key="slack-signature:v0=replayed")).text for _ in range(2)]
    assert replies[0] == replies[1] and replies[0].endswith(
        f"added to `{iid}`: Queue webhooks durably — owner bob, due {DUE}, P1 prevent. Its owner is reminded before "
        "it is due."), replies
    aid = replies[0].split("`")[1]
    second = await answer(f'action add {iid} "Page on webhook lag" me {DUE} detect', stack.general)
    other = second.split("`")[1]
    assert {i.aid for i in await stack.items(iid, 2)} == {aid, other}, "the replayed request added one item"
    assert second.endswith(f"Page on webhook lag — owner alice, due {DUE}, P2 detect. Its owner is reminded before "
                           "it is due.")

    mine = await eventually(lambda: answer("action list mine", user="bob"), lambda t: aid in t)
    assert mine.startswith("*Your open action items*") and other not in mine
    assert f"• `{aid}` P1 prevent — Queue webhooks durably — bob, due {DUE} · `{iid}`" in mine
    assert aid not in await answer("action list overdue")
    assert "list `mine`, `overdue` or `all`" in await answer("action list sometimes")
    assert (await answer(f"action show {aid}", user="mallory")).startswith(f"`{aid}` (open) P1 prevent")

    assert "due: 2020-01-01 is in the past" in await answer(f"action due {aid} 2020-01-01")
    assert await answer(f"action due {aid} {LATER}") == f"`{aid}`: open, due {LATER}: Queue webhooks durably"
    assert "Give a reason" in await answer(f"action drop {other}")
    assert await answer(f"action done {aid} queue in place") == f"`{aid}`: done, due {LATER}: Queue webhooks durably"
    assert f"Rejected: {aid} is already done" in await answer(f"action done {aid}")
    assert await answer(f"action drop {other} the queue covers it") == \
        f"`{other}`: dropped, due {DUE}: Page on webhook lag"
    await eventually(lambda: stack.items(iid), lambda items: {i.status.value for i in items} == {"done", "dropped"})

    helped = await answer("help")
    assert "• `/incident postmortem [show|start [template]|publish|set <field> <text>]` — " in helped
    assert '• `/incident action add "<text>" @owner <YYYY-MM-DD> [P0-P2] [kind] | list [mine|overdue|all]' in helped
