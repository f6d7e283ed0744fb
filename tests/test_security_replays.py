"""Issue 11, item 6: a signed request replayed across processes is applied once.

- Slack: the in-process replay guard forgets on restart and is not shared between replicas. The request's
  signature is its idempotency key, so replayed to a second API app (fresh memory) it changes nothing more.
- PagerDuty signs no timestamp: an event delivered twice is applied once (keyed by its event id, durably),
  and an old `incident.resolved` cannot resolve an incident reopened after it happened.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from temporalio.testing import WorkflowEnvironment

from domain.config import IncidentflowConfig, Settings
from domain.pagerduty_webhook import sign
from incidentflow.api import create_app
from incidentflow.client import Incidents
from tests.conftest import running_worker
from tests.helpers import eventually
from tests.test_slack_e2e import SECRET, command_body, signed

ALICE = "UALICE0001"
PD_SECRET = "pd-s3cret"


def http(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api", timeout=60)  # type: ignore[arg-type]


async def test_a_slack_request_replayed_to_another_api_process_is_applied_once(dev_env: WorkflowEnvironment) -> None:
    people = IncidentflowConfig.model_validate({"people": [{"id": "alice", "name": "Alice", "slack": ALICE}]})
    service = f"replay-{uuid.uuid4().hex[:6]}"
    async with running_worker(dev_env.client, config=lambda: people) as (settings, _):
        cfg = Settings.model_validate({**settings.model_dump(), "slack_signing_secret": SECRET})
        replicas = [create_app(cfg, dev_env.client, people) for _ in range(2)]  # two replicas, or one restarted
        for app in replicas:
            app.state.slack_ack_budget = 60  # answer in the body, however slow the machine
        async with http(replicas[0]) as one, http(replicas[1]) as two:
            async def both(text: str) -> list[httpx.Response]:
                body = command_body(text, ALICE, "C0GENERAL")
                headers = signed(body)
                answers = [await one.post("/slack/commands", content=body, headers=headers),
                           await two.post("/slack/commands", content=body, headers=headers)]
                assert (await one.post("/slack/commands", content=body, headers=headers)).status_code == 401, \
                    "the process that saw it still refuses it at once"
                return answers

            declared = await both(f"declare sev4 service={service} Replayed checkout outage")
            assert [r.status_code for r in declared] == [200, 200] and declared[0].json() == declared[1].json()
            found = re.search(r"incident-\d{8}-\d{4}-[a-z0-9-]+", declared[0].json()["text"])
            assert found, declared[0].text
            iid = found.group(0)
            updated = await both(f"update {iid} Rolled back deploy 4812")
            assert updated[0].json() == updated[1].json() and "status update posted" in updated[0].json()["text"]
            noted = await both(f"note {iid} pool size 20")
            assert noted[0].json() == noted[1].json()

            inc = Incidents(dev_env.client, settings, people)
            state = await eventually(lambda: inc.get(iid), lambda s: any(e.kind == "note" for e in s.timeline))
            assert [e.text for e in state.timeline if e.kind == "status_update"] == ["Rolled back deploy 4812"]
            assert [e.text for e in state.timeline if e.kind == "note"] == ["pool size 20"]
            await eventually(lambda: inc.list(service=service), lambda r: len(r) >= 1)
            await asyncio.sleep(1.0)  # visibility: a second incident would show by now
            assert [r.id for r in await inc.list(service=service)] == [iid], "one incident, however often replayed"


def pd_event(event_type: str, incident_key: str, occurred_at: datetime) -> bytes:
    return json.dumps({"event": {"id": uuid.uuid4().hex, "event_type": event_type, "resource_type": "incident",
                                 "occurred_at": occurred_at.isoformat().replace("+00:00", "Z"),
                                 "agent": {"id": "P1", "type": "user_reference", "summary": "Pat Ops"},
                                 "data": {"id": "Q1", "type": "incident", "number": 7, "title": "x",
                                          "status": "resolved", "incident_key": incident_key}}}).encode()


async def test_pagerduty_events_apply_once_and_never_resolve_a_reopened_incident(
        dev_env: WorkflowEnvironment) -> None:
    async with running_worker(dev_env.client) as (settings, _):
        cfg = Settings.model_validate({**settings.model_dump(), "pagerduty_webhook_secrets": [PD_SECRET]})
        api, replica = http(create_app(cfg, dev_env.client)), http(create_app(cfg, dev_env.client))
        async with api, replica:
            async def deliver(body: bytes, to: httpx.AsyncClient = api) -> dict[str, str]:
                r = await to.post("/v1/webhooks/pagerduty", content=body,
                                  headers={"X-PagerDuty-Signature": sign(body, PD_SECRET)})
                assert r.status_code == 202, r.text
                return dict(r.json())

            async def phase() -> str:
                return str((await api.get(f"/v1/incidents/{iid}")).json()["phase"])

            r = await api.post("/v1/incidents", json={"title": "Checkout down", "declared_by": "pat", "page": False})
            iid = r.json()["id"]
            key = f"incidentflow-{iid}"
            resolved = pd_event("incident.resolved", key, datetime.now(UTC) - timedelta(seconds=30))
            assert (await deliver(resolved))["outcome"] == "resolve" and await phase() == "resolved"
            again = await deliver(resolved, replica)
            assert again["outcome"] == "unchanged" and "delivered before" in again["reason"], again

            reopened = await api.post(f"/v1/incidents/{iid}/reopen", json={"by": "alice", "reason": "errors are back"})
            assert reopened.status_code == 200, reopened.text
            for to in (api, replica):
                replayed = await deliver(resolved, to)
                assert replayed["outcome"] == "unchanged" and await phase() == "investigating", replayed
            older = await deliver(pd_event("incident.resolved", key, datetime.now(UTC) - timedelta(seconds=5)))
            assert older["outcome"] == "unchanged" and "before the incident was reopened" in older["reason"], older
            assert await phase() == "investigating"

            fresh = pd_event("incident.resolved", key, datetime.now(UTC) + timedelta(seconds=1))
            assert (await deliver(fresh))["outcome"] == "resolve" and await phase() == "resolved"
            timeline = (await api.get(f"/v1/incidents/{iid}")).json()["timeline"]
            resolves = [e["text"] for e in timeline if e["kind"] == "phase" and "→ resolved" in e["text"]]
            assert len(resolves) == 2, resolves
