"""On-call questions, the policy drill and the PagerDuty webhook, as users call them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
from temporalio.testing import WorkflowEnvironment

from domain.config import Settings, load_config
from domain.pagerduty_webhook import sign
from incidentflow.api import create_app
from tests.conftest import running_worker
from tests.helpers import eventually

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "config/example.yaml"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INCIDENTFLOW_CONFIG": str(EXAMPLE)}
    return subprocess.run([sys.executable, "-m", "incidentflow.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)


def test_oncall_across_the_london_dst_change() -> None:
    # checkout-oncall primary: weekly [alice, bob, dan], Monday 09:00 Europe/London from 2026-01-05
    before = cli("oncall", "--at", "2026-03-30T08:30", "--tz", "Europe/London", "--schedule", "checkout-oncall")
    after = cli("oncall", "--at", "2026-03-30T09:00", "--tz", "Europe/London", "--schedule", "checkout-oncall")
    assert before.returncode == after.returncode == 0, before.stderr
    assert "2026-03-30 08:30 BST" in before.stdout
    weeks = (12 - 0)  # 2026-01-05 → 2026-03-30 is 12 weeks: the 13th shift starts at 09:00 BST
    assert f"primary      {['alice', 'bob', 'dan'][(weeks - 1) % 3]}" in before.stdout
    assert f"primary      {['alice', 'bob', 'dan'][weeks % 3]}" in after.stdout
    bad = cli("oncall", "--schedule", "nope")
    assert bad.returncode == 1 and "no schedule named 'nope'" in bad.stderr


def test_drill_prints_the_plan_and_pages_nobody() -> None:
    run = cli("drill", "--service", "checkout", "--severity", "SEV2", "--at", "2026-03-29T00:30",
              "--tz", "Europe/London", "--ack-after", "50m")
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stdout.splitlines() if line.startswith("  +")]
    assert [line.split()[0] for line in lines] == ["+00:00", "+00:15", "+00:45", "+00:50"]
    assert "L1" in lines[0] and "primary of checkout-oncall" in lines[0]
    # clocks go forward at 01:00 UTC: 00:45 GMT, then 01:15 UTC shown as 02:15 BST
    assert "Sun 00:45" in lines[1] and "Sun 02:15" in lines[2]
    assert "WARN" not in run.stdout, "the drill's output is the plan only"
    assert lines[-1].endswith("acknowledged: no more pages") and "nobody was paged" in run.stdout


def client_for(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")  # type: ignore[arg-type]


def pd_event(event_type: str, incident_key: str) -> bytes:
    return json.dumps({"event": {"id": uuid.uuid4().hex, "event_type": event_type, "resource_type": "incident",
                                 "occurred_at": "2026-11-23T06:00:00Z",
                                 "agent": {"id": "P1", "type": "user_reference", "summary": "Pat Ops"},
                                 "data": {"id": "Q1", "type": "incident", "number": 7, "title": "x",
                                          "status": "acknowledged", "incident_key": incident_key}}}).encode()


async def test_pagerduty_webhook_mirrors_ack_and_resolve(dev_env: WorkflowEnvironment) -> None:
    async with running_worker(dev_env.client) as (settings, _):
        cfg = Settings.model_validate({**settings.model_dump(), "pagerduty_webhook_secrets": ["old", "new"]})
        app = create_app(cfg, dev_env.client, load_config(EXAMPLE))
        async with client_for(app) as http:
            iid = (await http.post("/v1/incidents", json={"title": "x", "declared_by": "carol", "page": False})).json()["id"]
            body = pd_event("incident.acknowledged", f"incidentflow-{iid}")
            forged = await http.post("/v1/webhooks/pagerduty", content=body,
                                     headers={"X-PagerDuty-Signature": sign(body, "wrong")})
            assert forged.status_code == 401
            ok = await http.post("/v1/webhooks/pagerduty", content=body,
                                 headers={"X-PagerDuty-Signature": f"{sign(body, 'zzz')},{sign(body, 'new')}"})
            assert ok.status_code == 202 and ok.json()["outcome"] == "acknowledge", ok.text
            state = (await http.get(f"/v1/incidents/{iid}")).json()
            assert state["acknowledged_by"] == "Pat Ops (PagerDuty)"
            again = await http.post("/v1/webhooks/pagerduty", content=body, headers={"X-PagerDuty-Signature": sign(body, "old")})
            assert again.json()["outcome"] == "unchanged", "PagerDuty echoing our own ack changes nothing"
            other = pd_event("incident.acknowledged", "some-other-tool-key")
            ignored = await http.post("/v1/webhooks/pagerduty", content=other, headers={"X-PagerDuty-Signature": sign(other, "new")})
            assert ignored.json()["outcome"] == "ignored"
            resolved = pd_event("incident.resolved", f"incidentflow-{iid}")
            done = await http.post("/v1/webhooks/pagerduty", content=resolved,
                                   headers={"X-PagerDuty-Signature": sign(resolved, "new")})
            assert done.json()["outcome"] == "resolve"
            await eventually(lambda: http.get(f"/v1/incidents/{iid}"), lambda r: r.json()["phase"] == "resolved")
            garbage = await http.post("/v1/webhooks/pagerduty", content=b"[]", headers={"X-PagerDuty-Signature": sign(b"[]", "new")})
            assert garbage.status_code == 400
            oncall: Any = (await http.get("/v1/oncall", params={"at": "2026-03-30T09:00:00+01:00"})).json()
            assert set(oncall["schedules"]) == {"checkout-oncall", "search-oncall"}
            assert (await http.get("/v1/oncall", params={"schedule": "nope"})).status_code == 404
