"""The incident: commands in, state out. One input model per message."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta

from pydantic import BaseModel, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from domain.models.alert import AlertRecord, AlertSignal
from domain.models.chat import ButtonMessage, ChatRoom, SentMessage
from domain.models.common import SERVICE_NAME, EventKind, Phase, Role, Severity
from domain.models.paging import InlineEscalation
from domain.models.runbook import RunbookRun, RunbookTriggers
from domain.text import MultiLine, SingleLine

ACTOR = Field(..., min_length=1, max_length=128, description="who did it (person id or name)")


class TimelineEvent(BaseModel):
    seq: int
    at: datetime
    kind: EventKind
    actor: str
    text: str
    subject: str | None = None  # the person it concerns (reminder recipient, paged person): chat mentions them
    ref: str | None = None  # what it refers to (a runbook run id, for approval requests)
    mentions: list[str] = Field(default_factory=list)  # people asked to act on it (an approval's approvers)


class IncidentPolicy(BaseModel):
    """Timers and bounds, snapshotted into the workflow at declaration (config can change later)."""

    first_update_after: timedelta = timedelta(minutes=10)
    update_every: dict[Severity, timedelta | None] = Field(
        default_factory=lambda: {
            Severity.SEV1: timedelta(minutes=15),
            Severity.SEV2: timedelta(minutes=30),
            Severity.SEV3: timedelta(minutes=60),
            Severity.SEV4: None,
        }
    )
    monitoring_window: timedelta = timedelta(minutes=15)
    reopen_window: timedelta = timedelta(minutes=30)  # an alert re-firing this soon after resolve reopens
    postmortem_required: list[Severity] = Field(default_factory=lambda: [Severity.SEV1, Severity.SEV2])
    postmortem_business_days: int = Field(5, ge=1, le=60)
    postmortem_remind_before: timedelta = timedelta(days=1)
    postmortem_overdue_every: timedelta = timedelta(days=1)
    postmortem_max_overdue_reminders: int = Field(3, ge=0, le=30)
    auto_close_after: timedelta | None = timedelta(hours=24)  # resolved, no postmortem required
    page_severities: list[Severity] = Field(default_factory=lambda: [Severity.SEV1, Severity.SEV2, Severity.SEV3])
    max_timeline_events: int = Field(500, ge=20)
    max_alerts: int = Field(200, ge=1)
    max_text_length: int = Field(4000, ge=100)
    continue_as_new_after_events: int = Field(8000, ge=20)
    public: PublicPolicy | None = None  # the status page's cadence (None: no public updates, as before)
    stakeholders: bool = False  # the config names a stakeholder channel or list: internal updates go there too
    # Slack is configured where the incident was declared (the door's settings): without it the first page does
    # not wait for a channel that will never open. Histories from before it lack the field: True, they waited.
    chat: bool = True
    # The escalation policy the alert's routing rule named (`routing.rules[].escalation_policy`): paging and
    # `escalate --level` use it over the service's. None (declared by a person, or the rule names none): the service's.
    escalation_policy: str | None = None


class PublicPolicy(BaseModel):
    """When the public hears about an incident on a service that affects status page components."""

    components: dict[str, list[str]] = Field(default_factory=dict)  # service -> component ids
    first_update: timedelta = timedelta(minutes=10)
    cadence: dict[Severity, timedelta] = Field(default_factory=dict)
    auto_publish: list[Severity] = Field(default_factory=list)
    remind_every: timedelta = timedelta(minutes=10)  # the first `fast_reminders` reminders, then `remind_later`
    fast_reminders: int = Field(6, ge=0, le=50)
    remind_later: timedelta = timedelta(hours=1)
    # None: until the update is posted. Incidents declared before it snapshot 6 here (then they stopped).
    max_reminders: int | None = Field(None, ge=0, le=500)


class PublicState(BaseModel):
    """The incident's public side: which components, what was published last, when the next update is due."""

    components: list[str]
    due: datetime | None = None  # the next public update (reminders to the comms lead until it is posted)
    reminders: int = 0
    last_status: str | None = None  # the public status last published
    last_at: datetime | None = None
    drafts: int = 0


