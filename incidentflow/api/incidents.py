"""Incidents over HTTP: what the CLI can do. Thin: parse → `Incidents` → Temporal.

The command routes (`POST /v1/incidents/{incident_id}/…`) are built from `incidentflow.commands`: the
body is the command's input model (its OpenAPI schema), the answer its `CommandResult` (200), or for a
signal `{"incident_id", "text"}` (202).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from domain import policy
from domain.models import (
    CommandResult,
    DeclareInput,
    IncidentState,
    IncidentSummary,
    Phase,
    Severity,
    TimelineEvent,
)
from incidentflow.api.errors import responses
from incidentflow.api.security import require_token
from incidentflow.client import Incidents
from incidentflow.commands import COMMANDS, Access, Command

router = APIRouter(prefix="/v1/incidents", tags=["incidents"], dependencies=[Depends(require_token())],
                   responses=responses(400, 401, 404, 409, 413, 422, 503))


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


def add_command(api: APIRouter, command: Command[Any]) -> None:
    """`POST /v1/incidents/{incident_id}/<route>` with the command's input model as the JSON body."""
    api.add_api_route(
        command.http_path, _endpoint(command), methods=["POST"], name=command.operation,
        status_code=202 if command.accepted else 200,
        response_model=dict[str, str] if command.accepted else CommandResult,
        summary=command.help[:1].upper() + command.help[1:],
        description=_ACCESS[command.access])


_ACCESS = {Access.responder: "Changes the incident: `by` names who does it (callers hold the API token, when one "
                             "is set).",
           Access.anyone: "Reads only."}


def _endpoint(command: Command[Any]) -> Callable[..., Awaitable[Any]]:
    async def endpoint(cmd: Any, inc: Incidents, incident_id: str = "") -> Any:
        result = await command.run(inc, incident_id, cmd)
        return {"incident_id": incident_id, "text": command.accepted} if result is None else result

    # FastAPI reads the body model and the dependencies from the signature: give it the command's
    params = [inspect.Parameter("cmd", inspect.Parameter.KEYWORD_ONLY, annotation=command.model),
              inspect.Parameter("inc", inspect.Parameter.KEYWORD_ONLY, annotation=Inc)]
    if command.needs_incident:
        params.insert(0, inspect.Parameter("incident_id", inspect.Parameter.KEYWORD_ONLY, annotation=str))
    endpoint.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    endpoint.__name__ = command.operation
    return endpoint


for _command in COMMANDS:
    add_command(router, _command)
