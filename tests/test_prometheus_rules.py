"""Alerting on incidentflow itself: deploy/prometheus/rules.yaml passes `promtool check rules` (Debian's
`prometheus`, apt-installed when missing), its unit tests (rules_test.yaml) fire every alert, and every metric
the rules and the Grafana dashboard (deploy/grafana/incidentflow.json) query is one that incidentflow really
exposes: scraped from the real API's /metrics and from a real worker's metrics port (Temporal SDK metrics and
ours) after a small run on a dev server: an incident pages, a page fails once, then Temporal goes away."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.metrics import install, recorder
from activities.paging import LogPager
from domain.config import IncidentflowConfig, Settings
from domain.models import DeclareInput, Severity
from domain.models.paging import PageRequest, PageResult
from incidentflow.api import create_app
from incidentflow.client import Incidents
from tests.conftest import _start_dev
from tests.debian import ensure
from tests.helpers import eventually, free_port
from workers.main import build_worker
from workers.metrics import worker_runtime

ROOT = Path(__file__).parent.parent
RULES = ROOT / "deploy/prometheus/rules.yaml"
RULES_TEST = ROOT / "deploy/prometheus/rules_test.yaml"
DASHBOARD = ROOT / "deploy/grafana/incidentflow.json"
CONFIG = IncidentflowConfig.model_validate({
    "people": [{"id": "pat", "name": "Pat", "notify": ["log"]}],
    "escalation_policies": [{"name": "default", "levels": [{"wait": "15m", "targets": [{"person": "pat"}]}]}],
})
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool",
            "inf", "nan"}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
            "summary": ("", "_count", "_sum", "_created"), "gauge": ("",), "unknown": ("",)}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = ensure("prometheus", ["promtool"])  # Debian's prometheus package ships it
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------------------------------- PromQL names
def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL (or Grafana) expression selects: not functions, keywords, labels, durations."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^{}]*\}|\[[^\]]*\]", " ", expr)  # matchers; ranges (and Grafana's $__rate_interval)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\$\{?\w+\}?", " ", expr)
    names = set()
    for found in re.finditer(r"(?<![\w.$])[A-Za-z_:][\w:]*", expr):
        if not expr[found.end():].lstrip().startswith("(") and found.group().lower() not in KEYWORDS:
            names.add(found.group())
    return names


def matcher_labels(expr: str) -> dict[str, set[str]]:
    """metric -> the label names its selectors match on."""
    out: dict[str, set[str]] = {}
    for metric, block in re.findall(r"([A-Za-z_:][\w:]*)\s*\{([^}]*)\}", expr):
        out.setdefault(metric, set()).update(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", block))
    return out


def test_metric_names_finds_metrics_only() -> None:
    expr = ('histogram_quantile(0.99, sum by (route, le) (rate(a_bucket{route=~"/v1/x|y", le!="1"}[$__rate_interval])))'
            ' / on (route) group_left sum(b_total offset 15m) or absent(c{x="by"}) > bool 1e3 unless d')
    assert metric_names(expr) == {"a_bucket", "b_total", "c", "d"}
    assert matcher_labels(expr) == {"a_bucket": {"route", "le"}, "c": {"x"}}


# ------------------------------------------------------------------------------------------------- promtool
def test_promtool_checks_the_rules() -> None:
    run = promtool("check", "rules", str(RULES))
    assert run.returncode == 0 and "SUCCESS" in run.stdout, run.stdout + run.stderr


def test_promtool_unit_tests_fire_every_alert() -> None:
    run = promtool("test", "rules", str(RULES_TEST))
    assert run.returncode == 0 and "SUCCESS" in run.stdout, run.stdout + run.stderr
    fired = {case["alertname"] for test in yaml.safe_load(RULES_TEST.read_text())["tests"]
             for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert fired == set(alerts()), "every alert has a unit test in which it fires"


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}


def test_every_alert_waits_says_how_bad_and_what_to_do() -> None:
    assert {"IncidentflowNoWorkerPolling", "IncidentflowWorkerPollsFailing", "IncidentflowWorkflowTaskBacklog",
            "IncidentflowActivityFailing", "IncidentflowWebhookErrors", "IncidentflowPagesFailed"} <= set(alerts())
    for name, rule in alerts().items():
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), f"{name}: a `for:` so one bad scrape pages no one"
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), name


# ------------------------------------------------------------------------------------------ what is exposed
def exposition(text: str) -> dict[str, set[str]]:
    """Sample names a scrape offers (those of declared families too, even without samples yet) -> label names."""
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for suffix in SUFFIXES.get(family.type, ("",)):
            out.setdefault(family.name + suffix, set())
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


class FlakyPager(LogPager):
    """The log pager, down for its first page (the activity fails once and is retried)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    async def send(self, request: PageRequest) -> PageResult:
        if self.down:
            self.down = False
            raise RuntimeError("pager down")
        return await super().send(request)


