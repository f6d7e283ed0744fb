"""Runbooks over HTTP: list them, run one on an incident, approve or deny a waiting step, read a run.

The writes take an `Idempotency-Key` header like the incident commands: a retry is applied once."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, Field

from domain.models import CommandResult
from domain.models.runbook import Decision, RunbookState
from domain.runbooks.loader import RunbookError
from domain.runbooks.render import ParamError, RenderError
from incidentflow.api.errors import responses
from incidentflow.api.incidents import IdempotencyKey
from incidentflow.api.security import Identity, actor_for, caller, need
from incidentflow.client import Incidents, vet_person

router = APIRouter(prefix="/v1", tags=["runbooks"], dependencies=[Depends(caller)],
                   responses=responses(400, 401, 403, 404, 409, 413, 422, 503))
Reader = Annotated[Identity, Depends(need("read"))]
Caller = Annotated[Identity, Depends(caller)]
BY = Field(None, min_length=1, max_length=128,
           description="who does it (a config person's id): only with the act-as scope; default: the token's person "
                       "(a token without one: its name)")
ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$"


class RunRequest(BaseModel):
    name: str = Field(..., min_length=1, max_length=63, description="runbook name (GET /v1/runbooks)")
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    by: str | None = BY


class DecisionRequest(BaseModel):
    by: str | None = BY
    comment: str = Field("", max_length=1000)


async def _incidents(request: Request) -> Incidents:
    incidents: Incidents = await request.app.state.incidents()
    return incidents


def _runbooks(inc: Incidents) -> Any:
    try:
        return inc.runbooks()
    except RunbookError as exc:
        raise HTTPException(503, f"the runbooks do not validate: {exc}") from None


@router.get("/runbooks", summary="The runbooks (name, parameters, steps, what they apply to)")
async def list_runbooks(request: Request, _: Reader) -> list[dict[str, Any]]:
    inc = await _incidents(request)
    out = []
    for rb in _runbooks(inc).runbooks.values():
        out.append({
            "name": rb.name, "title": rb.title, "description": rb.description, "auto_run": rb.auto_run,
            "applies_to": rb.applies_to.model_dump() if rb.applies_to else None,
            "likely_causes": rb.likely_causes, "escalation": rb.escalation, "approvers": rb.approvers,
            "parameters": {k: v.model_dump(exclude_none=True) for k, v in rb.parameters.items()},
            "steps": [{"name": n, "kind": s.kind, "destructive": s.destructive}
                      for n, s in zip(rb.step_names, rb.steps)],
        })
    return out


@router.post("/incidents/{incident_id}/runbooks", status_code=202, response_model=CommandResult,
             summary="Run a runbook on the incident; `ref` is the run id (destructive steps wait for approval)")
async def run_runbook(incident_id: Annotated[str, Path(pattern=ID)], body: RunRequest,
                      request: Request, who: Caller, key: IdempotencyKey = None) -> CommandResult:
    by = actor_for(who, body.by, "write", config=request.app.state.config)
    inc = await _incidents(request)
    if body.name not in _runbooks(inc).runbooks:
        known = ", ".join(sorted(_runbooks(inc).runbooks)) or "none"
        raise HTTPException(422, f"name: unknown runbook {body.name!r} (known: {known})")
    await inc.require_incident(incident_id)  # a non-incident id is 404 before the actor is checked
    by = vet_person(inc.config, "by", by, acting=True)
    try:
        return await inc.run_runbook(incident_id, body.name, body.params, by, key=key)
    except (ParamError, RenderError) as exc:
        raise HTTPException(422, f"params: {exc}") from None


@router.get("/runbook-runs/{run_id}", response_model=RunbookState, summary="A run: steps, results, pending approval")
async def get_run(run_id: Annotated[str, Path(pattern=ID)], request: Request, _: Reader) -> RunbookState:
    return await (await _incidents(request)).runbook_run(run_id)


@router.post("/runbook-runs/{run_id}/approve", summary="Approve the step the run waits on (IC or configured approvers)")
async def approve(run_id: Annotated[str, Path(pattern=ID)], body: DecisionRequest, request: Request,
                  who: Caller, key: IdempotencyKey = None) -> dict[str, str]:
    return await _decide(request, who, run_id, body, True, key)


@router.post("/runbook-runs/{run_id}/deny", summary="Deny the step the run waits on: the run stops there")
async def deny(run_id: Annotated[str, Path(pattern=ID)], body: DecisionRequest, request: Request,
               who: Caller, key: IdempotencyKey = None) -> dict[str, str]:
    return await _decide(request, who, run_id, body, False, key)


async def _decide(request: Request, who: Identity, run_id: str, body: DecisionRequest, approve: bool,
                  key: str | None) -> dict[str, str]:
    """Approve or deny as the caller's person (a config person; the run then checks it is an approver)."""
    by = actor_for(who, body.by, "approve", config=request.app.state.config)
    inc = await _incidents(request)
    await inc.require_run(run_id)
    by = vet_person(inc.config, "by", by, acting=True)
    text = await inc.decide_runbook(run_id, Decision(approve=approve, by=by, comment=body.comment), key=key)
    return {"run_id": run_id, "text": text}
