"""The worker's Prometheus endpoint during a small real run: the Temporal SDK's metrics and ours, scraped over HTTP.

A worker on the metrics runtime (INCIDENTFLOW_WORKER_METRICS_PORT) against the dev server pages a person through
the log and Slack (the fake Slack), runs a runbook step (the fake Prometheus), and the scrape shows pages by
channel and outcome, Slack calls by method and outcome, runbook steps by kind and outcome, the time to first
page, and the SDK's request and workflow task metrics for the worker's task queue.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities import metrics
from domain.config import IncidentflowConfig, Settings
from domain.models import DeclareInput, EventKind, Severity
from domain.models.runbook import RunStatus
from domain.statuspage.messages import statuspage_id
from incidentflow.client import Incidents
from incidentflow.client_base import connect
from tests.conftest import running_worker
from tests.fakes.prometheus import FakePrometheus
from tests.fakes.slack import FakeSlack
from tests.helpers import eventually, free_port
from workers.metrics import TemporalWorkerMetrics, worker_runtime

ROOT = Path(__file__).resolve().parents[1]

PROBE = """\
name: metrics-probe
title: Read the error ratio
steps:
  - {kind: prometheus.query, name: ratio, query: 'sum(rate(errors[5m]))'}
"""


@pytest.fixture
def recorder_restored() -> Iterator[None]:
    """build_worker installs the process's recorder: leave the NoMetrics default to the next test."""
    previous = metrics.install(None)
    yield
    metrics.install(previous)


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture
async def metrics_client(dev_env: WorkflowEnvironment, metrics_port: int) -> AsyncIterator[object]:
    settings = Settings(temporal_address=dev_env.client.service_client.config.target_host,
                        worker_metrics_port=metrics_port, worker_metrics_host="127.0.0.1")
    yield await connect(settings, runtime=worker_runtime(settings))


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the first sample of `name` whose labels include `labels` (0 when none)."""
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}\{{(.*)\}} (\S+)$", line)
        if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            return float(m.group(2))
    return 0.0


async def test_worker_metrics_port_serves_sdk_and_incidentflow_metrics(
        metrics_client: object, metrics_port: int, tmp_path: Path, recorder_restored: None) -> None:
    with FakeSlack() as slack, FakePrometheus() as prom:
        prom.set("sum(rate(errors[5m]))", 0.5)
        slack.fail_next(1, "ratelimited", method="conversations.setPurpose")  # retried by Temporal after 1 s
        alice = slack.add_user(name="alice", email="alice@example.com")
        config = IncidentflowConfig.model_validate({
            "people": [{"id": "alice", "name": "Alice", "slack": alice, "notify": ["log", "slack"]}],
            "services": [{"name": "checkout", "escalation_policy": "one"}],
            "escalation_policies": [{"name": "one", "levels": [{"wait": "10m", "targets": [{"person": "alice"}]}]}],
        })
        (tmp_path / "runbooks").mkdir()
        (tmp_path / "runbooks" / "probe.yaml").write_text(PROBE)
        async with running_worker(metrics_client, config=lambda: config, slack_bot_token=slack.bot_token,  # type: ignore[arg-type]
                                  slack_api_url=slack.base_url, prometheus_url=prom.base_url,
                                  runbooks_dir=str(tmp_path / "runbooks")) as (settings, _):
            assert isinstance(metrics.recorder(), TemporalWorkerMetrics)
            inc = Incidents(metrics_client, settings, config)  # type: ignore[arg-type]
            iid = await inc.declare(DeclareInput(title="Checkout slow", severity=Severity.SEV2, service="checkout",
                                                 declared_by="alice", commander="alice"))
            await eventually(lambda: inc.get(iid), lambda s: any(e.kind == EventKind.page for e in s.timeline))
            run_id = (await inc.run_runbook(iid, "metrics-probe", {}, by="alice")).ref
            run = await eventually(lambda: inc.runbook_run(run_id), lambda r: r.ended_at is not None, timeout=60)
            assert run.status == RunStatus.succeeded, [(r.name, r.summary) for r in run.results]

            async def scrape() -> str:
                async with httpx.AsyncClient(timeout=5) as http:
                    return (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text

            text = await eventually(scrape, lambda t: sample(t, "incidentflow_time_to_first_page_seconds_count") >= 1
                                    and sample(t, "temporal_workflow_task_execution_latency_count",
                                               task_queue=settings.task_queue) >= 1)
    assert sample(text, "incidentflow_pages_total", channel="log", outcome="sent") >= 1, text
    assert sample(text, "incidentflow_pages_total", channel="slack", outcome="sent") >= 1, text
    assert sample(text, "incidentflow_slack_calls_total", method="chat.postMessage", outcome="ok") >= 1, text
    assert sample(text, "incidentflow_slack_calls_total", method="conversations.setPurpose",
                  outcome="ratelimited") == 1, text
    assert sample(text, "incidentflow_runbook_steps_total", kind="prometheus.query", outcome="ok") == 1, text
    assert "# TYPE incidentflow_time_to_first_page_seconds histogram" in text
    assert 0 < sample(text, "incidentflow_time_to_first_page_seconds_sum") < 60
    assert sample(text, "incidentflow_time_to_first_page_seconds_bucket", le="60") >= 1
    # the SDK's own, for this worker's task queue and namespace
    assert sample(text, "temporal_request_total", operation="RespondActivityTaskCompleted") >= 1, text
    assert sample(text, "temporal_long_request_total", operation="PollWorkflowTaskQueue",
                  task_queue=settings.task_queue) >= 1, text
    assert sample(text, "temporal_workflow_completed_total", workflow_type="RunbookWorkflow",
                  task_queue=settings.task_queue) == 1, text
    assert 0 < sample(text, "temporal_workflow_task_schedule_to_start_latency_sum", task_queue=settings.task_queue) < 30
    assert sample(text, "temporal_activity_execution_latency_count", activity_type="escalate_level",
                  task_queue=settings.task_queue) >= 1, text
    assert sample(text, "temporal_workflow_task_schedule_to_start_latency_count",
                  task_queue=settings.task_queue) >= 1, text


async def test_metrics_off_record_nothing_and_a_taken_port_is_named(metrics_port: int) -> None:
    assert worker_runtime(Settings()) is None
    assert isinstance(metrics.recorder(), metrics.NoMetrics)
    metrics.recorder().page("log", "sent")  # a no-op, no exporter loaded for it
    with pytest.raises(ValueError, match="INCIDENTFLOW_WORKER_METRICS_PORT: cannot serve metrics on 127.0.0.1:"):
        import socket

        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            worker_runtime(Settings(worker_metrics_port=taken.getsockname()[1], worker_metrics_host="127.0.0.1"))


async def test_incidentflow_worker_serves_metrics_on_the_port_it_is_given(
        dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    """`incidentflow worker` as an operator runs it: INCIDENTFLOW_WORKER_METRICS_PORT (and JSON logs, whose
    Rust core lines must stay records on the worker's own runtime)."""
    port, queue = free_port(), f"tq-{uuid.uuid4().hex[:8]}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("INCIDENTFLOW_")},
           "INCIDENTFLOW_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
           "INCIDENTFLOW_TASK_QUEUE": queue, "INCIDENTFLOW_WORKER_METRICS_PORT": str(port),
           "INCIDENTFLOW_WORKER_METRICS_HOST": "127.0.0.1", "INCIDENTFLOW_LOG_FORMAT": "json",
           "INCIDENTFLOW_LOG_LEVEL": "INFO", "INCIDENTFLOW_DATA_DIR": str(tmp_path)}
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "incidentflow.cli", "worker"], env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        async def scrape() -> str:
            assert proc.poll() is None, f"the worker exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
            try:
                async with httpx.AsyncClient(timeout=2) as http:
                    return (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            except httpx.HTTPError:
                return ""

        text = await eventually(scrape, lambda t: sample(t, "temporal_num_pollers", poller_type="workflow_task",
                                                          task_queue=queue) >= 1, timeout=40)
        assert "temporal_worker_start_total" in text
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        assert any(f"worker metrics on http://127.0.0.1:{port}/metrics" in r.get("message", "") for r in lines), lines
        proc.terminate()  # SIGTERM, as Kubernetes stops a pod: polling stops, activities in flight may finish
        assert proc.wait(40) == 0, f"a SIGTERM stops the worker cleanly:\n{log.read_text()[-2000:]}"
    finally:
        proc.terminate()
        proc.wait(15)
        with contextlib.suppress(RPCError):
            await dev_env.client.get_workflow_handle(statuspage_id(queue)).terminate("test finished")
