"""The incident's state and how it changes: the base of IncidentWorkflow and of its mixins.

Every change goes through here: a timeline event (bounded), a phase change with its deadlines, a role,
an alert. The reports the incident's children send (`record_event`, `escalation_ended`,
`runbook_progress`) are handled here too: `workflows.incident` imports the children to start them,
so the children name these handlers on this base class instead, by method reference.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import policy
    from domain.models.alert import AlertRecord, AlertSignal
    from domain.models.chat import ButtonMessage, ChannelLink, ChatSummary, SentMessage
    from domain.models.common import AlertStatus, EventKind, Phase, Role
    from domain.models.group import IncidentStatusSignal
    from domain.models.incident import CommandResult, EventRecord, IncidentStart, IncidentState, TimelineEvent
    from domain.models.messages import (
        ChannelOpened,
        CommanderChanged,
        EscalateTo,
        EscalationEnded,
        StopPaging,
    )
    from domain.models.paging import PageAction
    from domain.models.runbook import RunbookProgress, RunStatus
    from domain.postmortem.models import PostmortemEvent
    from domain.stakeholders import StakeholderUpdate
    from workflows import search_attributes as sa
    from workflows.wake_order import WakeOrder

SYSTEM = "incidentflow"
# The wake order of the incident's long-lived coroutines, lowest first (code level 4; workflows/wake_order.py).
LOOP, MESSENGER, ESCALATION, CHAT, ARCHIVE = range(5)
# The changes (workflow.patched ids) that code level 1 includes: never add to this list, start level 2 instead.
LEVEL_1 = frozenset({"prompt-stop", "channel-first", "chat-current", "mitigate-on-change", "runbook-phase",
                     "public-updates", "postmortem-draft", "archive"})
BEFORE_MONITORING = (Phase.triage, Phase.investigating, Phase.identified, Phase.mitigating)
# Kinds that may be dropped first when the timeline reaches its bound; decisions are kept.
DROPPABLE = (EventKind.alert, EventKind.note, EventKind.reminder)
MILESTONES = (EventKind.declared, EventKind.acknowledged, EventKind.severity, EventKind.phase)  # archived
MAX_PAGED = 50  # people remembered as paged (invited to the channel)
MAX_BUTTONS = 50  # messages with buttons remembered until answered
_UNSET = object()
DECLARED_AT_SLACK = timedelta(minutes=1)  # IncidentDeclaredAt: the door's clock vs the workflow's first task


class IncidentCore:
    """State (`s`, persisted through continue-as-new) plus what the run loop has still to do."""

    s: IncidentState
    _wake: bool  # set by every change: the run loop goes round again
    _order: WakeOrder  # the coroutines' wake order (code level 4; workflows/wake_order.py)
    _synced: dict[str, object]  # search attributes as last upserted
    _outbox: list[IncidentStatusSignal]  # phase changes to tell the alert group
    _escalation_signals: list[StopPaging | EscalateTo | ChannelOpened]  # for the running escalation child
    _messenger_stop: bool  # the escalation messenger ends with the run
    _vendor_sync: list[PageAction]  # acknowledge/resolve to mirror on PagerDuty
    _children: set[str]  # escalations started by this run and still running
    _runbook_signals: list[tuple[str, CommanderChanged]]  # (run id, change) for runbook children
    _match_queue: list[dict[str, str]]  # labels of new firing alerts: runbooks to auto-run?
    _timer: asyncio.Future[None] | None  # the deadline timer, kept while the deadline stays
    _armed: datetime | None
    _chat_task: asyncio.Future[None] | None
    _chat_stop: bool
    _chat_sent: ChatSummary | None  # the summary as last shown in the channel
    _declared_seq: int | None  # timeline events the channel's context message covers
    _public_queue: list[Phase]  # public updates to draft (the phase each is for)
    _stakeholder_queue: list[StakeholderUpdate]  # internal updates to send to stakeholders
    _root_cause: str  # given with the resolve command, for the stakeholders' resolution message
    _chat_current: bool  # the chat-current patch applies to this run (workflows/chat_pump.py)
    _postmortem_queue: list[str]  # the postmortem to start or refresh (workflows/incident_postmortem.py)
    _archive_due: bool  # a milestone happened: the archive gets the incident as it is now (incident_archive.py)

    def _init_runtime(self) -> None:
        """What is rebuilt on every run (and on replay) rather than carried in `s`."""
        self._wake = False
        self._synced = {}
        self._outbox, self._escalation_signals, self._vendor_sync = [], [], []
        self._messenger_stop = False
        self._children = set()
        self._runbook_signals, self._match_queue = [], []
        self._timer, self._armed = None, None
        self._chat_task, self._chat_stop, self._chat_sent = None, False, None
        self._declared_seq = None
        self._public_queue, self._stakeholder_queue, self._root_cause = [], [], ""
        self._chat_current = False
        self._postmortem_queue = []
        self._archive_due = False
        self._order = WakeOrder()

    def _patched(self, patch: str) -> bool:
        """Does a change made since the baseline apply to this run? Incidents started at code level 1 or later
        (domain.models.incident.CODE_LEVEL) take every change of LEVEL_1 without asking `workflow.patched`, which
        would record a marker and upsert a search attribute per change; earlier ones take what their history
        recorded."""
        return (self.s.code_level >= 1 and patch in LEVEL_1) or workflow.patched(patch)

    # ---------------------------------------------------------------- reports from children
    @workflow.signal
    def record_event(self, record: EventRecord) -> None:
        """Timeline entries from children (escalation pages and warnings)."""
        self._apply_record(record)

    def _apply_record(self, record: EventRecord) -> None:
        """An escalation's page or warning on the timeline (from a child's signal, or from the escalation inside)."""
        if record.kind == EventKind.page:
            self.s.pages += 1
        event = self._event(record.kind, record.actor, record.text, subject=record.subject)
        self._keep_page_messages(record.messages, event.seq)

    def _keep_page_messages(self, messages: list[SentMessage], seq: int) -> None:
        """A page's direct messages (an Acknowledge button each): the chat pump closes them once answered."""
        for m in messages:
            self._keep_buttons(ButtonMessage(kind="page", ref=self.s.id, seq=seq, channel=m.channel, ts=m.ts,
                                             text=m.text))

    def _keep_buttons(self, message: ButtonMessage) -> None:
        buttons = self.s.buttons
        if any(b.channel == message.channel and b.ts == message.ts for b in buttons):
            return
        buttons.append(message)
        while len(buttons) > MAX_BUTTONS:  # closed ones go first, then the oldest
            victim = next((i for i, b in enumerate(buttons) if b.closed), 0)
            del buttons[victim]

    @workflow.signal
    def escalation_ended(self, ended: EscalationEnded) -> None:
        if ended.escalation_id == self.s.escalation_id:
            self.s.escalation_active = False

    @workflow.signal
    def runbook_progress(self, progress: RunbookProgress) -> None:
        before = self.s.seq
        self._runbook_progressed(progress)
        if progress.kind == EventKind.approval.value:  # chat @-mentions whoever may decide
            approvers = approvers_of(progress)
            for e in self.s.timeline[-5:]:
                if e.seq > before and e.kind == EventKind.approval and e.ref == progress.run_id:
                    e.mentions = approvers

    def _runbook_progressed(self, progress: RunbookProgress) -> None:
        """What a run's report changes (`workflows.incident_runbooks`)."""
        raise NotImplementedError

    @workflow.signal
    def postmortem_event(self, event: PostmortemEvent) -> None:
        """From the PostmortemWorkflow: its draft is there, or it was published."""
        self._postmortem_event(event)

    def _postmortem_event(self, event: PostmortemEvent) -> None:
        raise NotImplementedError

    def _public_phase(self, old: Phase, target: Phase) -> None:
        """A phase change asks the public side for a draft (`workflows.incident_public`)."""
        raise NotImplementedError

    async def _flush_public(self) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- state changes
    def _event(self, kind: EventKind, actor: str, text: str, subject: str | None = None,
               ref: str | None = None) -> TimelineEvent:
        s = self.s
        s.seq += 1
        limit = s.policy.max_text_length
        if len(text) > limit:
            text = text[: limit - 1] + "…"
        event = TimelineEvent(seq=s.seq, at=workflow.now(), kind=kind, actor=actor, text=text, subject=subject,
                              ref=ref)
        s.timeline.append(event)
        if kind in MILESTONES:
            self._archive_due = True
        if kind == EventKind.page and subject and subject not in s.paged:  # the channel invites them
            s.paged = [*s.paged[1 - MAX_PAGED:], subject]
        if len(s.timeline) > s.policy.max_timeline_events:
            victim = next((i for i, e in enumerate(s.timeline[1:], 1) if e.kind in DROPPABLE), 1)
            del s.timeline[victim]
            s.timeline_dropped += 1
        self._wake = True
        return event

    def _result(self, text: str, warnings: list[str] | None = None, ref: str | None = None) -> CommandResult:
        return CommandResult(incident_id=self.s.id, phase=self.s.phase, severity=self.s.severity,
                             text=text, warnings=warnings or [], ref=ref)

    def _set_phase(self, target: Phase, by: str, note: str) -> None:
        s = self.s
        now = workflow.now()
        old, s.phase = s.phase, target
        suffix = f": {note}" if note else ""
        self._event(EventKind.phase, by, f"Phase {old.value} → {target.value}{suffix}")
        if target == Phase.monitoring:
            s.monitoring_since, s.resolve_suggested = now, False
        elif old == Phase.monitoring:
            s.monitoring_since = None
        if target == Phase.resolved:
            s.resolved_at, s.resolution_summary = now, note
            if policy.postmortem_required(s):
                s.postmortem_due = policy.add_business_days(now, s.policy.postmortem_business_days)
            elif s.policy.auto_close_after is not None:
                s.auto_close_at = now + s.policy.auto_close_after
        if old == Phase.resolved and target == Phase.investigating:  # reopened
            s.resolved_at, s.resolution_summary, s.reopened_at = None, "", now
            s.postmortem_due, s.postmortem_reminders, s.auto_close_at = None, 0, None
            s.next_update_due = now + s.policy.first_update_after
        elif target in policy.ACTIVE:
            s.next_update_due = s.next_update_due or policy.next_update_due(s)
        else:
            s.next_update_due = None
        if target in policy.TERMINAL:
            s.ended_at = now
        if target in (Phase.resolved, Phase.stood_down):
            self._stop_paging(by, "resolve")
        if s.group_id:
            self._outbox.append(IncidentStatusSignal(incident_id=s.id, phase=target, resolved_at=s.resolved_at))
        self._public_phase(old, target)
        if target == Phase.resolved and policy.postmortem_required(s) or target == Phase.postmortem:
            self._postmortem_queue.append(target.value)  # drafted (or refreshed) by the run loop
        self._wake = True

    def _reopened_at(self) -> datetime | None:
        """When the incident last went from resolved back to investigating (from the timeline for
        incidents reopened before `reopened_at` was kept)."""
        if self.s.reopened_at is not None:
            return self.s.reopened_at
        reopens = [e.at for e in self.s.timeline if e.kind == EventKind.phase
                   and e.text.startswith(f"Phase {Phase.resolved.value} → {Phase.investigating.value}")]
        return reopens[-1] if reopens else None

    def _assign(self, role: Role, person: str, by: str) -> list[str]:
        s = self.s
        previous = s.roles.get(role)
        s.roles[role] = person
        was = f" (was {previous})" if previous else ""
        self._event(EventKind.role, by, f"{person} is {role.label}{was}")
        if role == Role.ic:  # runbooks waiting for the IC's approval must know who that is now
            for run in s.runbooks:
                if run.status in (RunStatus.running, RunStatus.awaiting_approval):
                    self._runbook_signals.append((run.run_id, CommanderChanged(person=person)))
        warnings = []
        if s.roles.get(Role.ic) and s.roles.get(Role.ic) == s.roles.get(Role.lead):
            warnings.append(f"{person} is both incident commander and tech lead: "
                            "the IC should not also be the lead investigator")
            self._event(EventKind.warning, SYSTEM, warnings[0])
        self._wake = True
        return warnings

    def _channel_link(self) -> ChannelLink | None:
        """The incident channel, for pages (None until it exists)."""
        chat = self.s.chat
        if chat is None or chat.broken:
            return None
        return ChannelLink(id=chat.channel_id, name=chat.channel_name, url=chat.channel_url)

    def _stop_paging(self, by: str, vendor_action: PageAction) -> None:
        if self.s.escalation_active and self.s.escalation_id:
            self._escalation_signals.append(StopPaging(by=by))
        inline = self.s.escalation  # the escalation inside the incident (code level 3) stops at once
        if inline is not None and not inline.finished and inline.stopped_by is None:
            inline.stopped_by = by
        if self.s.pages:
            self._vendor_sync.append(vendor_action)

    # ---------------------------------------------------------------- alerts
    def _apply_alert(self, alert: AlertSignal) -> None:
        """Aggregate per fingerprint (repeats only count), bounded; alerts move the phase."""
        s = self.s
        now = workflow.now()
        self._wake = True  # even a dropped alert grows history: the run loop must get to check for CAN
        s.alerts_received += 1
        record = s.alerts.get(alert.fingerprint)
        name = alert.title or alert.fingerprint
        changed = False
        if record is None:
            if len(s.alerts) >= s.policy.max_alerts:
                s.alerts_dropped += 1
                return
            s.alerts[alert.fingerprint] = AlertRecord(
                fingerprint=alert.fingerprint, source=alert.source, title=name, status=alert.status,
                first_seen=now, last_seen=now, starts_at=alert.starts_at, rule=alert.labels.get("alertname"))
            if alert.status == AlertStatus.firing and len(self._match_queue) < 20:
                self._match_queue.append({**alert.labels, "alertname": alert.labels.get("alertname", name)})
            changed = True
        else:
            record.count += 1
            record.last_seen = now
            changed = record.status != alert.status
            record.status = alert.status
        if changed:
            self._event(EventKind.alert, alert.source, f"Alert {alert.status.value}: {name}")
        if alert.status == AlertStatus.firing and s.phase == Phase.monitoring:
            if s.monitoring_since != now:
                self._event(EventKind.warning, SYSTEM,
                            f"Alert re-fired during monitoring ({name}): the monitoring window restarts")
            s.monitoring_since = now
            s.resolve_suggested = False
        elif changed or s.phase == Phase.resolved:
            self._alerts_drive_phase(alert, name, now)

    def _alerts_drive_phase(self, alert: AlertSignal, name: str, now: datetime) -> None:
        """Flapping reopens a just-resolved incident; every alert resolved starts the monitoring window."""
        s = self.s
        if (alert.status == AlertStatus.firing and s.phase == Phase.resolved and s.resolved_at
                and now - s.resolved_at <= s.policy.reopen_window):
            self._set_phase(Phase.investigating, alert.source,
                            f"{name} fired again within {minutes(s.policy.reopen_window)} of resolution "
                            "(flapping): reopened")
        elif (alert.status == AlertStatus.resolved and s.phase in BEFORE_MONITORING
              and all(a.status == AlertStatus.resolved for a in s.alerts.values())):
            self._set_phase(Phase.monitoring, alert.source,
                            "every alert has resolved: the monitoring window starts")

    # ---------------------------------------------------------------- visibility
    def _needless(self, key: SearchAttributeKey[Any], value: object) -> bool:
        """Code level 2 skips unsetting an attribute the incident never had (no commander yet): an upsert every
        new incident paid. (Its declaration time is the door's since level 2, `declared_time`: no upsert either.)"""
        return self.s.code_level >= 2 and value is None and key.name not in self._synced

    def _sync_search_attributes(self) -> None:
        """Upsert only the search attributes that changed (each upsert is a history event)."""
        s = self.s
        wanted: list[tuple[SearchAttributeKey[Any], object]] = [
            (sa.SEVERITY, s.severity.value), (sa.PHASE, s.phase.value), (sa.SERVICE, s.service),
            (sa.COMMANDER, s.roles.get(Role.ic)), (sa.ACKNOWLEDGED, s.acknowledged_by is not None),
            (sa.DECLARED_AT, s.declared_at),
        ]
        if s.chat is not None:  # only once a channel exists
            wanted.append((sa.CHANNEL, s.chat.channel_id))
        updates: list[SearchAttributeUpdate[Any]] = []
        for key, value in wanted:
            if self._synced.get(key.name, _UNSET) == value or self._needless(key, value):
                continue
            updates.append(key.value_unset() if value is None else key.value_set(value))
            self._synced[key.name] = value
        if updates:
            workflow.upsert_search_attributes(updates)


