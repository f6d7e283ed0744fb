"""Alerts for a component under scheduled maintenance, through the real API and worker on a dev server of the
test's own (visibility lists open incidents by service: no other test's incident may answer):
with an incident open on the service they annotate it instead of paging, and with
`statuspage.maintenance_pages_sev1: false` a SEV1 does not page either."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.testing import WorkflowEnvironment

from domain.config import IncidentflowConfig, load_config
from tests.conftest import serve_api

EXAMPLE = Path(__file__).parent.parent / "config" / "example.yaml"


def config(pages_sev1: bool) -> IncidentflowConfig:
    cfg = load_config(EXAMPLE)
    return cfg.model_copy(update={"statuspage": cfg.statuspage.model_copy(
        update={"url": "http://status.test", "maintenance_pages_sev1": pages_sev1})})


async def eventually(check: Any, tries: int = 300) -> Any:
    for _ in range(tries):
        got = await check()
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError("never happened")


async def start_maintenance(api: httpx.AsyncClient, component: str) -> str:
    now = datetime.now(UTC)
    made = await api.post("/v1/maintenances", json={
        "title": "Auth database upgrade", "components": [component], "by": "alice",
        "start": (now + timedelta(seconds=1)).isoformat(), "end": (now + timedelta(hours=1)).isoformat()})
    assert made.status_code == 201, made.text

    async def under() -> bool:
        r = await api.get("/api/v2/components.json")
        return r.status_code == 200 and any(c["id"] == component and c["status"] == "under_maintenance"
                                            for c in r.json()["components"])
    await eventually(under)
    return str(made.json()["id"])


def alert(title: str, severity: str, key: str) -> dict[str, str]:
    return {"title": title, "service": "login", "severity": severity, "dedup_key": key}


async def test_alerts_annotate_the_open_incident_and_a_sev1_pages_not_when_so_configured(
        fresh_dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    async with serve_api(fresh_dev_env, config=config(pages_sev1=False), data_dir=tmp_path) as url, \
            httpx.AsyncClient(base_url=url, timeout=30) as api:
        mid = await start_maintenance(api, "login")
        quiet = await api.post("/v1/alerts/generic", json=alert("Login down", "SEV1", "login-down"))
        assert quiet.status_code == 202 and quiet.json()["outcome"] == "ignored", quiet.text  # no page, even SEV1
        assert mid in quiet.json()["reason"] and "does not page" in quiet.json()["reason"]

        iid = (await api.post("/v1/incidents", json={"title": "Sign-in slow", "severity": "SEV3", "service": "login",
                                                      "declared_by": "alice", "page": False})).json()["id"]

        async def listed() -> bool:
            r = await api.get("/v1/incidents", params={"open": "true", "service": "login"})
            return [i["id"] for i in r.json()] == [iid]
        await eventually(listed)
        for title, severity, key in (("Login errors", "SEV3", "login-errors"), ("Login down", "SEV1", "login-down")):
            got = await api.post("/v1/alerts/generic", json=alert(title, severity, key))
            assert got.status_code == 202, got.text
            assert (got.json()["outcome"], got.json()["incident_id"]) == ("annotated", iid), got.text

        async def recorded() -> Any:
            state = (await api.get(f"/v1/incidents/{iid}")).json()
            return state if len(state["alerts"]) == 2 else None
        state = await eventually(recorded)
        assert sorted(a["title"] for a in state["alerts"].values()) == ["Login down", "Login errors"]
        assert state["escalations"] == 0 and state["severity"] == "SEV3"  # annotated: nobody paged, not raised
        incidents = (await api.get("/v1/incidents", params={"service": "login"})).json()
        assert [i["id"] for i in incidents] == [iid], "no incident opened by the alerts"


async def test_by_default_a_sev1_under_maintenance_still_opens_an_incident_beside_the_open_one(
        fresh_dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    """The other side of the setting: `maintenance_pages_sev1` defaults to true, so a SEV1 is routed as usual
    (it opens its alert group) even while an incident is open on the service; a SEV3 annotates."""
    async with serve_api(fresh_dev_env, config=config(pages_sev1=True), data_dir=tmp_path) as url, \
            httpx.AsyncClient(base_url=url, timeout=30) as api:
        await start_maintenance(api, "login")
        iid = (await api.post("/v1/incidents", json={"title": "Sign-in slow", "severity": "SEV3", "service": "login",
                                                      "declared_by": "alice", "page": False})).json()["id"]

        async def listed() -> bool:
            r = await api.get("/v1/incidents", params={"open": "true", "service": "login"})
            return [i["id"] for i in r.json()] == [iid]
        await eventually(listed)
        sev3 = await api.post("/v1/alerts/generic", json=alert("Login errors", "SEV3", "login-errors"))
        assert (sev3.json()["outcome"], sev3.json()["incident_id"]) == ("annotated", iid), sev3.text
        sev1 = await api.post("/v1/alerts/generic", json=alert("Login down", "SEV1", "login-down"))
        assert sev1.json()["outcome"] == "accepted" and sev1.json()["group_id"], sev1.text
