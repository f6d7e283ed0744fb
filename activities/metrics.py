"""incidentflow's own worker metrics, as activities see them: a tiny interface, no exporter.

Activities report what happened (a page by channel, a Slack call, a runbook step) to `recorder()`. Until a
worker installs one (workers/metrics.py, when INCIDENTFLOW_WORKER_METRICS_PORT is set) it is `NoMetrics`, so
an activity never imports an exporter and costs nothing. One recorder per process, like the Temporal runtime
whose Prometheus endpoint it shares. Recording never raises into an activity.
"""

from __future__ import annotations

from typing import Protocol


class WorkerMetrics(Protocol):
    def page(self, channel: str, outcome: str) -> None:
        """One page through one channel: `sent`, `failed` (refused or undelivered) or `error` (retried)."""

    def first_page(self, incident_id: str, level: int) -> None:
        """A page went out for this incident (for time to first page)."""

    def slack_call(self, method: str, outcome: str) -> None:
        """One Slack Web API call: `ok`, Slack's error code (`ratelimited`, `channel_not_found` …) or `unreachable`."""

    def runbook_step(self, kind: str, outcome: str) -> None:
        """One runbook step activity: `ok`, `failed` (the step said so) or `error` (it raised: retried or failed)."""


class NoMetrics:
    """Metrics off: every report is dropped."""

    def page(self, channel: str, outcome: str) -> None:
        pass

    def first_page(self, incident_id: str, level: int) -> None:
        pass

    def slack_call(self, method: str, outcome: str) -> None:
        pass

    def runbook_step(self, kind: str, outcome: str) -> None:
        pass


_recorder: WorkerMetrics = NoMetrics()


def recorder() -> WorkerMetrics:
    return _recorder


def install(metrics: WorkerMetrics | None) -> WorkerMetrics:
    """Make `metrics` the process's recorder (None: off again); returns the one it replaces."""
    global _recorder
    previous, _recorder = _recorder, metrics or NoMetrics()
    return previous
