"""PagerDuty v3 webhooks in: a PagerDuty acknowledge/resolve becomes ours, so both sides agree.

PagerDuty signs the body but not a time, so a signed event can come again: redelivered, or replayed by
whoever saw it. Each event is applied at most once, durably and across API replicas: its command's update id
comes from the event id. And a resolve carries the event's `occurred_at`: the incident refuses it when it
was reopened after that, so an old `incident.resolved` never resolves a reopened incident.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from domain.config import Settings
from domain.models import AckInput, ResolveInput
from domain.pagerduty_webhook import InvalidPagerDutyEvent, parse_event, verify_signature
from incidentflow.api.errors import responses
from incidentflow.client import CommandRejected, IncidentNotFound, Incidents

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=responses(400, 401, 413, 503))
KEY_PREFIX = "incidentflow-"


@router.post("/pagerduty", status_code=202, summary="PagerDuty v3 webhook (X-PagerDuty-Signature verified)")
async def pagerduty(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    secrets = [s.get_secret_value() for s in settings.pagerduty_webhook_secrets]
    if not secrets:
        raise HTTPException(401, "PagerDuty webhooks are off: set INCIDENTFLOW_PAGERDUTY_WEBHOOK_SECRETS")
    body = await request.body()
    if not verify_signature(body, request.headers.get("x-pagerduty-signature"), secrets):
        raise HTTPException(401, "X-PagerDuty-Signature does not match the body")
    try:
        event = parse_event(body)
    except InvalidPagerDutyEvent as exc:
        raise HTTPException(400, f"not a PagerDuty v3 webhook event: {exc}") from None
    if event is None or event.action is None:
        return JSONResponse({"outcome": "ignored", "reason": "event type not mirrored"}, status_code=202)
    key = event.incident_key or ""
    if not key.startswith(KEY_PREFIX):
        return JSONResponse({"outcome": "ignored", "reason": "not an incidentflow incident"}, status_code=202)
    incident_id = key[len(KEY_PREFIX):]
    who = f"{event.agent_name or 'someone'} (PagerDuty)"
    incidents: Incidents = await request.app.state.incidents()
    key = f"pagerduty-event:{event.id}"
    try:
        if event.action == "acknowledge":
            ack = AckInput(by=who)
            if earlier := await incidents.earlier_result(incident_id, "acknowledge", ack, key):
                return _delivered_before(event.id, incident_id, earlier.text)
            result = await incidents.acknowledge(incident_id, ack, key=key)
        else:
            resolve = ResolveInput(by=who, summary="resolved in PagerDuty", event_at=event.occurred_at)
            if earlier := await incidents.earlier_result(incident_id, "resolve", resolve, key):
                return _delivered_before(event.id, incident_id, earlier.text)
            result = await incidents.resolve(incident_id, resolve, key=key)
    except CommandRejected as exc:  # already so on our side (often our own sync echoing back), or too old
        return JSONResponse({"outcome": "unchanged", "incident_id": incident_id, "reason": str(exc)}, status_code=202)
    except IncidentNotFound as exc:  # answered 2xx: PagerDuty would retry anything else, to no avail
        return JSONResponse({"outcome": "ignored", "incident_id": incident_id, "reason": str(exc)}, status_code=202)
    return JSONResponse({"outcome": event.action, "incident_id": incident_id, "text": result.text}, status_code=202)


def _delivered_before(event_id: str, incident_id: str, text: str) -> JSONResponse:
    return JSONResponse({"outcome": "unchanged", "incident_id": incident_id,
                         "reason": f"PagerDuty event {event_id} was delivered before (then: {text})"}, status_code=202)
