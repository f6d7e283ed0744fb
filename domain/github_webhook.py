"""GitHub issue webhooks in, and the marker that ties a GitHub issue to its action item. Pure.

GitHub signs the raw body with the webhook's secret: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256>`.
Verify the raw bytes before parsing (re-serialised JSON does not match).

The marker: every issue incidentflow creates carries `<!-- incidentflow:ai-xxxxxxxx -->` at the end of
its body (an HTML comment, so people do not see it in the rendered issue and are unlikely to delete it).
The tracker finds its own issue again by it (a retried create never makes a second one), and the webhook
route finds the item an `issues` event is about by it.

Events → what we act on (everything else is None: answer 2xx and drop it, or GitHub redelivers):
  issues.closed   → TicketClosed(closed=True)   closed on GitHub (completed or not planned)
  issues.reopened → TicketClosed(closed=False)
  only on the configured repository, and only for issues that carry a marker.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

from domain.actions.models import TicketClosed

SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
TRACKER = "github"
_PREFIX = "sha256="
_MARK = re.compile(r"incidentflow:(ai-[a-z2-7]{8})(?![A-Za-z0-9])")
_ACTIONS = {"closed": True, "reopened": False}


def marker(aid: str) -> str:
    """The line appended to an issue's body."""
    return f"<!-- incidentflow:{aid} -->"


def aids_in(body: str | None) -> list[str]:
    """Every aid marked in the body, in order."""
    return _MARK.findall(body or "")


def aid_in(body: str | None) -> str | None:
    """The item an issue belongs to: the last marker in its body (ours is appended at the end, so a
    person quoting another issue above it does not steal it); None when there is none."""
    found = aids_in(body)
    return found[-1] if found else None


def sign(secret: str, body: bytes) -> str:
    """The header value GitHub would send (local replays and tests)."""
    return _PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature_header: str | None) -> bool:
    """True only when the header is `sha256=<hex>` of the body under `secret` (constant-time compare)."""
    offered = (signature_header or "").strip()
    if not secret or not offered.startswith(_PREFIX):
        return False
    return hmac.compare_digest(offered.lower().encode(), sign(secret, body).encode())


def ticket_event(event: str, payload: dict[str, Any], repo: str, delivery: str | None = None) -> TicketClosed | None:
    """The TicketClosed an `issues` event means, or None when it means nothing to us.

    `repo` is the configured owner/name (GitHub names are case-insensitive); `delivery` the
    X-GitHub-Delivery id (a redelivery carries the same one). Without it the event id is built from the
    issue id, the action and the issue's updated_at, so a redelivery dedups but a second close does not.
    """
    action = payload.get("action")
    if event != "issues" or action not in _ACTIONS:
        return None
    repository, issue, sender = (_dict(payload.get(k)) for k in ("repository", "issue", "sender"))
    if str(repository.get("full_name") or "").lower() != repo.lower():
        return None
    number = issue.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or "pull_request" in issue:
        return None
    if aid_in(issue.get("body") if isinstance(issue.get("body"), str) else None) is None:
        return None
    login = str(sender.get("login") or "unknown")[:150]
    event_id = delivery or f"{issue.get('id', number)}:{action}:{issue.get('updated_at') or ''}"
    return TicketClosed(tracker=TRACKER, key=str(number), closed=_ACTIONS[str(action)], by=f"github:{login}",
                        event_id=event_id[:200])


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
