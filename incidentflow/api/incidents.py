"""Incidents over HTTP: what the CLI can do. Thin: parse → `Incidents` → Temporal."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from domain import policy
from domain.models import (
    AckInput,
    CommandResult,
    DeclareInput,
    EscalateInput,
    IncidentState,
    IncidentSummary,
    NoteInput,
    PageInput,
    Phase,
    PhaseInput,
    ReopenInput,
    ResolveInput,
    RoleInput,
    Severity,
    SeverityInput,
    StandDownInput,
    StatusUpdateInput,
    TimelineEvent,
)
from incidentflow.api.errors import responses
from incidentflow.api.security import require_token
from incidentflow.client import Incidents

router = APIRouter(prefix="/v1/incidents", tags=["incidents"], dependencies=[Depends(require_token())],
                   responses=responses(400, 401, 404, 409, 413, 422, 503))
ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$"


async def incidents(request: Request) -> Incidents:
    return await request.app.state.incidents()  # type: ignore[no-any-return]


Inc = Annotated[Incidents, Depends(incidents)]


@router.get("", response_model=list[IncidentSummary], summary="List incidents (Temporal visibility)")
async def list_incidents(inc: Inc, open: bool = False, phase: Phase | None = None,
                         severity: Severity | None = None,
                         service: Annotated[str | None, Query(max_length=63)] = None,
                         limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[IncidentSummary]:
    return await inc.list(open_only=open, phase=phase, severity=severity, service=service, limit=limit)


@router.post("", status_code=201, summary="Declare an incident")
async def declare(cmd: DeclareInput, request: Request, inc: Inc) -> JSONResponse:
    incident_id = await inc.declare(cmd)
    request.app.state.metrics.incidents_opened.inc()
    return JSONResponse({"id": incident_id, "url": inc.settings.workflow_url(incident_id)}, status_code=201,
                        headers={"Location": f"/v1/incidents/{incident_id}"})


@router.get("/{incident_id}", response_model=IncidentState, summary="Full state of one incident")
async def show(incident_id: str, inc: Inc) -> IncidentState:
    return await inc.get(incident_id)


@router.get("/{incident_id}/timeline", response_model=list[TimelineEvent],
            summary="Timeline as JSON, or Markdown with ?format=markdown")
async def timeline(incident_id: str, inc: Inc, format: Literal["json", "markdown"] = "json") -> Response:
    state = await inc.get(incident_id)
    if format == "markdown":
        return PlainTextResponse(policy.render_markdown(state), media_type="text/markdown")
    return JSONResponse([e.model_dump(mode="json") for e in state.timeline])


@router.post("/{incident_id}/acknowledge", response_model=CommandResult)
async def acknowledge(incident_id: str, cmd: AckInput, inc: Inc) -> CommandResult:
    return await inc.acknowledge(incident_id, cmd)


@router.post("/{incident_id}/roles", response_model=CommandResult)
async def assign_role(incident_id: str, cmd: RoleInput, inc: Inc) -> CommandResult:
    return await inc.assign_role(incident_id, cmd)


@router.post("/{incident_id}/severity", response_model=CommandResult)
async def set_severity(incident_id: str, cmd: SeverityInput, inc: Inc) -> CommandResult:
    return await inc.set_severity(incident_id, cmd)


@router.post("/{incident_id}/phase", response_model=CommandResult)
async def set_phase(incident_id: str, cmd: PhaseInput, inc: Inc) -> CommandResult:
    return await inc.set_phase(incident_id, cmd)


@router.post("/{incident_id}/notes", status_code=202)
async def add_note(incident_id: str, cmd: NoteInput, inc: Inc) -> dict[str, str]:
    await inc.add_note(incident_id, cmd)
    return {"incident_id": incident_id, "text": "note added"}


@router.post("/{incident_id}/status-updates", response_model=CommandResult)
async def post_status_update(incident_id: str, cmd: StatusUpdateInput,
                             inc: Inc) -> CommandResult:
    return await inc.post_status_update(incident_id, cmd)


@router.post("/{incident_id}/resolve", response_model=CommandResult)
async def resolve(incident_id: str, cmd: ResolveInput, inc: Inc) -> CommandResult:
    return await inc.resolve(incident_id, cmd)


@router.post("/{incident_id}/reopen", response_model=CommandResult)
async def reopen(incident_id: str, cmd: ReopenInput, inc: Inc) -> CommandResult:
    return await inc.reopen(incident_id, cmd)


@router.post("/{incident_id}/stand-down", response_model=CommandResult)
async def stand_down(incident_id: str, cmd: StandDownInput, inc: Inc) -> CommandResult:
    return await inc.stand_down(incident_id, cmd)


@router.post("/{incident_id}/escalate", response_model=CommandResult)
async def escalate(incident_id: str, cmd: EscalateInput, inc: Inc) -> CommandResult:
    return await inc.escalate(incident_id, cmd)


@router.post("/{incident_id}/page", response_model=CommandResult, summary="Page a person now (add a responder)")
async def page(incident_id: str, cmd: PageInput, inc: Inc) -> CommandResult:
    return await inc.page(incident_id, cmd)