class DeclareInput(BaseModel):
    title: SingleLine = Field(..., min_length=1, max_length=200)
    severity: Severity = Severity.SEV3
    service: str | None = Field(None, max_length=63, pattern=SERVICE_NAME)
    description: MultiLine = Field("", max_length=4000)
    declared_by: SingleLine = ACTOR
    commander: SingleLine | None = Field(None, max_length=128)
    page: bool = Field(True, description="start the service's escalation policy (severities that page)")

    @field_validator("title")
    @classmethod
    def _strip_title(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("title must not be blank")
        return v


class AckInput(BaseModel):
    by: SingleLine = ACTOR


class RoleInput(BaseModel):
    role: Role
    person: SingleLine = Field(..., min_length=1, max_length=128)
    by: SingleLine = ACTOR


class SeverityInput(BaseModel):
    severity: Severity
    by: SingleLine = ACTOR
    reason: SingleLine = Field("", max_length=1000)


class PhaseInput(BaseModel):
    phase: Phase
    by: SingleLine = ACTOR
    note: MultiLine = Field("", max_length=4000)


class NoteInput(BaseModel):
    text: MultiLine = Field(..., min_length=1, max_length=20000)
    by: SingleLine = ACTOR
    # Set by the client from the caller's Idempotency-Key (never taken from a request body): a note is a
    # signal, so the workflow drops a second delivery of the same request (bounded; see IncidentState).
    request_id: SkipJsonSchema[str | None] = Field(None, max_length=128)


class StatusUpdateInput(BaseModel):
    """A status update. With any of impact, theory or next action it is a structured internal update: the
    stakeholders' template (severity and title, status, impact, duration, team, theory, next action, next
    update) goes to the channel, the stakeholder channel and the stakeholder list."""

    text: MultiLine = Field(..., min_length=1, max_length=20000)
    by: SingleLine = ACTOR
    impact: SingleLine = Field("", max_length=500, description="who or what is affected, how much")
    theory: SingleLine = Field("", max_length=500, description="the current theory of the cause")
    next_action: SingleLine = Field("", max_length=500, description="what is being done next")
    next_update: SingleLine = Field(
        "", max_length=40, description="when the next update comes (else the severity's cadence): a duration "
        "(30m, 1h30m), a UTC clock time (14:30: the next one, within 12 h) or an ISO date and time; at most 24 h on")

    @property
    def structured(self) -> bool:
        return bool(self.impact or self.theory or self.next_action)

    @field_validator("next_update")
    @classmethod
    def _readable_next_update(cls, v: str) -> str:
        if v:
            _when(v)  # the shape only: whether it is in the future is the workflow's to say (its clock)
        return v

    def next_update_at(self, now: datetime) -> datetime | None:
        """When `next_update` falls, from `now`; ValueError (naming the field) when it is past or too far."""
        if not self.next_update:
            return None
        try:
            when = _when(self.next_update)
        except ValueError as exc:  # validated at input already; here (the workflow's check) it names its field
            raise ValueError(f"next_update: {exc}") from None
        if isinstance(when, timedelta):
            return now + when
        if isinstance(when, time):
            at = datetime.combine(now.astimezone(UTC).date(), when, tzinfo=UTC)
            at = at if at > now else at + timedelta(days=1)
            if at - now > CLOCK_AHEAD:
                raise ValueError(f"next_update: {when:%H:%M} UTC is {_span(at - now)} away (it is {now:%H:%M} UTC "
                                 f"now); a clock time must be within {_span(CLOCK_AHEAD)}: give a duration like 30m")
            return at
        if when <= now:
            raise ValueError(f"next_update: {when:%Y-%m-%d %H:%M} UTC is in the past (it is {now:%H:%M} UTC now)")
        if when - now > NEXT_UPDATE_MAX:
            raise ValueError(f"next_update: {when:%Y-%m-%d %H:%M} UTC is more than {_span(NEXT_UPDATE_MAX)} away")
        return when


NEXT_UPDATE_MAX = timedelta(hours=24)  # a status update promises the next one within a day at most
CLOCK_AHEAD = timedelta(hours=12)  # `next_update` 14:30 at 14:35 is a slip, not "tomorrow"
_DURATION = re.compile(r"(?:(\d{1,2})\s*h)?\s*(?:(\d{1,4})\s*m(?:in)?)?", re.I)
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)(?:\s*UTC)?", re.I)


