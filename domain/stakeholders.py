"""What stakeholders inside the company read: the internal update (our users' template: severity and title,
status, impact, duration so far, team, current theory, next action, next update) and the resolution message
(summary, root cause, action items, when the postmortem follows)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from domain.models.common import Role
from domain.models.incident import IncidentState, StatusUpdateInput


class StakeholderUpdate(BaseModel):
    """One message to the stakeholder channel and list (the dedup key is stable across retries)."""

    incident_id: str
    service: str | None = None
    dedup_key: str
    subject: str
    text: str


def _duration(start: datetime, now: datetime) -> str:
    minutes = max(0, int((now - start).total_seconds() // 60))
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def team(s: IncidentState) -> str:
    labels = ((Role.ic, "IC"), (Role.lead, "tech lead"), (Role.comms, "comms"))
    return " · ".join(f"{label} {s.roles[role]}" for role, label in labels if role in s.roles) or "no roles yet"


def internal_update(s: IncidentState, cmd: StatusUpdateInput, now: datetime) -> str:
    nxt = f"{s.next_update_due:%H:%M} UTC" if s.next_update_due else "when something changes"
    return "\n".join([
        f"{s.severity.value} · {s.title} — {s.phase.value}",
        f"Status: {cmd.text}",
        f"Impact: {cmd.impact or 'not stated'}",
        f"Duration so far: {_duration(s.declared_at, now)}",
        f"Team: {team(s)}",
        f"Current theory: {cmd.theory or 'none yet'}",
        f"Next action: {cmd.next_action or 'not stated'}",
        f"Next update: {nxt}",
    ])


def resolution(s: IncidentState, root_cause: str, now: datetime) -> str:
    postmortem = (f"The postmortem follows by {s.postmortem_due:%Y-%m-%d} (owner: {s.roles.get(Role.ic, 'the IC')})."
                  if s.postmortem_due else f"No postmortem is required for a {s.severity.value}.")
    return "\n".join([
        f"Resolved: {s.severity.value} · {s.title}",
        f"Summary: {s.resolution_summary or 'not given'}",
        f"Root cause: {root_cause or 'under investigation (see the postmortem)'}",
        f"Duration: {_duration(s.declared_at, now)}",
        f"Team: {team(s)}",
        "Action items: tracked in the postmortem.",
        postmortem,
    ])
