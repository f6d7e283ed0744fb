"""The archive end to end on a real dev server: incidents are archived at their milestones and whole when they
end; after `temporal workflow delete` (what retention does) `show`, `timeline`, `list` and the HTTP API read the
archive; `archive sync` backfills; reports over HTTP and the CLI agree with figures worked out by hand; the
time-to-acknowledge/resolve histograms reach /metrics; a retried write and a killed worker leave one record."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import delete, func, select
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.archive import ArchiveActivities
from activities.records.schema import metadata
from domain.archive.build import archived_from
from domain.archive.models import ArchiveQuery
from domain.config import IncidentflowConfig
from domain.models import DeclareInput, IncidentState, Phase, Severity
from incidentflow.client import Incidents
from tests.conftest import serve_api
from tests.helpers import eventually

ROOT = Path(__file__).parent.parent
CONFIG = IncidentflowConfig.model_validate({"people": [{"id": "alice", "name": "Alice"}, {"id": "bob", "name": "Bob"}],
                                            "services": [{"name": "checkout"}, {"name": "search"}]})


def declare(title: str, severity: Severity = Severity.SEV2, service: str = "checkout") -> DeclareInput:
    return DeclareInput(title=title, severity=severity, service=service, declared_by="alice", page=False)


async def forget(env: WorkflowEnvironment, workflow_id: str) -> None:
    """What Temporal's retention does to a closed workflow: its history is gone."""
    await env.client.workflow_service.delete_workflow_execution(DeleteWorkflowExecutionRequest(
        namespace="default", workflow_execution=WorkflowExecution(workflow_id=workflow_id)))

    async def gone() -> bool:
        try:
            await env.client.get_workflow_handle(workflow_id).describe()
            return False
        except RPCError:
            return True
    await eventually(gone, bool, timeout=150, interval=1)  # the dev server deletes within about a minute


