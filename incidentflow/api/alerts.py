"""Webhooks in: Alertmanager, Grafana and generic alerts. 2xx only once the alert is durably in Temporal.

A routed alert goes to its alert group (`group_id`), which opens or feeds the incident. The generic route
waits a moment (`GROUP_WAIT`) for the group to name its incident and answers with `incident_id` when it
does; `GET /v1/alert-groups/{group_id}` tells it later, for any source."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import JSONResponse

from domain import ingest
from domain.models import AlertBatch, AlertGroupState, AlertmanagerPayload, GenericAlert, GrafanaPayload
from incidentflow.api.errors import responses
from incidentflow.api.security import require_token, shed_load, verify_grafana_signature
from incidentflow.client import IncidentflowError, Incidents, IngestResult

# No prefix: the webhooks live under /v1/alerts, the alert groups under /v1/alert-groups (one router, so the
# app includes both)
router = APIRouter(tags=["alerts"], responses=responses(400, 401, 403, 413, 422, 503))
ALERTS = "/v1/alerts"
GROUP_WAIT = 2.0  # seconds the generic route waits for the alert group to name its incident


async def _ingest(request: Request, source: str, build: Callable[..., AlertBatch], payload: object,
                  wait: float = 0.0) -> JSONResponse:
    """Hand the batch to Temporal; with `wait`, answer with the incident once its group names it (bounded)."""
    state = request.app.state
    batch = build(payload, state.router, datetime.now(UTC))
    try:
        incidents: Incidents = await state.incidents()
        result: IngestResult = await incidents.ingest(batch)
        if wait and result.group_id and result.outcome == "accepted" and batch.firing:
            result.incident_id = await incidents.group_incident(result.group_id, within=wait)
    except (IncidentflowError, asyncio.CancelledError):  # cancelled: the circuit answered 503 meanwhile
        state.metrics.alerts.labels(source, "unavailable").inc()
        raise
    state.metrics.alerts.labels(source, result.outcome).inc()
    return JSONResponse(result.model_dump(exclude_none=True), status_code=202)


@router.post(f"{ALERTS}/alertmanager", status_code=202, response_model=IngestResult,
             dependencies=[Depends(require_token("alertmanager")), Depends(shed_load)],
             summary="Prometheus Alertmanager webhook (payload version 4)")
async def alertmanager(payload: AlertmanagerPayload, request: Request) -> JSONResponse:
    return await _ingest(request, "alertmanager", ingest.from_alertmanager, payload)


GRAFANA_GUARDS = [Depends(require_token("grafana")), Depends(shed_load), Depends(verify_grafana_signature)]
GRAFANA_SUMMARY = "Grafana unified-alerting webhook (version 1), HMAC-checked when configured"


@router.post(f"{ALERTS}/grafana", status_code=202, response_model=IngestResult, dependencies=GRAFANA_GUARDS,
             summary=GRAFANA_SUMMARY, operation_id="grafana_webhook_post")
@router.put(f"{ALERTS}/grafana", status_code=202, response_model=IngestResult, dependencies=GRAFANA_GUARDS,
            summary=GRAFANA_SUMMARY, operation_id="grafana_webhook_put")
async def grafana(payload: GrafanaPayload, request: Request) -> JSONResponse:
    return await _ingest(request, "grafana", ingest.from_grafana, payload)


@router.post(f"{ALERTS}/generic", status_code=202, response_model=IngestResult,
             dependencies=[Depends(require_token("generic")), Depends(shed_load)],
             summary="Any other source: one alert as small JSON",
             description=f"A firing alert's answer names its incident (`incident_id`) when the alert group has "
                         f"opened it within {GROUP_WAIT:g} s; else ask `GET /v1/alert-groups/{{group_id}}`.")
async def generic(payload: GenericAlert, request: Request) -> JSONResponse:
    return await _ingest(request, "generic", ingest.from_generic, payload, wait=GROUP_WAIT)


@router.get("/v1/alert-groups/{group_id}", response_model=AlertGroupState, dependencies=[Depends(require_token())],
            responses=responses(404), summary="An alert group: its incident (`incident_id`), phase and counts")
async def alert_group(group_id: Annotated[str, Path(max_length=255, description="a webhook answer's `group_id`")],
                      request: Request) -> AlertGroupState:
    incidents: Incidents = await request.app.state.incidents()
    found = await incidents.alert_group(group_id)
    if found is None:
        raise HTTPException(404, f"no alert group with id {group_id!r}")
    return found
