"""Prometheus metrics of the API process (one registry per app, so tests and replicas don't share)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Pure ASGI (Starlette's BaseHTTPMiddleware, which `app.middleware("http")` makes, wraps every response in a
        stream: ~8 % of the API's samples under `bench/ingest.py`): every HTTP answer's latency, by method, route
        template and status, until its last byte was handed to the server. A request the app failed on counts as a
        500."""
        latency = self.latency

        async def timed(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            start, status = time.perf_counter(), [500]

            async def send_status(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status[0] = int(message["status"])
                await send(message)

            try:
                await app(scope, receive, send_status)
            finally:
                path = getattr(scope.get("route"), "path", "unmatched")
                latency.labels(scope["method"], path, str(status[0])).observe(time.perf_counter() - start)
        return timed
