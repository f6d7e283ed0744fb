"""Webhooks in: Alertmanager, Grafana and generic alerts. 2xx only once the alert is durably in Temporal."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from domain import ingest
from domain.models import AlertBatch, AlertmanagerPayload, GenericAlert, GrafanaPayload
from incidentflow.api.errors import responses
from incidentflow.api.security import require_token, shed_load, verify_grafana_signature
from incidentflow.client import IncidentflowError, Incidents, IngestResult

router = APIRouter(prefix="/v1/alerts", tags=["alerts"], responses=responses(400, 401, 403, 413, 422, 503))


async def _ingest(request: Request, source: str, build: Callable[..., AlertBatch], payload: object) -> JSONResponse:
    state = request.app.state
    batch = build(payload, state.router, datetime.now(UTC))
    try:
        incidents: Incidents = await state.incidents()
        result: IngestResult = await incidents.ingest(batch)
    except (IncidentflowError, asyncio.CancelledError):  # cancelled: the circuit answered 503 meanwhile
        state.metrics.alerts.labels(source, "unavailable").inc()
        raise
    state.metrics.alerts.labels(source, result.outcome).inc()
    return JSONResponse(result.model_dump(exclude_none=True), status_code=202)


@router.post("/alertmanager", status_code=202, response_model=IngestResult,
             dependencies=[Depends(require_token("alertmanager")), Depends(shed_load)],
             summary="Prometheus Alertmanager webhook (payload version 4)")
async def alertmanager(payload: AlertmanagerPayload, request: Request) -> JSONResponse:
    return await _ingest(request, "alertmanager", ingest.from_alertmanager, payload)


GRAFANA_GUARDS = [Depends(require_token("grafana")), Depends(shed_load), Depends(verify_grafana_signature)]
GRAFANA_SUMMARY = "Grafana unified-alerting webhook (version 1), HMAC-checked when configured"


@router.post("/grafana", status_code=202, response_model=IngestResult, dependencies=GRAFANA_GUARDS,
             summary=GRAFANA_SUMMARY, operation_id="grafana_webhook_post")
@router.put("/grafana", status_code=202, response_model=IngestResult, dependencies=GRAFANA_GUARDS,
            summary=GRAFANA_SUMMARY, operation_id="grafana_webhook_put")
async def grafana(payload: GrafanaPayload, request: Request) -> JSONResponse:
    return await _ingest(request, "grafana", ingest.from_grafana, payload)


@router.post("/generic", status_code=202, response_model=IngestResult,
             dependencies=[Depends(require_token("generic")), Depends(shed_load)],
             summary="Any other source: one alert as small JSON")
async def generic(payload: GenericAlert, request: Request) -> JSONResponse:
    return await _ingest(request, "generic", ingest.from_generic, payload)
