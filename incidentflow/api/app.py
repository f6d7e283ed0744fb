"""The HTTP API. Stateless: all state lives in Temporal, so any number of replicas can run.

Thin by design: parse → `incidentflow.client` → Temporal.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from slack_sdk.web.async_client import AsyncWebClient
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from domain.archive.models import ArchiveQuery
from domain.config import IncidentflowConfig, Settings
from incidentflow import __version__, tracing
from incidentflow.api import alerts, docs, errors
from incidentflow.api import incidents as incidents_api
from incidentflow.api import learning as learning_api
from incidentflow.api import oncall as oncall_api
from incidentflow.api import pagerduty as pagerduty_api
from incidentflow.api import reports as reports_api
from incidentflow.api import runbooks as runbooks_api
from incidentflow.api import slack as slack_api
from incidentflow.api import status as status_api
from incidentflow.api import subscribe as subscribe_api
from incidentflow.api.errors import Circuit, TemporalGuard, touch_temporal
from incidentflow.api.metrics import Metrics
from incidentflow.api.security import BodyLimit, LoadShedder
from incidentflow.client import IncidentflowError, Incidents, TemporalUnavailable, connect, worker_polling
from incidentflow.logs import RequestIdMiddleware
from incidentflow.slack.gateway import SlackGateway
from incidentflow.slack.socket import SlackSocket, socket_enabled

CONNECT_TIMEOUT = 1.5  # s: a Temporal that does not answer a connect by then is down, for this request
PROBE_TIMEOUT = 1.0  # s: the circuit's probe (and how long a request waits before one is sent)


def slack_gateway(settings: Settings, incidents: Callable[[], Awaitable[Incidents]],
                  config: Callable[[], IncidentflowConfig]) -> SlackGateway:
    web = None
    if settings.slack_enabled:
        token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
        web = AsyncWebClient(token=token, base_url=settings.slack_api_url, timeout=10, retry_handlers=[])
    return SlackGateway(incidents, config, web)


class TemporalLink:
    """Connects lazily and reconnects: the API may start before Temporal does. Requests arriving while a
    connect is under way share it (a storm never queues one connect deadline after another)."""

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self.settings = settings
        self._client = client
        self._connecting: asyncio.Future[Client] | None = None

    async def client(self) -> Client:
        if self._client is not None:
            return self._client
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(connect(self.settings, timeout=CONNECT_TIMEOUT))
            self._connecting.add_done_callback(self._connected)
        return await asyncio.shield(self._connecting)

    def _connected(self, attempt: asyncio.Future[Client]) -> None:
        self._connecting = None
        if not attempt.cancelled() and attempt.exception() is None:
            self._client = attempt.result()

    async def probe(self) -> None:
        """Does Temporal answer now? One RPC, no retries (the circuit's probe)."""
        client = await self.client()
        await client.workflow_service.get_system_info(GetSystemInfoRequest(), retry=False,
                                                      timeout=timedelta(seconds=PROBE_TIMEOUT))


def create_app(settings: Settings, client: Client | None = None,
               config: IncidentflowConfig | None = None) -> FastAPI:
    link = TemporalLink(settings, client)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        socket = None
        if socket_enabled(settings):  # Slack Socket Mode: no public endpoint needed
            socket = app.state.slack_socket = SlackSocket(settings, app.state.slack_gateway, app.state)
            await socket.start()  # a bad app token fails startup, with a message that names no secret
        try:
            yield
        finally:
            if socket is not None:
                await socket.stop()

    app = FastAPI(title="incidentflow", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Incident automation on durable Temporal workflows: alert webhooks in, incidents "
                              "driven over HTTP. Errors are JSON `{\"error\": \"…\"}` naming the bad field.")
    app.state.settings = settings
    app.state.link = link
    app.state.config = config or IncidentflowConfig()
    app.state.router = app.state.config.routing.router()
    app.state.metrics = metrics = Metrics()
    app.state.shedder = LoadShedder(settings.max_inflight)
    app.state.circuit = circuit = Circuit(link.probe, f"Temporal at {settings.temporal_address}",
                                            suspect_after=PROBE_TIMEOUT, probe_timeout=PROBE_TIMEOUT)

    async def incidents(source: str = "api") -> Incidents:
        """The door into Temporal for one request (503 at once while the circuit is open); `source` labels
        the incidents it declares (incidentflow_incidents_declared_total)."""
        touch_temporal()
        await circuit.admit()
        try:
            client = await link.client()
        except TemporalUnavailable as exc:
            circuit.trip(str(exc))
            raise
        return Incidents(client, settings, app.state.config, source=source)

    app.state.incidents = incidents
    app.state.slack_gateway = slack_gateway(settings, functools.partial(incidents, "slack"), lambda: app.state.config)
    app.state.slack_pending = set()
    errors.install(app)
    # outermost last: metrics see every answer, the body limit holds for every route, then the circuit
    app.add_middleware(TemporalGuard, circuit=circuit)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(metrics.middleware)
    app.add_middleware(RequestIdMiddleware)  # outermost: every answer (413, 503 …) carries X-Request-ID
    for module in (alerts, incidents_api, pagerduty_api, oncall_api, slack_api, runbooks_api, status_api,
                   subscribe_api, learning_api, reports_api):
        app.include_router(module.router)
    app.include_router(learning_api.hooks)
    app.include_router(status_api.public)
    app.state.subscribe_throttle = subscribe_api.Throttle()

    _ops_routes(app, link, settings)
    tracing.instrument_app(app)  # only when OTEL_* turned tracing on (incidentflow.tracing)
    return app


def _ops_routes(app: FastAPI, link: TemporalLink, settings: Settings) -> None:
    metrics: Metrics = app.state.metrics
    docs.install(app)  # /docs and /redoc from local files: no CDN

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    async def prometheus_metrics() -> Response:
        if app.state.circuit.is_open:  # Temporal is down: answer at once with the counts we have
            metrics.incidents.up.set(0)
        else:
            await metrics.incidents.refresh(link.client)
        await metrics.timings.refresh(lambda: Incidents(None, settings, app.state.config)._archive(  # type: ignore[arg-type]
            "rows", ArchiveQuery()))
        return metrics.render()

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """The process is alive (says nothing about Temporal)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "Temporal or the worker is not up"}})
    async def readyz(request: Request) -> JSONResponse:
        """200 only when Temporal answers and a worker polls our task queue."""
        checks = {"temporal": False, "worker": False}
        try:
            temporal = await link.client()
            with tracing.untraced():  # a probe every few seconds: no trace each (its PingWorkflow)
                polling = await asyncio.wait_for(
                    worker_polling(temporal, settings.temporal_namespace, settings.task_queue), 3.0)
            checks = {"temporal": True, "worker": polling}
            reason = "" if polling else f"no worker polls task queue {settings.task_queue!r}"
        except IncidentflowError as exc:
            reason = str(exc)
        except Exception as exc:  # an RPC failure while Temporal restarts: not ready, say why
            checks["temporal"] = False
            reason = f"Temporal at {settings.temporal_address}: {exc}"
        ready = all(checks.values())
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        if not ready:
            body["reason"] = reason
        return JSONResponse(body, status_code=200 if ready else 503)
