"""A real Prometheus Alertmanager (Debian package) → our HTTP API (uvicorn) → the real dev server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from tests.alertmanager_harness import Alertmanager
from tests.conftest import serve_api
from tests.helpers import eventually

ROOT = Path(__file__).parent.parent
TOKEN = "am-e2e-token"


@pytest.fixture
async def api_url(dev_env: WorkflowEnvironment) -> AsyncIterator[str]:
    async with serve_api(dev_env, alertmanager_token=TOKEN) as url:
        yield url


async def test_real_alertmanager_fires_repeats_and_resolves(api_url: str, tmp_path: Path) -> None:
    svc = f"am-{uuid.uuid4().hex[:6]}"
    web1 = {"alertname": "CheckoutErrorRate", "service": svc, "severity": "critical", "instance": "web-1"}
    web2 = {**web1, "instance": "web-2"}
    notes = {"summary": "Checkout error rate above 5%", "runbook_url": "https://runbooks.example.com/checkout"}
    with Alertmanager(f"{api_url}/v1/alerts/alertmanager", tmp_path, bearer_token=TOKEN) as am:
        async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
            async def incidents() -> list[dict]:
                return (await http.get("/v1/incidents", params={"service": svc})).json()  # type: ignore[no-any-return]

            await asyncio.to_thread(am.fire, web1, notes)
            rows = await eventually(incidents, lambda r: len(r) == 1, timeout=30)
            assert rows[0]["severity"] == "SEV2" and rows[0]["title"] == f"CheckoutErrorRate on {svc}", \
                "the title comes from labels; the summary goes to the description and the timeline"
            iid = rows[0]["id"]

            await asyncio.to_thread(am.fire, web1, notes)  # the same alert again
            await asyncio.to_thread(am.fire, web2, notes)  # and a second instance in the same group
            state = await eventually(lambda: http.get(f"/v1/incidents/{iid}"),
                                     lambda r: len(r.json()["alerts"]) == 2, timeout=30)
            assert len(await incidents()) == 1, "one Alertmanager group, one incident"
            assert {a["status"] for a in state.json()["alerts"].values()} == {"firing"}

            await asyncio.to_thread(am.resolve, web1, notes)
            await asyncio.to_thread(am.resolve, web2, notes)
            state = await eventually(lambda: http.get(f"/v1/incidents/{iid}"),
                                     lambda r: r.json()["phase"] == "monitoring", timeout=30)
            assert {a["status"] for a in state.json()["alerts"].values()} == {"resolved"}
            timeline = (await http.get(f"/v1/incidents/{iid}/timeline", params={"format": "markdown"})).text
            assert "alertmanager: Declared SEV2 on " + svc in timeline
            assert "alertmanager: Alert resolved: Checkout error rate above 5%" in timeline
            assert f"The alert names service '{svc}', which is not in the config's services" in timeline, \
                "a service the config does not list still opens an incident, with a warning"
            assert "every alert has resolved: the monitoring window starts" in timeline
            assert len(await incidents()) == 1
            metrics = (await http.get("/metrics")).text
            assert 'incidentflow_alerts_received_total{outcome="accepted",source="alertmanager"}' in metrics
    log = am.log_tail(100_000)
    assert "level=error" not in log and log.count('msg="Notify success"') >= 3, log