def _span(d: timedelta) -> str:
    minutes = int(d.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _when(text: str) -> timedelta | time | datetime:
    """`next_update` read: a duration, a UTC clock time or an aware date and time (naive ones are UTC)."""
    v = text.strip()
    if (m := _DURATION.fullmatch(v)) and (m.group(1) or m.group(2)):
        span = timedelta(hours=int(m.group(1) or 0), minutes=int(m.group(2) or 0))
        if not timedelta(0) < span <= NEXT_UPDATE_MAX:
            raise ValueError(f"{v} must be more than 0 and at most {_span(NEXT_UPDATE_MAX)}")
        return span
    if m := _CLOCK.fullmatch(v):
        return time(int(m.group(1)), int(m.group(2)))
    try:
        at = datetime.fromisoformat(v.replace(" UTC", "").replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{v!r} is not a duration (30m, 1h30m), a UTC time (14:30) "
                         "nor an ISO date and time (2026-12-15T14:30Z)") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


class ResolveInput(BaseModel):
    by: SingleLine = ACTOR
    summary: MultiLine = Field("", max_length=4000)
    root_cause: SingleLine = Field("", max_length=1000, description="for the stakeholders' resolution message")
    # When the outside event asking for it happened (a PagerDuty webhook's occurred_at): refused if the
    # incident was reopened after that, so an old event can never resolve a reopened incident.
    event_at: SkipJsonSchema[datetime | None] = None


class ReopenInput(BaseModel):
    by: SingleLine = ACTOR
    reason: SingleLine = Field("", max_length=1000)


class StandDownInput(BaseModel):
    by: SingleLine = ACTOR
    reason: SingleLine = Field(..., min_length=1, max_length=1000)


class IncidentState(BaseModel):
    id: str
    title: str
    service: str | None
    description: str = ""
    severity: Severity
    phase: Phase = Phase.triage
    declared_at: datetime
    declared_by: str
    roles: dict[Role, str] = Field(default_factory=dict)
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    timeline: list[TimelineEvent] = Field(default_factory=list)
    timeline_dropped: int = 0
    seq: int = 0
    alerts: dict[str, AlertRecord] = Field(default_factory=dict)
    alerts_received: int = 0
    alerts_dropped: int = 0
    last_update_at: datetime | None = None
    next_update_due: datetime | None = None
    reminders_sent: int = 0
    monitoring_since: datetime | None = None
    resolve_suggested: bool = False
    resolved_at: datetime | None = None
    resolution_summary: str = ""
    # The cause as the responders last gave it (an update's theory, the note moving to identified, the root cause
    # at resolve): the public drafts a person publishes name it.
    cause: str = ""
    postmortem_due: datetime | None = None
    postmortem_reminders: int = 0
    auto_close_at: datetime | None = None
    ended_at: datetime | None = None
    reopened_at: datetime | None = None  # the last move from resolved back to investigating
    stand_down_reason: str = ""
    policy: IncidentPolicy = Field(default_factory=IncidentPolicy)
    runs: int = 1
    group_id: str | None = None
    url: str | None = None
    escalation_id: str | None = None  # the running (or last) EscalationWorkflow child (code levels 0-2)
    escalation: InlineEscalation | None = None  # the running (or last) escalation inside the incident (level 3)
    escalation_active: bool = False
    escalations: int = 0
    pages: int = 0
    chat: ChatRoom | None = None  # the incident channel, once opened
    chat_checked: bool = False  # the worker was asked to open a channel (none when chat is not configured)
    paged: list[str] = Field(default_factory=list)  # people paged (invited to the channel, bounded)
    buttons: list[ButtonMessage] = Field(default_factory=list)  # sent messages with buttons (bounded)
    runbooks: list[RunbookRun] = Field(default_factory=list)  # runbook runs on this incident
    runbook_runs: int = 0
    runbook_triggers: RunbookTriggers | None = None  # the auto-run runbooks that could apply (code level 3), cached
    note_requests: list[str] = Field(default_factory=list)  # request ids of the last notes (dedup, bounded)
    public: PublicState | None = None  # on the status page (components affected), else None
    code_level: int = 0  # see CODE_LEVEL: kept across continue-as-new
    postmortem_id: str | None = None  # the PostmortemWorkflow, once started
    postmortem_link: str | None = None  # where its document lives (the sink's link)
    postmortem_published_at: datetime | None = None  # published: the deadline reminders stop

    @property
    def commander(self) -> str | None:
        return self.roles.get(Role.ic)


# The code level new incidents start at. Level 1: every change patched since the baseline applies without a
# `workflow.patched` call (each cost a marker and a search attribute upsert per incident), and the escalation's
# config reads (its policy, who is on call) run as local activities. Incidents started at
# level 0 (before it) keep taking their patches' recorded branches.
# Level 2: the declaration time is the door's (`IncidentDeclaredAt` at start), so it and an unset commander cost
# no upsert; structured updates may say when the next one comes; the resolution message also goes to the channel.
# Level 3: the escalation runs inside the incident (`workflows.incident_escalation`), one activity per level
# (the policy read with the first), instead of an EscalationWorkflow child (no child start, no signals both ways).
# Level 4: the incident's coroutines wake in a fixed rank (`workflows.wake_order`), so a worker without the run in
# its cache issues the commands a replay expects when the SDK hands it a command-less task with an update's.
CODE_LEVEL = 4


class IncidentStart(BaseModel):
    """Workflow argument: a fresh declaration, or the state carried over by continue-as-new."""

    declare: DeclareInput | None = None
    incident_id: str | None = None
    declared_at: datetime | None = None
    policy: IncidentPolicy = Field(default_factory=IncidentPolicy)
    carried: IncidentState | None = None
    group_id: str | None = None  # the AlertGroupWorkflow that opened it, told about phase changes
    url: str | None = None  # link to the incident (Temporal UI), put in pages
    initial_alerts: list[AlertSignal] = Field(default_factory=list)
    code_level: int = 0  # set by whoever starts it (CODE_LEVEL); 0 in histories from before levels existed


class NotifyInput(BaseModel):
    """A reminder or notice for a person (or the incident's audience when recipient is None)."""

    incident_id: str
    dedup_key: str
    kind: str
    recipient: str | None
    text: str


class IncidentSummary(BaseModel):
    """One row of `list`, read from Temporal visibility (no worker needed)."""

    id: str
    title: str
    severity: Severity | None
    phase: Phase | None
    service: str | None
    commander: str | None
    acknowledged: bool
    declared_at: datetime | None
    running: bool


class CommandResult(BaseModel):
    """What an accepted update returns (small on purpose: update results are stored in history)."""

    incident_id: str
    phase: Phase
    severity: Severity
    text: str
    warnings: list[str] = Field(default_factory=list)
    ref: str | None = None  # what the command created (a runbook run id)


class EscalateInput(BaseModel):
    level: int = Field(..., ge=1, le=20)
    by: SingleLine = ACTOR


class PageInput(BaseModel):
    person: SingleLine = Field(..., min_length=1, max_length=128)
    by: SingleLine = ACTOR
    note: SingleLine = Field("", max_length=1000)


class EventRecord(BaseModel):
    """A timeline entry sent by a child workflow (escalation pages, warnings)."""

    kind: EventKind
    actor: str = Field(..., max_length=128)
    text: str = Field(..., max_length=4000)
    subject: str | None = Field(None, max_length=128)
    messages: list[SentMessage] = Field(default_factory=list, max_length=10)  # a page's DMs with buttons
