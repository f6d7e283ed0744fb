"""What stakeholders inside the company read: the internal update (our users' template: severity and title,
status, impact, duration so far, team, current theory, next action, next update) and the resolution message
(summary, root cause, action items, when the postmortem follows).

The resolution message is written by the workflow with what the incident knows; its action items live in their
own workflows (`incidentflow action add ID …`), so the activity that sends it lists them and puts them in
(`with_action_items`): until then, and when none were added, the line says when the postmortem (which agrees
them) is due."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from domain.actions.models import ActionItem, ItemStatus
from domain.models.common import Role
from domain.models.incident import IncidentState, StatusUpdateInput

ACTION_ITEMS = "Action items:"  # the resolution message's line the sending activity fills in
ITEMS_SHOWN = 15  # action items listed in the message; the rest are counted


class StakeholderUpdate(BaseModel):
    """One message to the stakeholder channel and list (the dedup key is stable across retries)."""

    incident_id: str
    service: str | None = None
    dedup_key: str
    subject: str
    text: str
    # The resolution: the incident's action items go in its "Action items:" line (listed when it is sent).
    action_items_of: str | None = None
    # The incident channel, where the message goes too (the resolution); the stakeholder channel and list only
    # when the config names them (`stakeholders`: False, the incident channel alone).
    incident_channel: str | None = None
    stakeholders: bool = True


def _duration(start: datetime, now: datetime) -> str:
    minutes = max(0, int((now - start).total_seconds() // 60))
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def team(s: IncidentState) -> str:
    labels = ((Role.ic, "IC"), (Role.lead, "tech lead"), (Role.comms, "comms"))
    return " · ".join(f"{label} {s.roles[role]}" for role, label in labels if role in s.roles) or "no roles yet"


def _next(s: IncidentState) -> str:
    return f"{s.next_update_due:%H:%M} UTC" if s.next_update_due else "when something changes"


def internal_update(s: IncidentState, cmd: StatusUpdateInput, now: datetime) -> str:
    return "\n".join([
        f"{s.severity.value} · {s.title} — {s.phase.value}",
        f"Status: {cmd.text}",
        f"Impact: {cmd.impact or 'not stated'}",
        f"Duration so far: {_duration(s.declared_at, now)}",
        f"Team: {team(s)}",
        f"Current theory: {cmd.theory or 'none yet'}",
        f"Next action: {cmd.next_action or 'not stated'}",
        f"Next update: {_next(s)}",
    ])


def plain_update(s: IncidentState, cmd: StatusUpdateInput) -> str:
    """A free-text update as written; with a `next_update` it says when the next one comes."""
    return f"{cmd.text}\nNext update: {_next(s)}" if cmd.next_update else cmd.text


def _owner(s: IncidentState) -> str:
    return s.roles.get(Role.ic, "the IC")


def no_action_items(s: IncidentState) -> str:
    """The action-items line before (or without) any item: when the postmortem that agrees them is due."""
    if s.postmortem_due:
        return f"{ACTION_ITEMS} none added yet; the postmortem agrees them (due {s.postmortem_due:%Y-%m-%d}, " \
               f"owner {_owner(s)})."
    return f"{ACTION_ITEMS} none."


def resolution(s: IncidentState, root_cause: str, now: datetime) -> str:
    postmortem = (f"The postmortem follows by {s.postmortem_due:%Y-%m-%d} (owner: {_owner(s)})."
                  if s.postmortem_due else f"No postmortem is required for a {s.severity.value}.")
    return "\n".join([
        f"Resolved: {s.severity.value} · {s.title}",
        f"Summary: {s.resolution_summary or 'not given'}",
        f"Root cause: {root_cause or 'under investigation (see the postmortem)'}",
        f"Duration: {_duration(s.declared_at, now)}",
        f"Team: {team(s)}",
        no_action_items(s),
        postmortem,
    ])


def action_line(item: ActionItem) -> str:
    done = " — done" if item.status == ItemStatus.done else ""
    ticket = f" ({item.ticket.url})" if item.ticket else ""
    return f"• {item.text} — {item.owner}, due {item.due:%Y-%m-%d}, {item.priority.value}{done}{ticket}"


def with_action_items(text: str, items: list[ActionItem]) -> str:
    """The message with its "Action items:" line listing `items` (dropped ones left out); unchanged when none."""
    kept = sorted((i for i in items if i.status != ItemStatus.dropped), key=lambda i: (i.due, i.priority, i.aid))
    if not kept:
        return text
    lines = [f"{ACTION_ITEMS} {len(kept)}", *(action_line(i) for i in kept[:ITEMS_SHOWN])]
    if len(kept) > ITEMS_SHOWN:
        lines.append(f"• … and {len(kept) - ITEMS_SHOWN} more: `incidentflow action list --incident "
                     f"{kept[0].incident_id} --all`")
    out = text.split("\n")
    at = next((n for n, line in enumerate(out) if line.startswith(ACTION_ITEMS)), None)
    if at is None:
        return "\n".join([*out, *lines])
    return "\n".join([*out[:at], *lines, *out[at + 1:]])