def declared_time(start: IncidentStart) -> datetime:
    """When the incident was declared: code level 2 takes the door's clock (`IncidentDeclaredAt`, set at start)
    when it is within DECLARED_AT_SLACK of the first workflow task, so the state, its timers and the search
    attribute agree to the microsecond; else (and before level 2) the workflow's own clock."""
    now = workflow.now()
    if start.code_level >= 2:
        door = workflow.info().typed_search_attributes.get(sa.DECLARED_AT)
        if door is not None and abs(door - now) <= DECLARED_AT_SLACK:
            return door
    return now


def current_search_attributes() -> dict[str, object]:
    """The search attributes the workflow started with (the client sets them at start)."""
    attrs = workflow.info().typed_search_attributes
    found: dict[str, object] = {}
    for key in sa.ALL:
        value = attrs.get(key)
        if value is not None:
            found[key.name] = value
    return found


def approvers_of(progress: RunbookProgress) -> list[str]:
    """Who may decide the approval the run asks for: the people the run resolved (its IC, named people),
    from runs that report them (`RunbookProgress.approvers`); older runs report nobody."""
    return [str(a) for a in progress.approvers][:10]


def why(exc: ActivityError) -> str:
    """The cause of an activity failure, as one line for the timeline."""
    cause = exc.cause
    return cause.message if isinstance(cause, ApplicationError) else str(cause or exc)


def utc(at: datetime) -> datetime:
    """A time from outside (a webhook's timestamp) comparable with `workflow.now()`: naive means UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def minutes(delta: timedelta) -> str:
    total = int(delta.total_seconds())
    if total < 60:
        return f"{total} s"
    mins = total // 60
    if mins < 120:
        return f"{mins} min"
    hours, rest = divmod(mins, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"
