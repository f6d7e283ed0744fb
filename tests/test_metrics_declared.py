"""`incidentflow_incidents_declared_total{source}` counts every incident opened (API, Slack, CLI, alerts
opened by the alert group in the worker), read from Temporal at scrape time; not only the API's own."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge
from temporalio.testing import WorkflowEnvironment

from domain.config import Settings, load_config
from domain.models import DeclareInput, Severity
from incidentflow.api import create_app
from incidentflow.api.metrics_incidents import SOURCES, IncidentsOpened, Opened, source_of
from incidentflow.client import Incidents
from tests.conftest import running_worker
from tests.helpers import eventually

ROOT = Path(__file__).parent.parent
CONFIG = load_config(ROOT / "config/example.yaml")
T0 = datetime(2026, 3, 6, 14, 0, tzinfo=UTC)
SERIES = re.compile(r'^incidentflow_incidents_declared_total\{source="([^"]+)"\} (\S+)$', re.M)


# ---------------------------------------------------------------- counting once, from overlapping looks

def collector(started: datetime = T0) -> tuple[IncidentsOpened, Counter]:
    registry = CollectorRegistry()
    counter = Counter("incidentflow_incidents_declared", "x", ["source"], registry=registry)
    return IncidentsOpened(counter, Gauge("up", "x", registry=registry), started), counter


def counts(counter: Counter) -> dict[str, float]:
    return {s.labels["source"]: s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total")}


def test_each_incident_is_counted_once_across_overlapping_looks() -> None:
    opened, counter = collector()
    assert counts(counter) == dict.fromkeys(SOURCES, 0.0), "every known source is exported from the start"
    a, b = Opened("a", T0 + timedelta(minutes=1), "api"), Opened("b", T0 + timedelta(minutes=2), "alertmanager")
    assert opened.count([a, b], T0 + timedelta(minutes=3)) == 2
    assert opened.count([b, a, Opened("c", T0 + timedelta(minutes=4), "api")], T0 + timedelta(minutes=5)) == 1
    assert opened.window == T0, "the next look goes back the overlap (10 min), not before the process started"
    assert opened.count([Opened("old", T0 - timedelta(seconds=1), "cli")], T0 + timedelta(minutes=6)) == 0
    assert opened.count([], T0 + timedelta(hours=1)) == 0
    assert opened.window == T0 + timedelta(minutes=50) and opened.seen == {}, "memory stays bounded"
    assert counts(counter)["api"] == 2 and counts(counter)["alertmanager"] == 1 and counts(counter)["cli"] == 0


@pytest.mark.parametrize("memo, parent, label", [
    ("slack", None, "slack"), ("grafana", "alertgroup-1f2e", "grafana"), (None, "alertgroup-1f2e", "alert"),
    (None, None, "unknown"), ("Robert'); DROP", None, "unknown"), ("x" * 40, None, "unknown"), (7, None, "unknown"),
])
def test_the_source_label_comes_from_the_memo_and_stays_bounded(memo: object, parent: str | None,
                                                               label: str) -> None:
    assert source_of(memo, parent) == label


# ---------------------------------------------------------------- against a real server

def am_payload(service: str, severity: str = "critical") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "tests/fixtures/alertmanager-firing.json").read_text())
    data["groupKey"] = f'{{}}:{{alertname="CheckoutErrorRate", service="{service}", run="{uuid.uuid4().hex}"}}'
    for alert in data["alerts"]:
        alert["labels"].update(service=service, severity=severity)
        alert["fingerprint"] = uuid.uuid4().hex[:16]
    data["commonLabels"].update(service=service, severity=severity)
    return data


def declared(metrics: str) -> dict[str, float]:
    return {source: float(value) for source, value in SERIES.findall(metrics)}


async def open_incidents(env: WorkflowEnvironment, http: httpx.AsyncClient, settings: Any) -> list[str]:
    """Two declared over the API, one by another process (the CLI's door), two opened by alerts in the
    worker, and one alert that only annotates (no incident). Returns the declared ids."""
    ids = [(await http.post("/v1/incidents", json={"title": f"api {n}", "declared_by": "alice", "page": False},
                            headers={"Idempotency-Key": uuid.uuid4().hex})).json()["id"] for n in range(2)]
    ids.append(await Incidents(env.client, settings, CONFIG).declare(
        DeclareInput(title="from the CLI", severity=Severity.SEV3, declared_by="bob", page=False)))
    for service in ("checkout", "search"):
        assert (await http.post("/v1/alerts/alertmanager", json=am_payload(service))).json()["outcome"] == "accepted"
    annotate = await http.post("/v1/alerts/alertmanager", json=am_payload("checkout", "info"))
    assert annotate.json()["outcome"] in ("annotated", "ignored")
    return ids


async def test_every_incident_opened_is_counted_whoever_opened_it(fresh_dev_env: WorkflowEnvironment) -> None:
    async with running_worker(fresh_dev_env.client, config=lambda: CONFIG) as (settings, _):
        app = create_app(settings, fresh_dev_env.client, CONFIG)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
            assert sum(declared((await http.get("/metrics")).text).values()) == 0
            await open_incidents(fresh_dev_env, http, settings)
            seen = await eventually(lambda: http.get("/metrics"), lambda r: sum(declared(r.text).values()) >= 5)
            counted = declared(seen.text)
            assert sum(counted.values()) == 5, counted
            assert counted.get("alert", 0) + counted.get("alertmanager", 0) == 2, "the worker's incidents count too"
            assert "incidentflow_incidents_declared_up 1.0" in seen.text
            again = declared((await http.get("/metrics")).text)
            assert again == counted, "a second scrape counts nothing twice"


async def test_the_source_label_names_the_door(fresh_dev_env: WorkflowEnvironment) -> None:
    async with running_worker(fresh_dev_env.client, config=lambda: CONFIG) as (settings, _):
        app = create_app(settings, fresh_dev_env.client, CONFIG)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
            await open_incidents(fresh_dev_env, http, settings)
            seen = await eventually(lambda: http.get("/metrics"), lambda r: sum(declared(r.text).values()) >= 5)
            counted = {k: v for k, v in declared(seen.text).items() if v}
            assert counted == {"api": 2, "unknown": 1, "alertmanager": 2}, counted  # the bare door names no source


async def test_a_server_without_visibility_keeps_the_counts_and_says_so(ts_env: WorkflowEnvironment) -> None:
    app = create_app(Settings(), ts_env.client, CONFIG)  # the time-skipping server cannot list workflows
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        answer = await http.get("/metrics")
    assert answer.status_code == 200 and "incidentflow_incidents_declared_up 0.0" in answer.text
    assert sum(declared(answer.text).values()) == 0
