"""The worker's Prometheus endpoint: the Temporal SDK's metrics and incidentflow's own, on one port.

With INCIDENTFLOW_WORKER_METRICS_PORT set, `incidentflow worker` connects on a temporalio Runtime whose
Prometheus exporter serves `http://INCIDENTFLOW_WORKER_METRICS_HOST:PORT/metrics` (any path answers). Our
counters are made on that runtime's meter, so one scrape has both, in Prometheus' conventions (counters end in
`_total`, durations are seconds):

- `incidentflow_pages_total{channel, outcome}`: outcome sent | failed (refused or undelivered) | error (retried)
- `incidentflow_slack_calls_total{method, outcome}`: outcome ok | unreachable | Slack's error code
- `incidentflow_runbook_steps_total{kind, outcome}`: outcome ok | failed | error
- `incidentflow_time_to_first_page_seconds`: from IncidentDeclaredAt to the first level-1 page this worker
  delivered for the incident
- the SDK's (Temporal's docs list them; durations in seconds, histogram names without a unit):
  `temporal_request_total`, `temporal_long_request_total`, `temporal_workflow_task_schedule_to_start_latency`,
  `temporal_activity_schedule_to_start_latency`, `temporal_activity_execution_latency`,
  `temporal_activity_execution_failed_total`, `temporal_workflow_failed_total`, `temporal_num_pollers`,
  `temporal_worker_task_slots_available`, … labelled with namespace, task_queue, workflow_type / activity_type

Activities report through activities/metrics.py; `build_worker` installs `TemporalWorkerMetrics` when its
client's runtime exports metrics, so without the setting nothing here runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from temporalio.client import Client
from temporalio.common import MetricMeter
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
)

from activities.metrics import WorkerMetrics
from domain.settings import Settings
from workflows import search_attributes as sa

log = logging.getLogger("incidentflow.worker")

TIME_TO_FIRST_PAGE = "incidentflow_time_to_first_page_seconds"
FIRST_PAGE_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
_runtimes: dict[str, Runtime] = {}  # one per address: a second Runtime could not bind the port again


def metrics_address(settings: Settings) -> str | None:
    if settings.worker_metrics_port is None:
        return None
    host = settings.worker_metrics_host
    return f"[{host}]:{settings.worker_metrics_port}" if ":" in host else f"{host}:{settings.worker_metrics_port}"


def worker_runtime(settings: Settings, core_logs: logging.Logger | None = None) -> Runtime | None:
    """The worker's Runtime, exporting Prometheus metrics on INCIDENTFLOW_WORKER_METRICS_HOST:PORT; None when
    the port is not set (the process default then). `core_logs`: forward the Rust core's log lines there (JSON
    logs), as incidentflow.logs does for the default runtime. ValueError naming the setting if it cannot bind."""
    address = metrics_address(settings)
    if address is None:
        return None
    if address not in _runtimes:
        logs = (LoggingConfig(filter=LoggingConfig.default.filter,
                              forwarding=LogForwardingConfig(logger=core_logs, append_target_to_name=False))
                if core_logs is not None else LoggingConfig.default)
        prometheus = PrometheusConfig(bind_address=address, counters_total_suffix=True, durations_as_seconds=True,
                                      histogram_bucket_overrides={TIME_TO_FIRST_PAGE: list(FIRST_PAGE_BUCKETS)})
        try:
            _runtimes[address] = Runtime(telemetry=TelemetryConfig(logging=logs, metrics=prometheus))
        except Exception as exc:  # the core raises a bare Exception for a port in use
            raise ValueError(f"INCIDENTFLOW_WORKER_METRICS_PORT: cannot serve metrics on {address}: "
                             f"{str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__}") from None
    return _runtimes[address]


def metrics_for(client: Client) -> WorkerMetrics | None:
    """Our metrics on the client's runtime meter; None when that runtime exports no metrics."""
    meter = (client.service_client.config.runtime or Runtime.default()).metric_meter
    return None if meter is MetricMeter.noop else TemporalWorkerMetrics(meter, client)


class TemporalWorkerMetrics:
    """activities.metrics.WorkerMetrics on a Temporal MetricMeter. Never raises into an activity."""

    def __init__(self, meter: MetricMeter, client: Client | None = None) -> None:
        self._client = client
        self._pages = meter.create_counter("incidentflow_pages", "Pages by channel and outcome")
        self._slack = meter.create_counter("incidentflow_slack_calls", "Slack Web API calls by method and outcome")
        self._steps = meter.create_counter("incidentflow_runbook_steps", "Runbook step activities by kind and outcome")
        self._first_page = meter.create_histogram_float(
            TIME_TO_FIRST_PAGE, "Seconds from an incident's declaration to its first level-1 page", "s")
        self._paged: OrderedDict[str, None] = OrderedDict()  # incidents whose first page is counted
        self._tasks: set[asyncio.Task[None]] = set()

    def page(self, channel: str, outcome: str) -> None:
        self._add(self._pages, channel=channel, outcome=outcome)

    def slack_call(self, method: str, outcome: str) -> None:
        self._add(self._slack, method=method, outcome=outcome)

    def runbook_step(self, kind: str, outcome: str) -> None:
        self._add(self._steps, kind=kind, outcome=outcome)

    def first_page(self, incident_id: str, level: int) -> None:
        """Level 1 only: later levels, and manual pages later on, are not the first page. Per worker process,
        the first one it delivered (a page another worker sent first is not seen here)."""
        if level != 1 or incident_id in self._paged or self._client is None:
            return
        self._paged[incident_id] = None
        if len(self._paged) > 10_000:
            self._paged.popitem(last=False)
        try:
            task = asyncio.get_running_loop().create_task(self._observe(incident_id, datetime.now(UTC)))
        except RuntimeError:  # no event loop (a sync activity's thread): not counted
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _observe(self, incident_id: str, paged_at: datetime) -> None:
        """The declaration time comes from the incident's search attribute: one describe, off the activity's path."""
        assert self._client is not None
        try:
            desc = await self._client.get_workflow_handle(incident_id).describe()
            declared = desc.typed_search_attributes.get(sa.DECLARED_AT) or desc.start_time
            self._first_page.record(max((paged_at - declared).total_seconds(), 0.0))
        except Exception as exc:  # a metric must never fail the worker
            log.debug("time to first page of %s not recorded: %s", incident_id, exc)

    @staticmethod
    def _add(counter: Any, **labels: str) -> None:
        try:
            counter.with_additional_attributes(labels).add(1)
        except Exception as exc:
            log.debug("metric %s not recorded: %s", labels, exc)
