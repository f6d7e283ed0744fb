"""PagerDuty v3 webhooks in: signature check and the events we act on. Pure; the API route is thin.

PagerDuty signs the raw body with each subscription secret: `X-PagerDuty-Signature` holds one or more
comma-separated `v1=<hex HMAC-SHA256>` values (several while PagerDuty rotates a secret). We accept a
list of secrets too, so ours can rotate: any (secret, signature) match is authentic. Verify the raw
bytes before parsing — re-serialised JSON does not match.

Event types → our actions (everything else parses to None and should be answered 2xx and dropped, or
PagerDuty retries the delivery):
  incident.acknowledged → "acknowledge"   someone took the page in PagerDuty
  incident.resolved     → "resolve"       resolved in PagerDuty (by a person, or auto-resolve)
  ignored: incident.triggered (we triggered it), incident.unacknowledged, incident.reopened,
           incident.escalated, incident.reassigned, incident.delegated, incident.annotated,
           incident.priority_updated, incident.responder.*, incident.status_update_published,
           service.*, pagey.ping, and any type added later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

SIGNATURE_HEADER = "X-PagerDuty-Signature"

PagerDutyAction = Literal["acknowledge", "resolve"]
ACTIONS: dict[str, PagerDutyAction] = {
    "incident.acknowledged": "acknowledge",
    "incident.resolved": "resolve",
}


class InvalidPagerDutyEvent(ValueError):
    """The body is not a v3 webhook envelope (answer 400)."""


class PagerDutyEvent(BaseModel):
    """One v3 webhook event that maps to an action on our incident."""

    id: str  # event id: PagerDuty may redeliver; dedup on it
    event_type: str
    action: PagerDutyAction
    occurred_at: datetime | None = None
    incident_id: str  # PagerDuty's incident id, e.g. "PGR0VU2"
    incident_number: int | None = None
    incident_key: str | None = None  # the Events API dedup_key for incidents our trigger created
    status: str | None = None  # PagerDuty's incident status after the event
    title: str | None = None
    html_url: str | None = None
    agent_id: str | None = None
    agent_name: str | None = None  # agent.summary, e.g. the user's name; None for automatic changes
    agent_type: str | None = None  # user_reference, service_reference, …


def sign(body: bytes, secret: str) -> str:
    """One `v1=` signature, as PagerDuty computes it (tests and local replays use this)."""
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, secrets: list[str]) -> bool:
    """True if any `v1=` signature in the header matches the body under any of our secrets."""
    if not header or not secrets:
        return False
    offered = [s.strip() for s in header.split(",") if s.strip().startswith("v1=")]
    expected = [sign(body, secret) for secret in secrets if secret]
    matched = False
    for got in offered:
        for want in expected:
            # Every pair is compared, in constant time each, so timing reveals no position.
            matched |= hmac.compare_digest(got.encode(), want.encode())
    return matched


def parse_event(body: bytes) -> PagerDutyEvent | None:
    """The event in a verified v3 webhook body; None for event types we ignore.

    Raises InvalidPagerDutyEvent when the body is not JSON or not an `{"event": {...}}` envelope.
    """
    try:
        envelope = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidPagerDutyEvent(f"body is not JSON: {exc}") from None
    event = envelope.get("event") if isinstance(envelope, dict) else None
    if not isinstance(event, dict):
        raise InvalidPagerDutyEvent('body is not a PagerDuty v3 webhook: no "event" object')
    action = ACTIONS.get(str(event.get("event_type")))
    if action is None:
        return None
    data = _dict(event.get("data"))
    agent = _dict(event.get("agent"))
    try:
        return PagerDutyEvent(
            id=event.get("id"), event_type=event["event_type"], action=action,
            occurred_at=event.get("occurred_at"),
            incident_id=data.get("id"), incident_number=data.get("number"),
            incident_key=data.get("incident_key"), status=data.get("status"),
            title=data.get("title") or data.get("summary"), html_url=data.get("html_url"),
            agent_id=agent.get("id"), agent_name=agent.get("summary") or agent.get("name"),
            agent_type=agent.get("type"),
        )
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        raise InvalidPagerDutyEvent(f"{event['event_type']} event lacks or mistypes: {fields}") from None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
