"""The incident process as pure functions: severities, phase transitions, cadence, deadlines.

No I/O and no clocks: callers pass `now`, so workflows and tests share the same rules.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain import timeline_markdown
from domain.models.common import Phase, Role, Severity
from domain.models.incident import IncidentPolicy, IncidentState


@dataclass(frozen=True)
class SeverityInfo:
    level: Severity
    impact: str
    respond_within: str
    example: str


SEVERITIES: dict[Severity, SeverityInfo] = {
    Severity.SEV1: SeverityInfo(Severity.SEV1, "full outage, data loss or security breach",
                                "immediately (< 5 min), all hands", "site down, payments failing"),
    Severity.SEV2: SeverityInfo(Severity.SEV2, "major feature broken or degraded, significant user impact",
                                "15 min", "checkout or login broken"),
    Severity.SEV3: SeverityInfo(Severity.SEV3, "minor feature degraded, workaround exists",
                                "1 hour", "slow admin panel"),
    Severity.SEV4: SeverityInfo(Severity.SEV4, "cosmetic, no user impact", "next business day",
                                "typo in an email"),
}

ORDER: list[Phase] = [
    Phase.triage, Phase.investigating, Phase.identified, Phase.mitigating,
    Phase.monitoring, Phase.resolved, Phase.postmortem, Phase.closed,
]
ACTIVE: frozenset[Phase] = frozenset(ORDER[:5])  # the incident is still being worked
TERMINAL: frozenset[Phase] = frozenset({Phase.closed, Phase.stood_down})
# The only ways back: the fix did not hold, or a resolved incident comes back.
BACKWARDS: dict[Phase, frozenset[Phase]] = {
    Phase.monitoring: frozenset({Phase.investigating}),
    Phase.resolved: frozenset({Phase.investigating}),
}


class NotAllowed(ValueError):
    """A command that the incident's current state does not allow; the message says why."""


def allowed_next(phase: Phase) -> list[Phase]:
    if phase in TERMINAL:
        return []
    forward = ORDER[ORDER.index(phase) + 1:]
    if phase in ACTIVE:  # postmortem and closed come only after the incident is resolved
        forward = [p for p in forward if p in ACTIVE or p == Phase.resolved]
    back = [p for p in ORDER if p in BACKWARDS.get(phase, frozenset())]
    stand_down = [Phase.stood_down] if phase in ACTIVE else []
    return back + forward + stand_down


def check_transition(current: Phase, target: Phase) -> None:
    if current in TERMINAL:
        raise NotAllowed(f"the incident is {current.value}; no further phase changes are possible")
    if target == current:
        raise NotAllowed(f"the incident is already in phase {current.value}")
    allowed = allowed_next(current)
    if target not in allowed:
        names = ", ".join(p.value for p in allowed)
        raise NotAllowed(
            f"cannot move from {current.value} to {target.value}; allowed next phases: {names}"
        )


def check_open(state: IncidentState, action: str) -> None:
    """Commands that only make sense while the incident is being worked (not resolved or ended)."""
    if state.phase not in ACTIVE:
        raise NotAllowed(f"cannot {action}: the incident is {state.phase.value}")


def check_not_ended(state: IncidentState, action: str) -> None:
    if state.phase in TERMINAL:
        raise NotAllowed(f"cannot {action}: the incident is {state.phase.value}")


def update_interval(policy: IncidentPolicy, severity: Severity) -> timedelta | None:
    return policy.update_every.get(severity)


def next_update_due(state: IncidentState) -> datetime | None:
    """When the next status update is owed: first one `first_update_after` declaration, then on cadence.

    Severities without a cadence (SEV4 by default) owe no updates at all.
    """
    if state.phase not in ACTIVE:
        return None
    interval = update_interval(state.policy, state.severity)
    if interval is None:
        return None
    if state.last_update_at is None:
        return state.declared_at + state.policy.first_update_after
    return state.last_update_at + interval


def add_business_days(start: datetime, days: int) -> datetime:
    """`days` working days (Mon–Fri) after `start`, keeping the time of day."""
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            remaining -= 1
    return current


def postmortem_required(state: IncidentState) -> bool:
    return state.severity in state.policy.postmortem_required


def next_postmortem_reminder(state: IncidentState) -> datetime | None:
    """Reminder schedule: `remind_before` the deadline, at the deadline, then every `overdue_every`."""
    due = state.postmortem_due
    if due is None or state.phase not in (Phase.resolved, Phase.postmortem) or state.postmortem_published_at:
        return None
    schedule = [due - state.policy.postmortem_remind_before, due]
    schedule += [due + state.policy.postmortem_overdue_every * (i + 1)
                 for i in range(state.policy.postmortem_max_overdue_reminders)]
    if state.postmortem_reminders >= len(schedule):
        return None
    return schedule[state.postmortem_reminders]


def pages_at_declaration(policy: IncidentPolicy, severity: Severity) -> bool:
    """Does declaring an incident of this severity start its escalation policy?

    The incident workflow and `incidentflow drill` both ask this one function, so a drill shows what a
    real declaration does (a drill of a severity that does not page pages nobody)."""
    return severity in policy.page_severities


def update_recipient(state: IncidentState) -> str | None:
    """Cadence reminders go to the comms lead, or the IC when nobody holds comms."""
    return state.roles.get(Role.comms) or state.roles.get(Role.ic)


def render_markdown(state: IncidentState) -> str:
    """The incident as Markdown, the raw material of its postmortem (see `domain.timeline_markdown`)."""
    return timeline_markdown.render(state)


_SLUG_RE = re.compile(r"[^a-z0-9]+")


def slugify(text: str, max_length: int = 40) -> str:
    normal = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    slug = _SLUG_RE.sub("-", normal).strip("-")
    return slug[:max_length].rstrip("-") or "incident"


def incident_id(declared_at: datetime, service: str | None, title: str, attempt: int = 0) -> str:
    """Readable, URL-safe, Slack-channel-safe id: incident-YYYYMMDD-HHMM-<slug>[-N]."""
    base = f"incident-{declared_at:%Y%m%d-%H%M}-{slugify(service or title)}"
    return base if attempt == 0 else f"{base}-{attempt + 1}"
