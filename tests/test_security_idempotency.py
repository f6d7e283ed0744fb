"""Issue 11, items 2, 4 and 7: commands are safe to retry, fail fast without a worker, and reach only incidents.

- A command sent again with the same `Idempotency-Key` is applied once and answered with the first answer:
  a status update, a page, a note, an acknowledge (Temporal update ids; a note's request id).
- Declare with a key creates one incident however often (and however concurrently) it is retried; the same
  key with another body is 422.
- With Temporal up and no worker, a command answers 503 + Retry-After within the deadline (the CLI: exit 4
  and how to retry), and once a worker is back the retry with the same key is applied once.
- `/readyz` says `worker: false` within seconds of the worker stopping.
- Ids that are not incidents (alert groups, escalations, garbage) are 404 on every incident route, the
  CLI and Slack.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from activities.notify import LogNotifier
from domain import blockkit as render
from domain.config import IncidentflowConfig, Settings, load_config
from domain.models import Severity
from domain.models.paging import EscalationStart
from incidentflow.api import create_app
from incidentflow.client import Incidents
from incidentflow.commands import COMMANDS, Command, Kind
from incidentflow.slack.gateway import SlackGateway
from tests.conftest import running_worker
from tests.helpers import eventually
from workers.main import build_worker
from workflows.escalation import EscalationWorkflow

EXAMPLE = Path(__file__).parent.parent / "config/example.yaml"
SAMPLE = {Kind.text: "x", Kind.person: "bob", Kind.severity: "SEV1", Kind.phase: "mitigating", Kind.role: "lead",
          Kind.level: 3}


def http(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api", timeout=60)  # type: ignore[arg-type]


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def declare(api: httpx.AsyncClient, **fields: Any) -> str:
    r = await api.post("/v1/incidents", json={"title": "Checkout down", "declared_by": "carol", "page": False, **fields})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def timeline(api: httpx.AsyncClient, iid: str, kind: str) -> list[str]:
    state = (await api.get(f"/v1/incidents/{iid}")).json()
    return [e["text"] for e in state["timeline"] if e["kind"] == kind]


FIELD_SAMPLE = {"next_update": "30m"}  # text with a format of its own


def body_for(command: Command[Any]) -> dict[str, Any]:
    return {"by": "pat", **{a.field: FIELD_SAMPLE.get(a.field, SAMPLE[a.kind]) for a in command.args}}


# ------------------------------------------------------------------------------------------- retries


async def test_a_retried_command_is_applied_once_and_answered_alike(dev_env: WorkflowEnvironment) -> None:
    async with running_worker(dev_env.client) as (settings, _), http(create_app(settings, dev_env.client)) as api:
        iid = await declare(api)
        same = key()
        update = {"text": "Rolling back deploy 4812", "by": "alice"}
        answers = [await api.post(f"/v1/incidents/{iid}/status-updates", json=update, headers=same) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200], answers[-1].text
        assert answers[0].json() == answers[1].json() == answers[2].json()
        assert await timeline(api, iid, "status_update") == ["Rolling back deploy 4812"]

        acks = [await api.post(f"/v1/incidents/{iid}/acknowledge", json={"by": "alice"}, headers=same)
                for _ in range(2)]
        assert [a.status_code for a in acks] == [200, 200], "a retried ack gets the first answer, not 409"
        assert acks[0].json() == acks[1].json() and "acknowledged by alice" in acks[0].json()["text"]
        again = await api.post(f"/v1/incidents/{iid}/acknowledge", json={"by": "alice"}, headers=key())
        assert again.status_code == 409, "a new request (new key) is a new command"

        note = {"text": "pool size 20, 400 waiters", "by": "bob", "request_id": "from-the-body-is-ignored"}
        notes = [await api.post(f"/v1/incidents/{iid}/notes", json=note, headers=same) for _ in range(3)]
        assert {n.status_code for n in notes} == {202}
        await api.post(f"/v1/incidents/{iid}/notes", json=note)  # no key: a note as before
        await eventually(lambda: timeline(api, iid, "note"), lambda t: len(t) >= 2)
        await asyncio.sleep(0.5)
        assert await timeline(api, iid, "note") == ["pool size 20, 400 waiters"] * 2, "3 keyed + 1 unkeyed → 2"

        bad = await api.post(f"/v1/incidents/{iid}/notes", json=note, headers={"Idempotency-Key": "x" * 256})
        assert bad.status_code == 422 and "Idempotency-Key" in bad.json()["error"]


async def test_a_retried_page_pages_once(dev_env: WorkflowEnvironment) -> None:
    async with running_worker(dev_env.client) as (settings, _), http(create_app(settings, dev_env.client)) as api:
        iid = await declare(api)
        same, page = key(), {"person": "erin", "by": "alice", "note": "DB expert"}
        first, second = await asyncio.gather(*(api.post(f"/v1/incidents/{iid}/page", json=page, headers=same)
                                               for _ in range(2)))
        third = await api.post(f"/v1/incidents/{iid}/page", json=page, headers=same)
        assert first.status_code == second.status_code == third.status_code == 200, first.text
        assert first.json() == second.json() == third.json()
        assert await timeline(api, iid, "page") == ["Paged erin (manual, by alice) via log"]
        assert (await api.get(f"/v1/incidents/{iid}")).json()["pages"] == 1


async def test_declare_five_times_with_one_key_declares_once(dev_env: WorkflowEnvironment) -> None:
    service = f"idem-{uuid.uuid4().hex[:6]}"
    async with running_worker(dev_env.client) as (settings, _), http(create_app(settings, dev_env.client)) as api:
        body = {"title": "Payments failing", "severity": "SEV2", "service": service, "declared_by": "pat",
                "page": False}
        same = key()
        racing = await asyncio.gather(*(api.post("/v1/incidents", json=body, headers=same) for _ in range(3)))
        retried = [await api.post("/v1/incidents", json=body, headers=same) for _ in range(2)]
        answers = [*racing, *retried]
        assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
        assert len({a.text for a in answers}) == 1 and len({a.headers["location"] for a in answers}) == 1
        inc = Incidents(dev_env.client, settings)
        await eventually(lambda: inc.list(service=service), lambda rows: len(rows) >= 1)
        await asyncio.sleep(1.0)  # visibility: a second incident would show by now
        assert [r.id for r in await inc.list(service=service)] == [answers[0].json()["id"]]

        other = await api.post("/v1/incidents", json={**body, "title": "Something else"}, headers=same)
        assert other.status_code == 422 and "Idempotency-Key" in other.json()["error"], other.text
        fresh = await api.post("/v1/incidents", json=body, headers=key())
        assert fresh.status_code == 201 and fresh.json()["id"] != answers[0].json()["id"], "a new key declares anew"


# ------------------------------------------------------------------------------------------- no worker


async def cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "incidentflow.cli", *args, env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=Path(__file__).parent.parent)
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_no_worker_means_503_in_time_then_the_retry_applies_once(dev_env: WorkflowEnvironment,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCIDENTFLOW_COMMAND_DEADLINE", "3")
    settings = Settings(task_queue=f"tq-{uuid.uuid4().hex[:8]}")
    api = http(create_app(settings, dev_env.client))
    async with build_worker(dev_env.client, settings, LogNotifier(), fail_fast=True):
        iid = await declare(api)
        await eventually(lambda: api.get(f"/v1/incidents/{iid}"), lambda r: r.status_code == 200)
    try:
        same, update = key(), {"text": "Failing over to the standby", "by": "alice"}
        started = time.monotonic()
        r = await api.post(f"/v1/incidents/{iid}/status-updates", json=update, headers=same)
        assert r.status_code == 503 and r.headers.get("retry-after"), r.text
        assert time.monotonic() - started < 8, "answered at the deadline (3 s), not after minutes"
        assert "no incidentflow worker accepted the command within 3 s" in r.json()["error"]
        started = time.monotonic()
        read = await api.get(f"/v1/incidents/{iid}")
        assert read.status_code == 503 and read.headers.get("retry-after") and time.monotonic() - started < 8, read.text

        env = {"INCIDENTFLOW_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
               "INCIDENTFLOW_TASK_QUEUE": settings.task_queue, "INCIDENTFLOW_USER": "carol"}
        code, _, err = await cli("note", iid, "noted without a worker", env=env)
        assert code == 0, err  # a note is a signal: durable in Temporal, no worker needed
        code, _, err = await cli("update", iid, "From the CLI", env=env)
        assert code == 4 and "no incidentflow worker accepted" in err, (code, err)
        retry = shlex.split(err.split("`incidentflow ", 1)[1].split("`", 1)[0])
        assert retry[0] == "--idempotency-key" and retry[2:] == ["update", iid, "From the CLI"], err

        async with build_worker(dev_env.client, settings, LogNotifier(), fail_fast=True):
            done = await eventually(lambda: api.post(f"/v1/incidents/{iid}/status-updates", json=update,
                                                     headers=same), lambda r: r.status_code == 200, timeout=60)
            assert "status update posted" in done.json()["text"]
            code, out, err = await cli(*retry, env=env)
            assert code == 0, err
            texts = await timeline(api, iid, "status_update")
            assert texts.count("Failing over to the standby") == 1 and texts.count("From the CLI") == 1, texts
            assert await timeline(api, iid, "note") == ["noted without a worker"]
    finally:
        await dev_env.client.get_workflow_handle(iid).terminate("test finished")
        await api.aclose()


async def test_readyz_drops_the_worker_within_seconds(dev_env: WorkflowEnvironment) -> None:
    async with running_worker(dev_env.client) as (settings, _):
        api = http(create_app(settings, dev_env.client))
        await eventually(lambda: api.get("/readyz"), lambda r: r.status_code == 200)
    stopped = time.monotonic()
    try:
        down = await eventually(lambda: api.get("/readyz"), lambda r: r.status_code == 503, timeout=15)
        assert time.monotonic() - stopped < 8, "the stopped worker was reported for too long"
        assert down.json()["checks"] == {"temporal": True, "worker": False}
    finally:
        await api.aclose()


# ------------------------------------------------------------------------------------------- 404


async def non_incidents(api: httpx.AsyncClient, inc: Incidents) -> tuple[str, str, list[str]]:
    """An alert group and an escalation (their incident is real), and ids that name nothing."""
    iid = await declare(api, severity="SEV2", service="checkout", page=True)
    alert = {"title": "Disk full", "service": "search", "severity": "SEV3", "dedup_key": uuid.uuid4().hex}
    group = (await api.post("/v1/alerts/generic", json=alert)).json()["group_id"]
    # an escalation child, as incidents from before code level 3 have (theirs run inside them): never an incident
    escalation = f"{iid}-escalation-1"
    await inc.client.start_workflow(EscalationWorkflow.run, EscalationStart(
        incident_id=iid, summary="[SEV2] x", severity=Severity.SEV2), id=escalation, task_queue="nobody-polls-this")
    return group, escalation, [group, escalation, f"incident-{uuid.uuid4().hex[:8]}-nothing", "nope"]


async def test_ids_that_are_not_incidents_are_404_everywhere(dev_env: WorkflowEnvironment) -> None:
    config = load_config(EXAMPLE)
    async with running_worker(dev_env.client, config=lambda: config) as (settings, _), \
            http(create_app(settings, dev_env.client, config)) as api:
        inc = Incidents(dev_env.client, settings, config)
        group, escalation, ids = await non_incidents(api, inc)
        for bad in ids:
            answers = {"show": await api.get(f"/v1/incidents/{bad}"),
                       "timeline": await api.get(f"/v1/incidents/{bad}/timeline"),
                       "runbooks": await api.post(f"/v1/incidents/{bad}/runbooks",
                                                  json={"name": "scale-up", "by": "pat"})}
            for command in COMMANDS:
                answers[command.name] = await api.post(f"/v1/incidents/{bad}/{command.http_path.rsplit('/', 1)[1]}",
                                                       json=body_for(command), headers=key())
            wrong = {name: (r.status_code, r.text[:120]) for name, r in answers.items()
                     if r.status_code != 404 or "no incident with id" not in r.json()["error"]}
            assert not wrong, (bad, wrong)
        state = await inc.alert_group(group)
        assert state is not None and state.incident_id and state.incident_phase is not None, "the group runs on"

        env = {"INCIDENTFLOW_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
               "INCIDENTFLOW_TASK_QUEUE": settings.task_queue}
        for args in (("show", group), ("note", group, "x"), ("ack", escalation)):
            code, _, err = await cli(*args, env=env)
            assert code == 1 and "no incident with id" in err, (args, code, err)

        people = IncidentflowConfig.model_validate({"people": [{"id": "pat", "name": "Pat", "slack": "UPAT0001"}]})
        gateway = SlackGateway(lambda: _async(inc), lambda: people, None)
        reply = await gateway.command({"text": f"note {escalation} hello", "user_id": "UPAT0001", "channel_id": "C1"})
        assert "no incident with id" in reply.text, reply.text
        pressed, _ = await gateway.interaction({"type": "block_actions", "user": {"id": "UPAT0001"},
                                                "actions": [{"action_id": render.ACK, "value": group}]})
        assert pressed is not None and "no incident with id" in pressed.text, pressed


async def _async(value: Any) -> Any:
    return value
