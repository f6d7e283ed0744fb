"""Jira Cloud webhooks in: the signature check and the one event we act on. Pure; the API route is thin.

A webhook registered with a secret (Jira admin → System → WebHooks, or the REST API) is signed the WebSub
way: `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw body>` keyed on that secret. Verify the raw
bytes before parsing — re-serialised JSON does not match.

What becomes a `TicketClosed`: a `jira:issue_updated` whose changelog changes the issue's status, for an
issue of our project that carries an `incidentflow-<aid>` label (the label the tracker adapter puts on
every ticket it creates). The status's category after the change decides: `done` → closed, any other
category → reopened. Jira's changelog names the statuses but not their categories, so a move between two
open statuses (To Do → In Progress) also reads as "reopened": the receiver treats reopening an open item
as nothing. Everything else (comments, other fields, other projects, unlabelled issues) is None: answer
2xx and drop it, or Jira retries the delivery.

`event_id` is `jira:<key>:<changelog id>` (the same on a redelivery of the same change), so the item's
workflow can drop a delivery it has seen.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

from domain.actions.models import TicketClosed

SIGNATURE_HEADER = "X-Hub-Signature"
LABEL_PREFIX = "incidentflow-"
_AID_LABEL = re.compile(r"^incidentflow-(ai-[a-z2-7]{8})$")
_MAX_BY = 200


def sign(secret: str, body: bytes) -> str:
    """The header value Jira sends for `body` (tests and local replays use this)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature_header: str | None) -> bool:
    """True when the header is Jira's signature of these exact bytes under `secret` (constant time)."""
    if not secret or not signature_header:
        return False
    method, _, digest = signature_header.strip().partition("=")
    if method.lower() != "sha256" or not digest:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), f"sha256={digest.strip().lower()}".encode())


def aid_label(aid: str) -> str:
    """The label that ties a Jira issue to its action item (JQL finds it; webhooks carry it)."""
    return LABEL_PREFIX + aid


def aid_in_labels(labels: Any) -> str | None:
    """The action item id among an issue's labels, if it carries one."""
    if not isinstance(labels, list):
        return None
    for label in labels:
        found = _AID_LABEL.match(label) if isinstance(label, str) else None
        if found:
            return found.group(1)
    return None


def issue_aid(payload: dict[str, Any]) -> str | None:
    """The action item a webhook's issue belongs to (the id of the workflow to signal), from its labels."""
    return aid_in_labels(_dict(_dict(payload.get("issue")).get("fields")).get("labels"))


def ticket_event(payload: dict[str, Any], project: str, done_status_category: str = "done") -> TicketClosed | None:
    """The close (or reopen) a verified `jira:issue_updated` body reports; None for anything else."""
    if payload.get("webhookEvent") != "jira:issue_updated":
        return None
    issue = _dict(payload.get("issue"))
    fields = _dict(issue.get("fields"))
    key = issue.get("key")
    if not isinstance(key, str) or not key or not _in_project(key, fields, project):
        return None
    if aid_in_labels(fields.get("labels")) is None or not _status_changed(payload.get("changelog")):
        return None
    category = _dict(_dict(fields.get("status")).get("statusCategory")).get("key")
    changelog_id = _dict(payload.get("changelog")).get("id")
    stamp = changelog_id if changelog_id not in (None, "") else payload.get("timestamp", "")
    return TicketClosed(tracker="jira", key=key, closed=category == done_status_category,
                        by=_by(payload.get("user")), event_id=f"jira:{key}:{stamp}"[:200])


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _in_project(key: str, fields: dict[str, Any], project: str) -> bool:
    declared = _dict(fields.get("project")).get("key")
    return (declared if isinstance(declared, str) else key.rsplit("-", 1)[0]) == project


def _status_changed(changelog: Any) -> bool:
    items = _dict(changelog).get("items")
    return isinstance(items, list) and any(
        isinstance(i, dict) and (i.get("fieldId") == "status" or i.get("field") == "status") for i in items)


def _by(user: Any) -> str:
    person = _dict(user)
    name = person.get("displayName") or person.get("accountId")
    who = " ".join(str(name).split()) if name else "unknown"
    return f"jira:{who}"[:_MAX_BY]
