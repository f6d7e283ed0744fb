"""Prometheus metrics of the API process (one registry per app, so tests and replicas don't share)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from fastapi import Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from incidentflow.api.metrics_archive import ArchiveTimings
from incidentflow.api.metrics_incidents import IncidentsOpened


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.alerts = Counter("incidentflow_alerts_received", "Alert notifications received, by source and outcome",
                              ["source", "outcome"], registry=self.registry)
        declared = Counter("incidentflow_incidents_declared",
                           "Incidents opened since this process started, by source (api, slack, cli, alertmanager, "
                           "grafana, generic …), counted from Temporal", ["source"], registry=self.registry)
        up = Gauge("incidentflow_incidents_declared_up", "1 when the last scrape counted incidents from Temporal "
                   "visibility; 0 when it could not (the declared counts are then stale)", registry=self.registry)
        self.incidents = IncidentsOpened(declared, up, datetime.now(UTC))
        self.timings = ArchiveTimings()  # time to acknowledge / resolve histograms, from the archive
        self.registry.register(self.timings)
        self.latency = Histogram("incidentflow_http_request_duration_seconds", "HTTP request latency",
                                 ["method", "route", "status"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    async def middleware(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        self.latency.labels(request.method, path, str(response.status_code)).observe(time.perf_counter() - start)
        return response
