"""Postmortems and action items over HTTP, and the trackers' signed webhooks that close items.

Like the incident commands: reads need the `read` scope, changes `write`, done as the token's person (`by` names
someone else only with `act-as`); every change takes an `Idempotency-Key` (a retry is applied once and answered
with the first answer); bad input is 422 naming the field, an unknown incident or item 404, a refused change 409.

The webhook receivers take no bearer token: the tracker signs the raw body with a shared secret
(INCIDENTFLOW_GITHUB_WEBHOOK_SECRET, INCIDENTFLOW_JIRA_WEBHOOK_SECRET); 401 when the signature is missing or
wrong, 404 while the receiver is not configured, 202 with what happened otherwise (also for events that mean
nothing to us, so the tracker does not redeliver them).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from domain import github_webhook, jira_webhook
from domain.actions.models import (
    ActionItem,
    ActionItemInput,
    DoneInput,
    DropInput,
    DueInput,
    ItemResult,
    TicketClosed,
)
from domain.postmortem.config import LearningSecrets
from domain.postmortem.models import (
    PostmortemPublishInput,
    PostmortemRequest,
    PostmortemResult,
    PostmortemSetInput,
    PostmortemState,
)
from incidentflow.api.errors import responses
from incidentflow.api.incidents import IdempotencyKey
from incidentflow.api.security import Identity, bind_actor, caller, http_body, need
from incidentflow.client import Incidents

router = APIRouter(prefix="/v1", tags=["postmortems and action items"], dependencies=[Depends(caller)],
                   responses=responses(400, 401, 403, 404, 409, 413, 422, 503))
hooks = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=responses(400, 401, 404, 413, 503))
Reader = Annotated[Identity, Depends(need("read"))]
Writer = Annotated[Identity, Depends(need("write"))]
ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$"
IncidentId = Annotated[str, Path(pattern=ID, description="incident id, e.g. incident-20261123-0433-checkout")]
Aid = Annotated[str, Path(max_length=64, description="action item id, e.g. ai-k3v9q2mx")]
StartBody = http_body(PostmortemRequest)
SetBody = http_body(PostmortemSetInput)
PublishBody = http_body(PostmortemPublishInput)
ActionBody = http_body(ActionItemInput)
DoneBody = http_body(DoneInput)
DropBody = http_body(DropInput)
DueBody = http_body(DueInput)
WRITES = ("As the token's person (`by` names someone else only with the act-as scope); people must be in the "
          "config (422 naming the field). Safe to retry with the same `Idempotency-Key`.")


async def _incidents(request: Request) -> Incidents:
    incidents: Incidents = await request.app.state.incidents()
    return incidents


Inc = Annotated[Incidents, Depends(_incidents)]


# ---------------------------------------------------------------------------------------------- postmortems
@router.post("/incidents/{incident_id}/postmortem", response_model=PostmortemState,
             summary="Start the incident's postmortem now (any severity); answers once the first draft is written",
             description="The incident must be resolved (or ended). " + WRITES)
async def start_postmortem(incident_id: IncidentId, inc: Inc, who: Writer, key: IdempotencyKey = None,
                           body: StartBody | None = None) -> PostmortemState:  # type: ignore[valid-type]
    await inc.require_incident(incident_id)
    cmd = bind_actor(PostmortemRequest, body or StartBody.model_validate({}), who, config=inc.config)
    return await inc.start_postmortem(incident_id, cmd, key=key)


@router.get("/incidents/{incident_id}/postmortem", response_model=PostmortemState,
            summary="The postmortem: status, link, computed facts and hints, fields, action rows, history")
async def show_postmortem(incident_id: IncidentId, inc: Inc, _: Reader) -> PostmortemState:
    return await inc.postmortem(incident_id)


@router.patch("/incidents/{incident_id}/postmortem", response_model=PostmortemResult,
              summary="Fill sections (root_cause, impact, went_well, …), the review date and reviewers, or the status",
              description="Each given field replaces the document's section; at least one is needed (422). " + WRITES)
async def set_postmortem(incident_id: IncidentId, body: SetBody, inc: Inc, who: Writer,  # type: ignore[valid-type]
                         key: IdempotencyKey = None) -> PostmortemResult:
    await inc.require_incident(incident_id)
    cmd = bind_actor(PostmortemSetInput, body, who, config=inc.config)
    return await inc.set_postmortem(incident_id, cmd, key=key)


@router.post("/incidents/{incident_id}/postmortem/publish", response_model=PostmortemResult,
             summary="Publish: read the final text back, turn its action items table into items, stop the reminders",
             description="Publishing again creates no item twice. A table row without an owner, a due date or a "
                         "priority refuses the publish (409, nothing created). " + WRITES)
async def publish_postmortem(incident_id: IncidentId, inc: Inc, who: Writer, key: IdempotencyKey = None,
                             body: PublishBody | None = None) -> PostmortemResult:  # type: ignore[valid-type]
    await inc.require_incident(incident_id)
    cmd = bind_actor(PostmortemPublishInput, body or PublishBody.model_validate({}), who, config=inc.config)
    return await inc.publish_postmortem(incident_id, cmd, key=key)


# ---------------------------------------------------------------------------------------------- action items
@router.post("/incidents/{incident_id}/action-items", status_code=201, response_model=ActionItem,
             summary="Add an action item (owner, due date, priority, kind); its owner is reminded before it is due",
             description="The owner must be a config person and the due date today or later (422 naming the field). "
                         "With an `Idempotency-Key`, a retry answers the item the first request made (201 again); "
                         "the same key with another item is 422. " + WRITES)
async def add_action(incident_id: IncidentId, body: ActionBody, inc: Inc, who: Writer,  # type: ignore[valid-type]
                     key: IdempotencyKey = None) -> JSONResponse:
    await inc.require_incident(incident_id)
    item = await inc.add_action(incident_id, bind_actor(ActionItemInput, body, who, config=inc.config), key=key)
    return JSONResponse(item.model_dump(mode="json"), status_code=201, headers={"Location": f"/v1/action-items/{item.aid}"})


@router.get("/action-items", response_model=list[ActionItem],
            summary="Action items from Temporal visibility, by due date (open ones unless all=true)")
async def list_actions(inc: Inc, _: Reader, overdue: bool = False,
                       owner: Annotated[str | None, Query(max_length=128)] = None,
                       incident: Annotated[str | None, Query(pattern=ID)] = None,
                       all_: Annotated[bool, Query(alias="all", description="done and dropped ones too")] = False,
                       ) -> list[ActionItem]:
    return await inc.action_items(open_only=not all_, owner=owner, incident=incident, overdue_only=overdue)


@router.get("/action-items/{aid}", response_model=ActionItem, summary="One action item, with its history and ticket")
async def show_action(aid: Aid, inc: Inc, _: Reader) -> ActionItem:
    return await inc.action(aid)


@router.post("/action-items/{aid}/done", response_model=ItemResult, summary="Mark it done (closes its ticket)",
             description=WRITES)
async def action_done(aid: Aid, body: DoneBody, inc: Inc, who: Writer,  # type: ignore[valid-type]
                      key: IdempotencyKey = None) -> ItemResult:
    return await inc.action_done(aid, bind_actor(DoneInput, body, who, config=inc.config), key=key)


@router.post("/action-items/{aid}/drop", response_model=ItemResult,
             summary="Not doing it: `reason` is required (closes its ticket)", description=WRITES)
async def action_drop(aid: Aid, body: DropBody, inc: Inc, who: Writer,  # type: ignore[valid-type]
                      key: IdempotencyKey = None) -> ItemResult:
    return await inc.action_drop(aid, bind_actor(DropInput, body, who, config=inc.config), key=key)


@router.post("/action-items/{aid}/due", response_model=ItemResult,
             summary="Move its due date (today or later); its reminders start over", description=WRITES)
async def action_due(aid: Aid, body: DueBody, inc: Inc, who: Writer,  # type: ignore[valid-type]
                     key: IdempotencyKey = None) -> ItemResult:
    return await inc.action_due(aid, bind_actor(DueInput, body, who, config=inc.config), key=key)


# ---------------------------------------------------------------------------------------------- tracker webhooks
class TicketEventResult(BaseModel):
    outcome: str = Field(..., description="closed | reopened | ignored | unchanged (the item is not open, or unknown)")
    reason: str
    aid: str | None = None
    ticket: str | None = None


JSON_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"type": "object", "description": "the tracker's webhook payload, verified on its raw bytes"}}}}}


def _secrets(request: Request) -> LearningSecrets:
    """The webhook secrets, read from the environment once per app."""
    found: LearningSecrets | None = getattr(request.app.state, "learning_secrets", None)
    if found is None:
        found = request.app.state.learning_secrets = LearningSecrets()
    return found


async def _verified(request: Request, secret: Any, env: str, check: Any, signature: str | None,
                    header: str) -> dict[str, Any]:
    """The payload, once its signature holds (404 without a secret, 401 for a bad one, 400 for bad JSON)."""
    if secret is None or not secret.get_secret_value():
        raise HTTPException(404, f"this webhook receiver is off: set {env} (the secret of the tracker's webhook)")
    raw = await request.body()
    if not check(secret.get_secret_value(), raw, signature):
        raise HTTPException(401, f"{header} is missing or does not match the body (is {env} the webhook's secret?)")
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPException(400, f"body: not valid JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise HTTPException(400, "body: a JSON object is expected")
    return payload


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


async def _deliver(request: Request, aid: str | None, event: TicketClosed | None, why: str) -> JSONResponse:
    if event is None or aid is None:
        return JSONResponse(TicketEventResult(outcome="ignored", reason=why).model_dump(), status_code=202)
    inc = await _incidents(request)
    delivered = await inc.ticket_event(aid, event)
    what = "closed" if event.closed else "reopened"
    result = TicketEventResult(
        outcome=what if delivered else "unchanged", aid=aid, ticket=f"{event.tracker} {event.key}",
        reason=(f"{event.tracker} ticket {event.key} {what} by {event.by}: told action item {aid}" if delivered
                else f"action item {aid} is not open (closed or unknown): nothing to change"))
    return JSONResponse(result.model_dump(), status_code=202)


@hooks.post("/github", status_code=202, response_model=TicketEventResult, openapi_extra=JSON_BODY,
            summary="GitHub `issues` webhook: closing (or reopening) an action item's issue closes the item",
            description="Signed by GitHub with the webhook's secret (`X-Hub-Signature-256`), checked against "
                        "INCIDENTFLOW_GITHUB_WEBHOOK_SECRET; only issues of `action_items.tracker.github.repo` that "
                        "incidentflow created count. No bearer token.")
async def github(request: Request,
                 signature: Annotated[str | None, Header(alias=github_webhook.SIGNATURE_HEADER)] = None,
                 event: Annotated[str, Header(alias=github_webhook.EVENT_HEADER)] = "",
                 delivery: Annotated[str | None, Header(alias=github_webhook.DELIVERY_HEADER, max_length=200)] = None,
                 ) -> JSONResponse:
    payload = await _verified(request, _secrets(request).github_webhook_secret, "INCIDENTFLOW_GITHUB_WEBHOOK_SECRET",
                              github_webhook.verify, signature, github_webhook.SIGNATURE_HEADER)
    tracker = request.app.state.config.action_items.tracker.github
    if tracker is None:
        return await _deliver(request, None, None, "action_items.tracker.github is not configured: nothing to match")
    issue = _object(payload.get("issue"))
    body = issue.get("body") if isinstance(issue.get("body"), str) else None
    ticket = github_webhook.ticket_event(event, payload, tracker.repo, delivery)
    return await _deliver(request, github_webhook.aid_in(body), ticket,
                          f"{event or 'no'} event ({payload.get('action', '-')}): not an action item's issue closing "
                          f"or reopening in {tracker.repo}")


@hooks.post("/jira", status_code=202, response_model=TicketEventResult, openapi_extra=JSON_BODY,
            summary="Jira Cloud webhook: moving an action item's issue to a done status closes the item",
            description="Signed by Jira with the webhook's secret (`X-Hub-Signature`), checked against "
                        "INCIDENTFLOW_JIRA_WEBHOOK_SECRET; only issues of `action_items.tracker.jira.project` with "
                        "an `incidentflow-<aid>` label count. No bearer token.")
async def jira(request: Request,
               signature: Annotated[str | None, Header(alias=jira_webhook.SIGNATURE_HEADER)] = None) -> JSONResponse:
    payload = await _verified(request, _secrets(request).jira_webhook_secret, "INCIDENTFLOW_JIRA_WEBHOOK_SECRET",
                              jira_webhook.verify, signature, jira_webhook.SIGNATURE_HEADER)
    tracker = request.app.state.config.action_items.tracker.jira
    if tracker is None:
        return await _deliver(request, None, None, "action_items.tracker.jira is not configured: nothing to match")
    fields = _object(_object(payload.get("issue")).get("fields"))
    ticket = jira_webhook.ticket_event(payload, tracker.project)
    return await _deliver(request, jira_webhook.aid_in_labels(fields.get("labels")), ticket,
                          f"{payload.get('webhookEvent', 'no')} event: not a status change of an action item's issue "
                          f"in project {tracker.project}")