async def test_ended_incidents_are_read_from_the_archive_once_temporal_forgot_them(
        fresh_dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    env = fresh_dev_env
    async with serve_api(env, config=CONFIG, data_dir=tmp_path) as url, \
            httpx.AsyncClient(base_url=url, timeout=30) as api:
        inc = Incidents(env.client, _local(tmp_path), CONFIG)  # reads: Temporal, then the API's archive

        async def post(path: str, body: dict[str, object]) -> dict[str, object]:
            r = await api.post(path, json=body)
            assert r.status_code in (200, 201, 202), r.text
            return dict(r.json())
        iid = str((await post("/v1/incidents", {"title": "Checkout failing", "severity": "SEV2", "service": "checkout",
                                                "declared_by": "alice", "page": False}))["id"])
        await post(f"/v1/incidents/{iid}/acknowledge", {"by": "alice"})
        await post(f"/v1/incidents/{iid}/resolve", {"by": "alice", "summary": "rolled back"})
        other = str((await post("/v1/incidents", {"title": "Search flapping", "severity": "SEV3", "service": "search",
                                                  "declared_by": "alice", "page": False}))["id"])
        await post(f"/v1/incidents/{other}/stand-down", {"by": "bob", "reason": "a test alert"})
        await env.client.get_workflow_handle(other).result()
        record = await eventually(lambda: inc.archived(other), lambda r: r is not None and r.state is not None)
        assert record.phase == "stood_down" and record.stood_down and record.state.stand_down_reason == "a test alert"
        resolved = await eventually(lambda: inc.archived(iid), lambda r: r is not None and r.phase == "resolved")
        assert resolved.acknowledged_at is not None and resolved.state is not None, "whole once resolved"

        before = (await api.get(f"/v1/incidents/{other}/timeline")).json()
        await forget(env, other)
        assert (await inc.get(other)).stand_down_reason == "a test alert"
        after = await api.get(f"/v1/incidents/{other}/timeline")
        assert after.status_code == 200 and after.json() == before, "the same timeline, from the archive"
        assert (await api.get(f"/v1/incidents/{other}")).json()["phase"] == "stood_down"
        listed = {r["id"]: r for r in (await api.get("/v1/incidents")).json()}
        assert other in listed and listed[other]["running"] is False and iid in listed
        assert (await api.get("/v1/incidents/incident-20991231-0000-nothing")).status_code == 404

        # the backfill: records lost (an install from before the archive) come back from Temporal
        await post(f"/v1/incidents/{iid}/phase", {"phase": "closed", "by": "alice"})
        await env.client.get_workflow_handle(iid).result()
        await eventually(lambda: inc.archived(iid), lambda r: r is not None and r.phase == "closed")
        with inc._records().engine.begin() as conn:
            conn.execute(delete(metadata.tables["archived_incidents"]))
        assert await inc.archived(iid) is None
        done = await inc.archive_sync()
        assert done.incidents == 1, "the closed one Temporal still has (the other was deleted)"
        synced = await inc.archived(iid)
        assert synced is not None and synced.phase == "closed" and synced.state is not None


async def test_the_report_and_the_histograms_agree_with_hand_worked_figures(dev_env: WorkflowEnvironment,
                                                                            tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    inc = Incidents(dev_env.client, _local(tmp_path), CONFIG)
    # four SEV2 checkout incidents: acknowledged after 2, 4, 6 and 20 minutes; resolved after 10, 20, 30, 60
    for n, (ack, res) in enumerate(((2, 10), (4, 20), (6, 30), (20, 60))):
        state = _state(f"incident-20261101-090{n}-checkout", now - timedelta(days=n + 1), ack, res)
        await inc._archive("put_incident", archived_from(state, "cli", now))
    stood = _state("incident-20261101-0905-checkout", now - timedelta(days=6), None, None, stand_down=True)
    await inc._archive("put_incident", archived_from(stood, "alert", now))
    report = await inc.report(ArchiveQuery(since=now - timedelta(days=30)), now)
    assert report.incidents == 5 and report.stood_down == 1
    minutes = [timedelta(minutes=m) for m in (4, 20, 8, 20, 60, 30)]
    # nearest rank: p50 of 2,4,6,20 min is the 2nd (4 min), p90 the 4th (20); mean (2+4+6+20)/4 = 8 min
    assert (report.mtta.p50, report.mtta.p90, report.mtta.mean) == tuple(minutes[:3])
    assert (report.mttr.p50, report.mttr.p90, report.mttr.mean) == tuple(minutes[3:])  # 10,20,30,60: 20, 60, 30
    assert report.alert_quality.false_positive_rate == 0.2  # 1 stood down of 5 declared

    cli = subprocess.run([sys.executable, "-m", "incidentflow.cli", "report", "--since", "30d", "--json"], cwd=ROOT,
                         env={**os.environ, "INCIDENTFLOW_DATA_DIR": str(tmp_path),
                              "INCIDENTFLOW_TEMPORAL_ADDRESS": "127.0.0.1:1"},  # Temporal down: the archive answers
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    figures = json.loads(cli.stdout)
    assert figures["mtta"]["p50"] == 240 and figures["mttr"]["mean"] == 1800 and figures["incidents"] == 5

    async with serve_api(dev_env, config=CONFIG, data_dir=tmp_path) as url, \
            httpx.AsyncClient(base_url=url, timeout=30) as api:
        body = (await api.get("/v1/reports", params={"since": "30d", "service": "checkout"})).json()
        assert body["mtta"]["p90"] == 1200 and body["by_severity"]["SEV2"] == 5
        bad = await api.get("/v1/reports", params={"since": "last tuesday", "severity": "SEV9"})
        assert bad.status_code == 422 and "since" in bad.text and "severity" in bad.text
        page = await api.get("/reports")
        assert page.status_code == 200 and "<svg" in page.text and "script" not in page.headers.get(
            "content-security-policy", "")
        metrics = (await api.get("/metrics")).text
        assert 'incidentflow_time_to_acknowledge_seconds_bucket{le="300",service="checkout",severity="SEV2"} 2.0' \
            in metrics
        assert 'incidentflow_time_to_resolve_seconds_count{service="checkout",severity="SEV2"} 4.0' in metrics


def _local(tmp_path: Path) -> Any:
    from domain.config import Settings

    return Settings(data_dir=tmp_path)


def _state(iid: str, declared: datetime, ack: int | None, res: int | None, stand_down: bool = False) -> IncidentState:
    s = IncidentState(id=iid, title="Checkout errors", service="checkout", severity=Severity.SEV2,
                      declared_at=declared, declared_by="alice", seq=10)
    if ack is not None:
        s.acknowledged_at, s.acknowledged_by = declared + timedelta(minutes=ack), "alice"
    if res is not None:
        s.resolved_at, s.phase = declared + timedelta(minutes=res), Phase.closed
        s.ended_at = s.resolved_at
    if stand_down:
        s.phase, s.ended_at, s.group_id = Phase.stood_down, declared + timedelta(minutes=3), "alertgroup-x"
    return s


async def test_a_retried_archive_write_leaves_one_record(tmp_path: Path) -> None:
    from workers.learning import LazyArchive

    lazy = LazyArchive(_local(tmp_path))  # type: ignore[arg-type]
    calls = 0

    class DiesAfterWriting:  # the worker dies after the write, before Temporal hears of it: the retry writes again
        def __getattr__(self, name: str) -> object:
            return getattr(lazy(), name)

        def put_incident(self, record: object) -> bool:
            nonlocal calls
            calls += 1
            wrote = lazy().put_incident(record)
            if calls == 1:
                raise ConnectionError("worker killed")
            return wrote

    activities = ArchiveActivities(lambda: DiesAfterWriting(), lambda: CONFIG)
    state = _state("incident-20261101-0910-checkout", datetime.now(UTC) - timedelta(hours=1), 3, 30)
    record = archived_from(state, "cli", datetime.now(UTC))
    try:
        await activities.archive_incident(record)
    except ConnectionError:
        pass
    assert await activities.archive_incident(record) is True  # the retry
    older = archived_from(state.model_copy(update={"seq": 5, "phase": Phase.investigating}), "cli", datetime.now(UTC))
    assert await activities.archive_incident(older) is False, "an older write never replaces a newer one"
    engine = _engine(tmp_path)
    with engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(metadata.tables["archived_incidents"])).scalar()
    engine.dispose()
    assert rows == 1 and (await asyncio.to_thread(lazy().get, state.id)).phase == "closed"


def _engine(tmp_path: Path) -> Any:
    from activities.records import make_engine

    return make_engine(f"sqlite:///{tmp_path}/records.db")
