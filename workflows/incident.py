"""IncidentWorkflow: the incident itself. Phases, roles, severity, timeline and the timers of the
human process (status-update cadence, monitoring window, postmortem deadline).

Commands that need an answer are updates with validators (a rejected command never reaches
history); alerts and notes are signals; state is read with a query. Side effects go to activities.
How it works is spread over small mixins: `incident_core` (state and how it changes),
`incident_timers` (deadlines and reminders), `incident_children` (escalation, pagers, the
alert group), `incident_runbooks` (runbook runs) and `chat_pump` (the Slack channel).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import NoReturn

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain import policy
    from domain.models.alert import AlertSignal
    from domain.models.common import EventKind, Phase, Role
    from domain.models.incident import (
        AckInput,
        CommandResult,
        EscalateInput,
        IncidentStart,
        IncidentState,
        NoteInput,
        PageInput,
        PhaseInput,
        ReopenInput,
        ResolveInput,
        RoleInput,
        SeverityInput,
        StandDownInput,
        StatusUpdateInput,
    )
    from domain.models.messages import AlertsInput
    from domain.postmortem.models import PostmortemRequest
    from domain.stakeholders import internal_update, plain_update
    from workflows.chat_pump import ChatPump
    from workflows.incident_archive import IncidentArchive
    from workflows.incident_children import IncidentChildren
    from workflows.incident_core import LOOP, current_search_attributes, declared_time, minutes, utc
    from workflows.incident_postmortem import IncidentPostmortem
    from workflows.incident_public import IncidentPublic
    from workflows.incident_timers import IncidentTimers
    from workflows.wake_order import WakeOrder

# From the baseline on, running logic changes behind patches (README "Versioning running incidents").
# prompt-stop (0.1.1): a coroutine beside the run loop signals the escalation child as soon as a command
# asks for it; before, an ack waited for the loop, which could be blocked on an activity for a minute.
PATCH_PROMPT_STOP = "prompt-stop"
# channel-first (0.1.2): the incident channel is opened (waiting at most CHANNEL_WAIT) before the first page
# and before the run loop acts, so pages link the channel and it reads in order (opened, then diagnostics).
PATCH_CHANNEL_FIRST = "channel-first"
# public-updates (0.2): an incident on a service with status page components owes public updates (drafts,
# cadence, reminders; `workflows.incident_public`). Histories from before it never set `IncidentState.public`.
PATCH_PUBLIC_UPDATES = "public-updates"
# Level 4 (domain.models.incident.CODE_LEVEL): the coroutines wake in this rank (workflows/wake_order.py).
WAKE_ORDER_LEVEL = 4
CHANNEL_WAIT = timedelta(seconds=10)  # Slack slow or down: page without the link rather than later
NOTE_REQUESTS_KEPT = 500  # request ids of notes remembered to drop retries (carried across continue-as-new)


@workflow.defn(name="IncidentWorkflow")
class IncidentWorkflow(IncidentTimers, IncidentChildren, ChatPump, IncidentPublic, IncidentPostmortem,
                       IncidentArchive):
    @workflow.init
    def __init__(self, start: IncidentStart) -> None:
        self._init_runtime()
        self._escalation_task, self._escalation_paging = None, False
        if start.carried is not None:
            self.s = start.carried
            self.s.runs += 1
            self._order.on = self.s.code_level >= WAKE_ORDER_LEVEL
            return
        if start.declare is None:
            raise ValueError("IncidentStart needs `declare` or `carried`")
        d = start.declare
        self.s = IncidentState(
            id=start.incident_id or workflow.info().workflow_id, title=d.title, service=d.service,
            description=d.description, severity=d.severity, declared_at=start.declared_at or declared_time(start),
            declared_by=d.declared_by, policy=start.policy, group_id=start.group_id, url=start.url,
            code_level=start.code_level,
        )
        where = f" on {d.service}" if d.service else ""
        self._event(EventKind.declared, d.declared_by, f"Declared {d.severity.value}{where}: {d.title}")
        if d.commander:
            self._assign(Role.ic, d.commander, d.declared_by)
        self.s.next_update_due = policy.next_update_due(self.s)
        for alert in start.initial_alerts:
            self._apply_alert(alert)
        self._declared_seq = self.s.seq
        self._order.on = self.s.code_level >= WAKE_ORDER_LEVEL

    # ---------------------------------------------------------------- run: the process
    @workflow.run
    async def run(self, start: IncidentStart) -> IncidentState:
        """Open the channel, page, then act on every command and every deadline until the incident
        ends; then tell everyone, let the escalation stop and the channel catch up."""
        WakeOrder.enter(LOOP)
        if start.carried is None and self._patched(PATCH_PUBLIC_UPDATES):
            self._setup_public()
        channel_first = self._channel_first()
        if start.carried is not None and self._inline_running():  # carried over a continue-as-new: go on
            self._resume_inline()
        if not channel_first and self._pages_at_declaration(start):
            await self._start_escalation(1)
        self._synced = current_search_attributes()  # set at start: upsert only what differs
        self._chat_task = asyncio.ensure_future(self._chat_pump())
        self._start_archiving()
        if self._patched(PATCH_PROMPT_STOP):  # children are told at once, not when the loop gets round
            asyncio.ensure_future(self._escalation_messenger())
        if channel_first:
            await self._channel_opens()
            if self._pages_at_declaration(start):
                await self._start_escalation(1)
        while self.s.phase not in policy.TERMINAL:
            self._publish()
            if self._history_is_long():
                await self._continue_as_new()
            self._wake = False  # a command arriving while we act below must not be slept through
            await self._fire_due(workflow.now())
            await self._tell_others()
            await self._flush_postmortem()
            if self.s.phase in policy.TERMINAL:  # auto-closed just now
                break
            if not self._wake:  # nothing changed meanwhile: sleep until a command or the next deadline
                await self._wait_until(*self._next_deadline())
        self._publish()
        await self._order.until(workflow.all_handlers_finished)
        await self._flush_outbox()
        await self._flush_escalation()
        await self._flush_postmortem()
        await self._tell_runs_the_phase()  # a stood-down incident's waiting runs can no longer be approved
        await self._await_escalations()
        await self._chat_drain()
        self._messenger_stop = True
        await self._archive_drain()  # the whole record, as it ended
        return self.s

    def _channel_first(self) -> bool:
        return self._patched(PATCH_CHANNEL_FIRST)

    async def _channel_opens(self) -> None:
        """Wait (bounded) until the worker has opened the incident channel, or said chat is off (no wait at all
        when the door that declared it has no chat: `IncidentPolicy.chat`)."""
        if self.s.chat_checked or not self.s.policy.chat:
            return
        try:
            await self._order.until(lambda: self.s.chat_checked, timeout=CHANNEL_WAIT,
                                    timeout_summary="the incident channel opens")
        except TimeoutError:
            pass

    def _pages_at_declaration(self, start: IncidentStart) -> bool:
        """A fresh declaration of a paging severity pages, unless a command that arrived with it (handled
        before `run` starts) already acknowledged or ended the incident."""
        d, s = start.declare, self.s
        return (start.carried is None and d is not None and d.page
                and policy.pages_at_declaration(s.policy, s.severity)
                and s.phase in policy.ACTIVE and s.acknowledged_by is None)

    def _publish(self) -> None:
        self._sync_search_attributes()
        self._refresh_details()

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return (info.is_continue_as_new_suggested()
                or info.get_current_history_length() >= self.s.policy.continue_as_new_after_events)

    async def _continue_as_new(self) -> NoReturn:
        await self._order.until(workflow.all_handlers_finished)
        await self._order.until(lambda: not self._escalation_paging)  # its pages recorded, then carried
        await self._chat_drain()
        await self._archive_drain()
        workflow.continue_as_new(IncidentStart(carried=self.s))

    # ---------------------------------------------------------------- signals and queries
    @workflow.signal
    def alert(self, alert: AlertSignal) -> None:
        self._apply_alert(alert)

    @workflow.signal
    def alerts(self, batch: AlertsInput) -> None:
        """One webhook notification's alerts, delivered together by the alert group."""
        for alert in batch.alerts:
            self._apply_alert(alert)

    @workflow.signal
    def add_note(self, note: NoteInput) -> None:
        if note.request_id:  # a retried request (same Idempotency-Key) is noted once
            if note.request_id in self.s.note_requests:
                return
            self.s.note_requests = [*self.s.note_requests[1 - NOTE_REQUESTS_KEPT:], note.request_id]
        self._event(EventKind.note, note.by, note.text)

    @workflow.query
    def get_state(self) -> IncidentState:
        return self.s

    # ---------------------------------------------------------------- commands (updates)
    @workflow.update
    def acknowledge(self, cmd: AckInput) -> CommandResult:
        s = self.s
        s.acknowledged_by, s.acknowledged_at = cmd.by, workflow.now()
        took = minutes(s.acknowledged_at - s.declared_at)
        self._event(EventKind.acknowledged, cmd.by, f"Acknowledged ({took} after declaration)")
        self._stop_paging(cmd.by, "acknowledge")
        return self._result(f"acknowledged by {cmd.by}")

    @acknowledge.validator
    def _check_ack(self, cmd: AckInput) -> None:
        policy.check_open(self.s, "acknowledge")
        if self.s.acknowledged_by:
            raise policy.NotAllowed(
                f"already acknowledged by {self.s.acknowledged_by} at {self.s.acknowledged_at:%H:%M} UTC")

    @workflow.update
    def assign_role(self, cmd: RoleInput) -> CommandResult:
        warnings = self._assign(cmd.role, cmd.person, cmd.by)
        return self._result(f"{cmd.person} is now {cmd.role.label}", warnings)

    @assign_role.validator
    def _check_role(self, cmd: RoleInput) -> None:
        policy.check_not_ended(self.s, "assign a role")
        if self.s.roles.get(cmd.role) == cmd.person:
            raise policy.NotAllowed(f"{cmd.person} is already the {cmd.role.label}")

    @workflow.update
    def set_severity(self, cmd: SeverityInput) -> CommandResult:
        s = self.s
        old, s.severity = s.severity, cmd.severity
        why = f": {cmd.reason}" if cmd.reason else ""
        self._event(EventKind.severity, cmd.by, f"Severity {old.value} → {cmd.severity.value}{why}")
        s.next_update_due = policy.next_update_due(s)
        if s.resolved_at and s.postmortem_due is None and policy.postmortem_required(s):
            s.postmortem_due = policy.add_business_days(s.resolved_at, s.policy.postmortem_business_days)
            s.auto_close_at = None
        return self._result(f"severity is now {cmd.severity.value}")

    @set_severity.validator
    def _check_severity(self, cmd: SeverityInput) -> None:
        policy.check_not_ended(self.s, "change severity")
        if cmd.severity == self.s.severity:
            raise policy.NotAllowed(f"the severity is already {cmd.severity.value}")

    @workflow.update
    def set_phase(self, cmd: PhaseInput) -> CommandResult:
        if cmd.phase == Phase.identified and cmd.note:  # what was identified: the public drafts name it
            self.s.cause = cmd.note
        self._set_phase(cmd.phase, cmd.by, cmd.note)
        return self._result(f"phase is now {cmd.phase.value}")

    @set_phase.validator
    def _check_phase(self, cmd: PhaseInput) -> None:
        policy.check_transition(self.s.phase, cmd.phase)

    @workflow.update
    def post_status_update(self, cmd: StatusUpdateInput) -> CommandResult:
        s = self.s
        s.last_update_at = workflow.now()
        # The next update: when the update says (checked by the validator), else on the severity's cadence.
        s.next_update_due = cmd.next_update_at(workflow.now()) or policy.next_update_due(s)
        if cmd.theory:
            s.cause = cmd.theory
        if cmd.structured:  # the stakeholders' template (its "next update" is the one this sets)
            event = self._event(EventKind.status_update, cmd.by, internal_update(s, cmd, workflow.now()))
            self._tell_stakeholders(event.text, f"{s.severity.value} update: {s.title}", event.seq)
        else:
            self._event(EventKind.status_update, cmd.by, plain_update(s, cmd))
        due = f"; next due {s.next_update_due:%H:%M} UTC" if s.next_update_due else ""
        return self._result(f"status update posted{due}")

    @post_status_update.validator
    def _check_update(self, cmd: StatusUpdateInput) -> None:
        policy.check_not_ended(self.s, "post a status update")
        if not cmd.text.strip():
            raise policy.NotAllowed("a status update needs text")
        if cmd.next_update and self.s.code_level < 2:  # its timer is new: incidents declared before keep theirs
            raise policy.NotAllowed("next_update: this incident was declared by an earlier version; post the "
                                    "update without it (the next one follows the severity's cadence)")
        try:
            cmd.next_update_at(workflow.now())
        except ValueError as exc:
            raise policy.NotAllowed(str(exc)) from None

    @workflow.update
    def resolve(self, cmd: ResolveInput) -> CommandResult:
        self._root_cause = cmd.root_cause
        self.s.cause = cmd.root_cause or self.s.cause
        self._set_phase(Phase.resolved, cmd.by, cmd.summary)
        pm = f"; postmortem due {self.s.postmortem_due:%Y-%m-%d} UTC" if self.s.postmortem_due else ""
        return self._result(f"resolved{pm}")

    @resolve.validator
    def _check_resolve(self, cmd: ResolveInput) -> None:
        if self.s.phase not in policy.ACTIVE:
            raise policy.NotAllowed(f"cannot resolve: the incident is already {self.s.phase.value}")
        reopened = self._reopened_at()
        if cmd.event_at is not None and reopened is not None and utc(cmd.event_at) < reopened:
            raise policy.NotAllowed(f"cannot resolve: the request dates from {utc(cmd.event_at):%Y-%m-%d %H:%M:%S} "
                                    f"UTC, before the incident was reopened at {reopened:%H:%M:%S} UTC")

    @workflow.update
    def reopen(self, cmd: ReopenInput) -> CommandResult:
        self._set_phase(Phase.investigating, cmd.by, cmd.reason or "reopened")
        return self._result("reopened; phase is now investigating")

    @reopen.validator
    def _check_reopen(self, cmd: ReopenInput) -> None:
        if self.s.phase != Phase.resolved:
            raise policy.NotAllowed(
                f"cannot reopen: the incident is {self.s.phase.value}; only a resolved incident can be reopened")

    @workflow.update
    def stand_down(self, cmd: StandDownInput) -> CommandResult:
        self.s.stand_down_reason = cmd.reason
        self._set_phase(Phase.stood_down, cmd.by, cmd.reason)
        return self._result("stood down")

    @stand_down.validator
    def _check_stand_down(self, cmd: StandDownInput) -> None:
        if self.s.phase not in policy.ACTIVE:
            raise policy.NotAllowed(f"cannot stand down: the incident is {self.s.phase.value}")
        if not cmd.reason.strip():
            raise policy.NotAllowed("standing down needs a reason")

    @workflow.update
    async def start_postmortem(self, cmd: PostmortemRequest) -> CommandResult:
        return await self._request_postmortem(cmd)

    @start_postmortem.validator
    def _check_start_postmortem(self, cmd: PostmortemRequest) -> None:
        self._check_postmortem_request(cmd)

    @workflow.update
    async def escalate(self, cmd: EscalateInput) -> CommandResult:
        return await self._escalate(cmd)

    @escalate.validator
    def _check_escalate(self, cmd: EscalateInput) -> None:
        policy.check_open(self.s, "escalate")

    @workflow.update
    async def page_responder(self, cmd: PageInput) -> CommandResult:
        return await self._page(cmd)

    @page_responder.validator
    def _check_page(self, cmd: PageInput) -> None:
        policy.check_not_ended(self.s, "page someone")