async def _api_scrape(client: Client, data_dir: Path) -> str:
    app = create_app(Settings(data_dir=data_dir), client, CONFIG)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        assert (await http.get("/healthz")).status_code == 200  # one answer: the latency histogram has a child
        return (await http.get("/metrics")).text


async def _worker_scrapes(data_dir: Path) -> AsyncIterator[str]:
    """Scrapes of a worker's metrics port: during a small run, then once Temporal is gone (poll failures)."""
    env = await _start_dev()  # our own server: this test stops it under the worker
    running = True
    try:
        port = free_port()
        settings = Settings(task_queue=f"tq-{uuid.uuid4().hex[:8]}", worker_metrics_port=port,
                            worker_metrics_host="127.0.0.1", data_dir=data_dir)
        client = await Client.connect(env.client.service_client.config.target_host,
                                      runtime=worker_runtime(settings), data_converter=pydantic_data_converter)
        pager, url = FlakyPager(), f"http://127.0.0.1:{port}/metrics"
        async with httpx.AsyncClient() as http, build_worker(client, settings, pagers={"log": pager},
                                                             config=lambda: CONFIG):
            await Incidents(client, settings, CONFIG).declare(
                DeclareInput(title="Rules check", severity=Severity.SEV2, declared_by="pat"))
            await eventually(lambda: asyncio.sleep(0, pager.sent), lambda sent: len(sent) == 1)
            recorder().slack_call("chat.postMessage", "ok")  # no Slack or runbook in this run: one of each
            recorder().runbook_step("scale", "ok")
            yield (await eventually(lambda: http.get(url), lambda r: "incidentflow_time_to_first_page" in r.text)).text
            running = False
            await env.shutdown()
            yield (await eventually(lambda: http.get(url), lambda r: "temporal_long_request_failure" in r.text)).text
    finally:
        if running:
            await env.shutdown()


@pytest.fixture(scope="module")
async def exposed(dev_env: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    names = exposition(await _api_scrape(dev_env.client, tmp_path_factory.mktemp("api")))
    try:
        async for text in _worker_scrapes(tmp_path_factory.mktemp("worker")):
            for name, labels in exposition(text).items():
                names.setdefault(name, set()).update(labels)
    finally:
        install(None)  # the worker's recorder must not outlive it into other tests
    return names


def _check(exprs: list[str], exposed: dict[str, set[str]]) -> set[str]:
    used: set[str] = set()
    for expr in exprs:
        missing = metric_names(expr) - set(exposed)
        assert not missing, f"{sorted(missing)} are exposed by neither the API nor the worker: {expr}"
        for metric, labels in matcher_labels(expr).items():
            assert labels <= exposed[metric], f"{metric} has no label {sorted(labels - exposed[metric])}: {expr}"
        used |= metric_names(expr)
    return used


def test_every_metric_in_the_rules_is_exposed(exposed: dict[str, set[str]]) -> None:
    used = _check([rule["expr"] for rule in alerts().values()], exposed)
    assert {"temporal_num_pollers", "temporal_workflow_task_schedule_to_start_latency_bucket",
            "temporal_activity_execution_failed_total", "incidentflow_http_request_duration_seconds_count",
            "incidentflow_pages_total"} <= used


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found += [panel, *panel.get("panels", [])]
    return found


def test_dashboard_is_valid_and_queries_only_exposed_metrics(exposed: dict[str, set[str]]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    queried = [p for p in panels(dashboard) if p["type"] != "row"]
    for panel in queried:
        assert panel["targets"] and all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]), \
            f"{panel['title']}: every query uses the datasource variable"
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
    metric, label = re.fullmatch(r"label_values\((\w+), *(\w+)\)", variables["task_queue"]["definition"]).groups()  # type: ignore[union-attr]
    assert label in exposed[metric], "the task queue variable lists a label the metric has"
    used = _check([t["expr"] for p in queried for t in p["targets"]], exposed)
    assert {"incidentflow_incidents_declared_total", "incidentflow_alerts_received_total",
            "incidentflow_http_request_duration_seconds_bucket", "incidentflow_pages_total",
            "incidentflow_slack_calls_total", "temporal_workflow_task_schedule_to_start_latency_bucket",
            "temporal_activity_execution_failed_total", "incidentflow_time_to_acknowledge_seconds_bucket",
            "incidentflow_time_to_resolve_seconds_bucket"} <= used
