"""Incidents over HTTP: what the CLI can do. Thin: parse → `Incidents` → Temporal.

The command routes (`POST /v1/incidents/{incident_id}/…`) are built from `incidentflow.commands`: the
body is the command's input model (its OpenAPI schema), the answer its `CommandResult` (200), or for a
signal `{"incident_id", "text"}` (202).

Every write takes an `Idempotency-Key` header: the same request sent again with it is applied once and
answered with the first answer (declare: the same 201 and body). A command no worker accepts within the
deadline answers 503 with Retry-After; retrying it with the same key is safe.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
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
from domain.models.common import SERVICE_NAME
from incidentflow.api.errors import responses
from incidentflow.api.security import Identity, bind_actor, caller, http_body, need
from incidentflow.client import Incidents, KeyReused
from incidentflow.commands import COMMANDS, Access, Command

router = APIRouter(prefix="/v1/incidents", tags=["incidents"], dependencies=[Depends(caller)],
                   responses=responses(400, 401, 403, 404, 409, 413, 422, 503))
Reader = Annotated[Identity, Depends(need("read"))]
Writer = Annotated[Identity, Depends(need("write"))]
DeclareBody = http_body(DeclareInput, "declared_by")  # declared_by: the token's person unless act-as


async def incidents(request: Request) -> Incidents:
    return await request.app.state.incidents()  # type: ignore[no-any-return]


Inc = Annotated[Incidents, Depends(incidents)]
_SET_BY_THE_DOOR = ("request_id", "event_at")  # input fields a door fills in, never a request body
KEY_DOC = ("Makes the request safe to retry: the same request with the same key is applied once, and answered "
           "with the first answer (for 24 h and more). A uuid per request is fine.")
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", pattern=r"^[\x21-\x7e]{1,255}$",
                                              description=KEY_DOC)]


@router.get("", response_model=list[IncidentSummary], summary="List incidents (Temporal visibility)")
async def list_incidents(inc: Inc, _: Reader, open: bool = False, phase: Phase | None = None,
                         severity: Severity | None = None,
                         service: Annotated[str | None, Query(max_length=63, pattern=SERVICE_NAME)] = None,
                         limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[IncidentSummary]:
    return await inc.list(open_only=open, phase=phase, severity=severity, service=service, limit=limit)


@router.post("", status_code=201, summary="Declare an incident",
             description="`declared_by` defaults to the token's person (see the command routes); it, `commander` "
                         "and `service` must be known to the config (422 naming the field and listing the known "
                         "ones). With an `Idempotency-Key`, a retry answers with the incident the first request "
                         "declared (the same key with another body: 422).")
async def declare(body: DeclareBody, request: Request, inc: Inc, who: Writer,  # type: ignore[valid-type]
                  key: IdempotencyKey = None) -> JSONResponse:
    cmd = inc.vetted(bind_actor(DeclareInput, body, who, field="declared_by", config=inc.config))
    if key:
        try:
            declared = await inc.declare_once(cmd, key)
        except KeyReused as exc:
            raise HTTPException(422, str(exc)) from None
        incident_id = declared.incident_id
    else:
        incident_id = await inc.declare(cmd)
    return JSONResponse({"id": incident_id, "url": inc.settings.workflow_url(incident_id)}, status_code=201,
                        headers={"Location": f"/v1/incidents/{incident_id}"})


@router.get("/{incident_id}", response_model=IncidentState, summary="Full state of one incident")
async def show(incident_id: str, inc: Inc, _: Reader) -> IncidentState:
    return await inc.get(incident_id)


@router.get("/{incident_id}/timeline", response_model=list[TimelineEvent],
            summary="Timeline as JSON, or Markdown with ?format=markdown")
async def timeline(incident_id: str, inc: Inc, _: Reader, format: Literal["json", "markdown"] = "json") -> Response:
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


_ACCESS = {Access.responder: "Changes the incident (scope `write`), as the token's person: `by` may name "
                             "someone else only with the `act-as` scope. The actor, and anyone paged or given "
                             "a role, must be a person of the config (else 422 naming the field and listing "
                             "who is known; `slack.allow_everyone` lets anyone act). Safe to retry with the same "
                             "`Idempotency-Key`: applied once, the first answer again. 503 + Retry-After when "
                             "no worker accepts it in time (it may still apply: retry with the same key). A "
                             "non-incident id is 404.",
           Access.anyone: "Reads only (scope `read`)."}


def _endpoint(command: Command[Any]) -> Callable[..., Awaitable[Any]]:
    writes = command.access is Access.responder

    async def endpoint(cmd: Any, inc: Incidents, who: Identity, incident_id: str = "", key: str | None = None) -> Any:
        if writes:
            cmd = bind_actor(command.model, cmd, who, config=inc.config)
        internal = {f: None for f in _SET_BY_THE_DOOR if f in type(cmd).model_fields}
        result = await command.run(inc, incident_id, cmd.model_copy(update=internal) if internal else cmd, key=key)
        return {"incident_id": incident_id, "text": command.accepted} if result is None else result

    # FastAPI reads the body model and the dependencies from the signature: give it the command's
    params = [inspect.Parameter("cmd", inspect.Parameter.KEYWORD_ONLY,
                                annotation=http_body(command.model) if writes else command.model),
              inspect.Parameter("inc", inspect.Parameter.KEYWORD_ONLY, annotation=Inc),
              inspect.Parameter("who", inspect.Parameter.KEYWORD_ONLY, annotation=Writer if writes else Reader),
              inspect.Parameter("key", inspect.Parameter.KEYWORD_ONLY, annotation=IdempotencyKey, default=None)]
    if command.needs_incident:
        params.insert(0, inspect.Parameter("incident_id", inspect.Parameter.KEYWORD_ONLY, annotation=str))
    endpoint.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    endpoint.__name__ = command.operation
    return endpoint


for _command in COMMANDS:
    add_command(router, _command)
