"""IncidentWorkflow: the incident itself. Phases, roles, severity, timeline and the timers of the
human process (status-update cadence, monitoring window, postmortem deadline).

Commands that need an answer are updates with validators (a rejected command never reaches
history); alerts and notes are signals; state is read with a query. Side effects go to activities.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.notify import IncidentActivities
    from activities.paging import EscalationActivities
    from activities.runbook import RunbookActivities
    from domain import policy
    from domain.models import (
        AckInput,
        AlertRecord,
        AlertSignal,
        AlertStatus,
        CommandResult,
        EscalateInput,
        EventKind,
        EventRecord,
        IncidentStart,
        IncidentState,
        IncidentStatusSignal,
        NoteInput,
        NotifyInput,
        PageInput,
        Phase,
        PhaseInput,
        ReopenInput,
        ResolveInput,
        Role,
        RoleInput,
        SeverityInput,
        StandDownInput,
        StatusUpdateInput,
        TimelineEvent,
    )
    from domain.models.chat import ChatSummary
    from domain.models.paging import EscalationStart, PageRequest
    from domain.models.runbook import (
        MatchInput,
        RunbookProgress,
        RunbookRequest,
        RunbookRun,
        RunbookStart,
        RunStatus,
    )
    from workflows import options
    from workflows import search_attributes as sa
    from workflows.chat_pump import SYSTEM, ChatPump, why
    from workflows.escalation import EscalationWorkflow
    from workflows.runbook import RunbookWorkflow

PATCH_ALERT_PHASES = "alerts-drive-phases"  # alert resolution/flapping move the phase (issue 3)
PATCH_ESCALATION = "escalation"  # incidents page through an EscalationWorkflow child (issue 4)
PATCH_LEAN_HISTORY = "lean-history"  # one timer per deadline, no redundant search-attribute upserts
PATCH_CHAT = "chat"  # the incident channel in Slack, kept current by a chat pump beside the run loop (issue 5)
PATCH_RUNBOOKS = "runbooks"  # alerts that match a runbook start it (diagnostics) (issue 6)
# A command handled while the loop awaited an activity (alert group told, pager synced, runbook matched)
# set `_wake`, and the loop then reset it and slept: the group was not told about a resolve until the
# next timer. Guarded, because the fix issues commands where older histories slept.
PATCH_KEEP_WAKES = "keep-wakes"
_BEFORE_MONITORING = (Phase.triage, Phase.investigating, Phase.identified, Phase.mitigating)
# Kinds that may be dropped first when the timeline reaches its bound; decisions are kept.
DROPPABLE = (EventKind.alert, EventKind.note, EventKind.reminder)


@workflow.defn(name="IncidentWorkflow")
class IncidentWorkflow(ChatPump):
    @workflow.init
    def __init__(self, start: IncidentStart) -> None:
        self._wake = False
        self._synced: dict[str, object] = {}
        self._outbox: list[IncidentStatusSignal] = []  # phase changes to tell the alert group
        self._escalation_signals: list[tuple[str, object]] = []  # (signal, arg) for the escalation child
        self._vendor_sync: list[str] = []  # acknowledge/resolve to mirror on PagerDuty
        self._children: set[str] = set()  # escalations started by this run and still running
        self._timer: asyncio.Future[None] | None = None
        self._armed: datetime | None = None
        self._chat_task: asyncio.Future[None] | None = None
        self._chat_stop = False
        self._chat_sent: ChatSummary | None = None  # the summary as last shown in the channel
        self._runbook_signals: list[tuple[str, str, object]] = []  # (run id, signal, arg) for runbook children
        self._match_queue: list[dict[str, str]] = []  # labels of new firing alerts: runbooks to auto-run?
        self._declared_seq: int | None = None  # timeline events the channel's context message covers
        if start.carried is not None:
            self.s = start.carried
            self.s.runs += 1
            return
        if start.declare is None:
            raise ValueError("IncidentStart needs `declare` or `carried`")
        d = start.declare
        now = start.declared_at or workflow.now()
        self.s = IncidentState(
            id=start.incident_id or workflow.info().workflow_id, title=d.title, service=d.service,
            description=d.description, severity=d.severity, declared_at=now, declared_by=d.declared_by,
            policy=start.policy,
        )
        where = f" on {d.service}" if d.service else ""
        self._event(EventKind.declared, d.declared_by, f"Declared {d.severity.value}{where}: {d.title}")
        if d.commander:
            self._assign(Role.ic, d.commander, d.declared_by)
        self.s.next_update_due = policy.next_update_due(self.s)
        self.s.group_id = start.group_id
        self.s.url = start.url
        for alert in start.initial_alerts:
            self._apply_alert(alert)
        self._declared_seq = self.s.seq

    # ---------------------------------------------------------------- run: timers of the process
    @workflow.run
    async def run(self, start: IncidentStart) -> IncidentState:
        if (start.carried is None and start.declare is not None and start.declare.page
                and self.s.severity in self.s.policy.page_severities and self.s.phase in policy.ACTIVE
                and workflow.patched(PATCH_ESCALATION)):
            await self._start_escalation(1)
        lean = workflow.patched(PATCH_LEAN_HISTORY)
        if lean:  # start-time search attributes are already set: upsert only what differs
            self._synced = _current_search_attributes()
        if workflow.patched(PATCH_CHAT):
            self._chat_task = asyncio.ensure_future(self._chat_pump())
        while self.s.phase not in policy.TERMINAL:
            self._sync_search_attributes()
            self._refresh_details()
            info = workflow.info()
            if (info.is_continue_as_new_suggested()
                    or info.get_current_history_length() >= self.s.policy.continue_as_new_after_events):
                await workflow.wait_condition(workflow.all_handlers_finished)
                await self._chat_drain()
                workflow.continue_as_new(IncidentStart(carried=self.s))
            keep_wakes = workflow.patched(PATCH_KEEP_WAKES)
            if keep_wakes:
                self._wake = False  # a command arriving while we flush below must not be slept through
            await self._fire_due(workflow.now())
            await self._flush_outbox()
            await self._flush_escalation()
            await self._flush_runbooks()
            if self.s.phase in policy.TERMINAL:  # auto-closed just now
                break
            if keep_wakes and self._wake:  # state changed while an activity ran: go round again
                continue
            deadline, what = self._next_deadline()
            self._wake = False
            if lean:
                await self._wait_until(deadline, what)
                continue
            timeout = None if deadline is None else max(deadline - workflow.now(), timedelta(0))
            if timeout == timedelta(0):
                continue
            try:
                await workflow.wait_condition(lambda: self._wake, timeout=timeout, timeout_summary=what)
            except TimeoutError:
                pass
        self._sync_search_attributes()
        self._refresh_details()
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._flush_outbox()
        await self._flush_escalation()
        if self.s.escalation_active or self._children:  # let a stopped escalation finish before we close
            try:
                await workflow.wait_condition(lambda: not self.s.escalation_active and not self._children,
                                              timeout=timedelta(minutes=1), timeout_summary="escalation stops")
            except TimeoutError:
                pass
        await self._chat_drain()
        return self.s

    async def _wait_until(self, deadline: datetime | None, what: str | None) -> None:
        """Wait for a command or the deadline. The timer is kept while the deadline stays the same, so
        commands that don't move it (ack, roles, notes) add no timer events to history."""
        if deadline != self._armed:
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._armed = None, deadline
            if deadline is not None:
                delay = deadline - workflow.now()
                if delay <= timedelta(0):
                    self._armed = None
                    return
                self._timer = asyncio.ensure_future(workflow.sleep(delay, summary=what))
        timer = self._timer
        await workflow.wait_condition(lambda: self._wake or (timer is not None and timer.done()))
        if timer is not None and timer.done():
            self._timer, self._armed = None, None

    def _next_deadline(self) -> tuple[datetime | None, str | None]:
        s = self.s
        candidates: list[tuple[datetime, str]] = []
        if s.next_update_due and s.phase in policy.ACTIVE:
            candidates.append((s.next_update_due, "status update due"))
        if s.phase == Phase.monitoring and s.monitoring_since and not s.resolve_suggested:
            candidates.append((s.monitoring_since + s.policy.monitoring_window, "monitoring window ends"))
        reminder = policy.next_postmortem_reminder(s)
        if reminder:
            candidates.append((reminder, "postmortem reminder"))
        if s.auto_close_at and s.phase == Phase.resolved:
            candidates.append((s.auto_close_at, "auto-close"))
        if not candidates:
            return None, None
        return min(candidates, key=lambda c: c[0])

    async def _fire_due(self, now: datetime) -> None:
        s = self.s
        if s.phase in policy.ACTIVE and s.next_update_due and now >= s.next_update_due:
            interval = policy.update_interval(s.policy, s.severity) or s.policy.first_update_after
            due = s.next_update_due
            # After an outage, remind once now rather than once per missed interval.
            s.next_update_due = due + interval if due + interval > now else now + interval
            s.reminders_sent += 1
            who = policy.update_recipient(s)
            overdue = f" (due {due:%H:%M} UTC)" if now - due >= timedelta(minutes=1) else ""
            await self._notify("status_update_due", who,
                               f"A status update is due{overdue}: {s.severity.value} updates every "
                               f"{_minutes(interval)}. Post one with `incidentflow update {s.id} \"…\"`.")
        if (s.phase == Phase.monitoring and s.monitoring_since and not s.resolve_suggested
                and now >= s.monitoring_since + s.policy.monitoring_window):
            s.resolve_suggested = True
            await self._notify("resolve_suggested", s.roles.get(Role.ic),
                               f"No alert re-fired during {_minutes(s.policy.monitoring_window)} of monitoring: "
                               f"consider resolving (`incidentflow resolve {s.id}`).", kind=EventKind.suggestion)
        reminder = policy.next_postmortem_reminder(s)
        if reminder and s.postmortem_due and now >= reminder:
            s.postmortem_reminders += 1
            owner = s.roles.get(Role.ic)
            if now < s.postmortem_due:
                text = f"The postmortem is due {s.postmortem_due:%Y-%m-%d %H:%M} UTC."
            else:
                text = f"The postmortem is overdue (was due {s.postmortem_due:%Y-%m-%d %H:%M} UTC)."
            await self._notify("postmortem_reminder", owner, text)
        if s.phase == Phase.resolved and s.auto_close_at and now >= s.auto_close_at:
            self._set_phase(Phase.closed, SYSTEM, "closed automatically: resolved with no postmortem required")

    async def _notify(self, key: str, recipient: str | None, text: str,
                      kind: EventKind = EventKind.reminder) -> None:
        target = recipient or "unassigned (no comms lead or IC)"
        event = self._event(kind, SYSTEM, f"{text} → {target}", subject=recipient)
        message = NotifyInput(incident_id=self.s.id, dedup_key=f"{self.s.id}:{key}:{event.seq}",
                              kind=key, recipient=recipient, text=text)
        await workflow.execute_activity_method(
            IncidentActivities.send_notification, message,
            summary=f"Notify {target}: {key.replace('_', ' ')}", **options.NOTIFY)

    # ---------------------------------------------------------------- signals and queries
    @workflow.signal
    def alert(self, alert: AlertSignal) -> None:
        self._apply_alert(alert)

    @workflow.signal
    def alerts(self, batch: list[AlertSignal]) -> None:
        """One webhook notification's alerts, delivered together by the alert group."""
        for alert in batch:
            self._apply_alert(alert)

    def _apply_alert(self, alert: AlertSignal) -> None:
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
                first_seen=now, last_seen=now)
            if alert.status == AlertStatus.firing and len(self._match_queue) < 20:
                self._match_queue.append({**alert.labels, "alertname": alert.labels.get("alertname", name)})
            self._event(EventKind.alert, alert.source, f"Alert {alert.status.value}: {name}")
            changed = True
        else:
            record.count += 1
            record.last_seen = now
            if record.status != alert.status:
                record.status = alert.status
                self._event(EventKind.alert, alert.source, f"Alert {alert.status.value}: {name}")
                changed = True
        if alert.status == AlertStatus.firing and s.phase == Phase.monitoring:
            if s.monitoring_since != now:
                self._event(EventKind.warning, SYSTEM,
                            f"Alert re-fired during monitoring ({name}): the monitoring window restarts")
            s.monitoring_since = now
            s.resolve_suggested = False
        elif (changed or s.phase == Phase.resolved) and workflow.patched(PATCH_ALERT_PHASES):
            self._alerts_drive_phase(alert, name, now)
        self._wake = True

    def _alerts_drive_phase(self, alert: AlertSignal, name: str, now: datetime) -> None:
        """Flapping reopens a just-resolved incident; every alert resolved starts the monitoring window."""
        s = self.s
        if (alert.status == AlertStatus.firing and s.phase == Phase.resolved and s.resolved_at
                and now - s.resolved_at <= s.policy.reopen_window):
            self._set_phase(Phase.investigating, alert.source,
                            f"{name} fired again within {_minutes(s.policy.reopen_window)} of resolution "
                            "(flapping): reopened")
        elif (alert.status == AlertStatus.resolved and s.phase in _BEFORE_MONITORING
              and all(a.status == AlertStatus.resolved for a in s.alerts.values())):
            self._set_phase(Phase.monitoring, alert.source,
                            "every alert has resolved: the monitoring window starts")

    @workflow.signal
    def add_note(self, note: NoteInput) -> None:
        self._event(EventKind.note, note.by, note.text)

    @workflow.query
    def get_state(self) -> IncidentState:
        return self.s

    @workflow.signal
    def record_event(self, record: EventRecord) -> None:
        """Timeline entries from children (escalation pages and warnings)."""
        if record.kind == EventKind.page:
            self.s.pages += 1
        self._event(record.kind, record.actor, record.text, subject=record.subject)

    @workflow.signal
    def escalation_ended(self, escalation_id: str) -> None:
        if escalation_id == self.s.escalation_id:
            self.s.escalation_active = False

    @workflow.update
    async def escalate(self, cmd: EscalateInput) -> CommandResult:
        if self.s.escalation_active and self.s.escalation_id:
            self._event(EventKind.action, cmd.by, f"Escalated to L{cmd.level}")
            self._escalation_signals.append(("escalate_to", cmd.level))
        else:
            self._event(EventKind.action, cmd.by, f"Escalation restarted at L{cmd.level}")
            await self._start_escalation(cmd.level)
        return self._result(f"escalating at L{cmd.level}")

    @escalate.validator
    def _check_escalate(self, cmd: EscalateInput) -> None:
        policy.check_open(self.s, "escalate")

    @workflow.update
    async def page_responder(self, cmd: PageInput) -> CommandResult:
        s = self.s
        request = PageRequest(incident_id=s.id, dedup_key=f"{s.id}:manual:{s.seq + 1}:{cmd.person}",
                              incident_key=f"incidentflow-{s.id}", target=cmd.person, level=0,
                              reason=f"paged by {cmd.by}" + (f": {cmd.note}" if cmd.note else ""),
                              summary=self._page_summary(), severity=s.severity, service=s.service, incident_url=s.url)
        self._event(EventKind.action, cmd.by, f"Paging {cmd.person}" + (f": {cmd.note}" if cmd.note else ""))
        result = await workflow.execute_activity_method(
            EscalationActivities.page, request, summary=f"Page {cmd.person} (manual, by {cmd.by})", **options.PAGE)
        if result.channel == "none":
            self._event(EventKind.warning, "escalation", f"Could not page {cmd.person}: {result.detail}",
                        subject=cmd.person)
            return self._result(f"could not page {cmd.person}", [result.detail])
        s.pages += 1
        self._event(EventKind.page, "escalation", f"Paged {cmd.person} (manual, by {cmd.by}) via {result.channel}",
                    subject=cmd.person)
        return self._result(f"paged {cmd.person} via {result.channel}", [] if result.delivered else [result.detail])

    @page_responder.validator
    def _check_page(self, cmd: PageInput) -> None:
        policy.check_not_ended(self.s, "page someone")

    # ---------------------------------------------------------------- runbooks
    @workflow.update
    async def start_runbook(self, request: RunbookRequest) -> CommandResult:
        run_id = await self._start_runbook(request)
        return self._result(f"runbook {request.runbook} started as {run_id}", ref=run_id)

    @start_runbook.validator
    def _check_start_runbook(self, request: RunbookRequest) -> None:
        policy.check_not_ended(self.s, "run a runbook")
        if not request.steps:
            raise policy.CommandRejected(f"runbook {request.runbook} has no steps")

    async def _start_runbook(self, request: RunbookRequest) -> str:
        s = self.s
        s.runbook_runs += 1
        run_id = f"{s.id}-runbook-{s.runbook_runs}"
        s.runbooks.append(RunbookRun(run_id=run_id, runbook=request.runbook, title=request.title, by=request.by,
                                     started_at=workflow.now(), auto=request.auto))
        changes = any(step.destructive for step in request.steps) and not request.auto
        if changes and s.phase in (Phase.triage, Phase.investigating, Phase.identified):
            self._set_phase(Phase.mitigating, request.by, f"runbook {request.runbook} is running")
        causes = "; ".join(request.likely_causes[:5])
        self._event(EventKind.action, request.by, f"Runbook {request.runbook} ({request.title}) requested"
                    + (f". Likely causes: {causes}" if causes else "")
                    + (f". Escalation: {request.escalation}" if request.escalation else ""), ref=run_id)
        await workflow.start_child_workflow(
            RunbookWorkflow.run, RunbookStart(run_id=run_id, incident_id=s.id, request=request,
                                              commander=s.roles.get(Role.ic)),
            id=run_id, parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            static_summary=f"Runbook {request.runbook} on {s.id}"[:200])
        return run_id

    @workflow.signal
    def runbook_progress(self, progress: RunbookProgress) -> None:
        s = self.s
        run = next((r for r in s.runbooks if r.run_id == progress.run_id), None)
        if run is not None:
            run.status, run.awaiting = progress.status, progress.awaiting
        self._event(EventKind(progress.kind), "runbook", progress.text, ref=progress.run_id)
        if progress.verified and s.phase in _BEFORE_MONITORING:
            self._event(EventKind.suggestion, SYSTEM, f"The runbook's verification passed: consider moving to "
                        f"monitoring (`incidentflow phase {s.id} monitoring`)")

    async def _flush_runbooks(self) -> None:
        while self._runbook_signals:
            run_id, name, arg = self._runbook_signals.pop(0)
            try:
                await workflow.get_external_workflow_handle(run_id).signal(name, arg)
            except Exception:  # the run has finished
                pass
        if self._match_queue and workflow.patched(PATCH_RUNBOOKS):
            s = self.s
            while self._match_queue:
                labels = self._match_queue.pop(0)
                already = [r.runbook for r in s.runbooks]
                try:
                    matches = await workflow.execute_activity_method(
                        RunbookActivities.match_runbooks, MatchInput(incident_id=s.id, service=s.service,
                                                                     severity=s.severity.value, labels=labels,
                                                                     already=already),
                        summary=f"Runbooks for {labels.get('alertname', 'the alert')}", **options.MATCH)
                except ActivityError as exc:  # the incident's timers matter more than an automatic runbook
                    self._event(EventKind.warning, SYSTEM, f"Runbooks for this alert not checked: {why(exc)}")
                    continue
                for request in matches:
                    if request.runbook not in [r.runbook for r in s.runbooks] and s.phase in policy.ACTIVE:
                        await self._start_runbook(request)

    # ---------------------------------------------------------------- updates
    @workflow.update
    def acknowledge(self, cmd: AckInput) -> CommandResult:
        s = self.s
        s.acknowledged_by, s.acknowledged_at = cmd.by, workflow.now()
        took = _minutes(s.acknowledged_at - s.declared_at)
        self._event(EventKind.acknowledged, cmd.by, f"Acknowledged ({took} after declaration)")
        self._stop_paging(cmd.by, "acknowledge")
        return self._result(f"acknowledged by {cmd.by}")

    @acknowledge.validator
    def _check_ack(self, cmd: AckInput) -> None:
        policy.check_open(self.s, "acknowledge")
        if self.s.acknowledged_by:
            raise policy.CommandRejected(
                f"already acknowledged by {self.s.acknowledged_by} at {self.s.acknowledged_at:%H:%M} UTC")

    @workflow.update
    def assign_role(self, cmd: RoleInput) -> CommandResult:
        warnings = self._assign(cmd.role, cmd.person, cmd.by)
        return self._result(f"{cmd.person} is now {cmd.role.label}", warnings)

    @assign_role.validator
    def _check_role(self, cmd: RoleInput) -> None:
        policy.check_not_ended(self.s, "assign a role")
        if self.s.roles.get(cmd.role) == cmd.person:
            raise policy.CommandRejected(f"{cmd.person} is already the {cmd.role.label}")

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
            raise policy.CommandRejected(f"the severity is already {cmd.severity.value}")

    @workflow.update
    def set_phase(self, cmd: PhaseInput) -> CommandResult:
        self._set_phase(cmd.phase, cmd.by, cmd.note)
        return self._result(f"phase is now {cmd.phase.value}")

    @set_phase.validator
    def _check_phase(self, cmd: PhaseInput) -> None:
        policy.check_transition(self.s.phase, cmd.phase)

    @workflow.update
    def post_status_update(self, cmd: StatusUpdateInput) -> CommandResult:
        s = self.s
        s.last_update_at = workflow.now()
        self._event(EventKind.status_update, cmd.by, cmd.text)
        s.next_update_due = policy.next_update_due(s)
        due = f"; next due {s.next_update_due:%H:%M} UTC" if s.next_update_due else ""
        return self._result(f"status update posted{due}")

    @post_status_update.validator
    def _check_update(self, cmd: StatusUpdateInput) -> None:
        policy.check_not_ended(self.s, "post a status update")
        if not cmd.text.strip():
            raise policy.CommandRejected("a status update needs text")

    @workflow.update
    def resolve(self, cmd: ResolveInput) -> CommandResult:
        self._set_phase(Phase.resolved, cmd.by, cmd.summary)
        pm = f"; postmortem due {self.s.postmortem_due:%Y-%m-%d} UTC" if self.s.postmortem_due else ""
        return self._result(f"resolved{pm}")

    @resolve.validator
    def _check_resolve(self, cmd: ResolveInput) -> None:
        if self.s.phase not in policy.ACTIVE:
            raise policy.CommandRejected(f"cannot resolve: the incident is already {self.s.phase.value}")

    @workflow.update
    def reopen(self, cmd: ReopenInput) -> CommandResult:
        self._set_phase(Phase.investigating, cmd.by, cmd.reason or "reopened")
        return self._result("reopened; phase is now investigating")

    @reopen.validator
    def _check_reopen(self, cmd: ReopenInput) -> None:
        if self.s.phase != Phase.resolved:
            raise policy.CommandRejected(
                f"cannot reopen: the incident is {self.s.phase.value}; only a resolved incident can be reopened")

    @workflow.update
    def stand_down(self, cmd: StandDownInput) -> CommandResult:
        self.s.stand_down_reason = cmd.reason
        self._set_phase(Phase.stood_down, cmd.by, cmd.reason)
        return self._result("stood down")

    @stand_down.validator
    def _check_stand_down(self, cmd: StandDownInput) -> None:
        if self.s.phase not in policy.ACTIVE:
            raise policy.CommandRejected(f"cannot stand down: the incident is {self.s.phase.value}")
        if not cmd.reason.strip():
            raise policy.CommandRejected("standing down needs a reason")

    def _page_summary(self) -> str:
        return f"[{self.s.severity.value}] {self.s.title}"[:1024]

    def _stop_paging(self, by: str, vendor_action: str) -> None:
        if self.s.escalation_active and self.s.escalation_id:
            self._escalation_signals.append(("stop", by))
        if self.s.pages:
            self._vendor_sync.append(vendor_action)

    async def _start_escalation(self, level: int) -> None:
        s = self.s
        s.escalations += 1
        child_id = f"{s.id}-escalation-{s.escalations}"
        handle = await workflow.start_child_workflow(
            EscalationWorkflow.run,
            EscalationStart(incident_id=s.id, summary=self._page_summary(), severity=s.severity, service=s.service,
                            incident_url=s.url, start_level=level),
            id=child_id, parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            static_summary=f"Escalation {s.escalations} for {s.id}")
        s.escalation_id, s.escalation_active = child_id, True
        self._children.add(child_id)

        async def forget_when_done() -> None:
            try:
                await handle
            except Exception:  # terminated or failed: it is not running either way
                pass
            self._children.discard(child_id)
        asyncio.ensure_future(forget_when_done())

    async def _flush_escalation(self) -> None:
        while self._escalation_signals:
            name, arg = self._escalation_signals.pop(0)
            if not (self.s.escalation_active and self.s.escalation_id):
                continue
            try:
                await workflow.get_external_workflow_handle(self.s.escalation_id).signal(name, arg)
            except Exception:  # it already finished
                self.s.escalation_active = False
        while self._vendor_sync:
            action = self._vendor_sync.pop(0)
            request = PageRequest(incident_id=self.s.id, dedup_key=f"{self.s.id}:{action}:{self.s.seq}",
                                  incident_key=f"incidentflow-{self.s.id}", target="*", action=action,  # type: ignore[arg-type]
                                  summary=self._page_summary(), severity=self.s.severity, service=self.s.service)
            await workflow.execute_activity_method(EscalationActivities.sync_pagers, request,
                                                   summary=f"{action.capitalize()} on the pager", **options.PAGE)

    async def _flush_outbox(self) -> None:
        while self._outbox and self.s.group_id:
            status = self._outbox.pop(0)
            try:
                await workflow.get_external_workflow_handle(self.s.group_id).signal("incident_changed", status)
            except Exception as exc:  # the group has ended: nobody left to tell, the incident goes on
                workflow.logger.info("alert group %s not told about %s: %s", self.s.group_id, status.phase, exc)

    # ---------------------------------------------------------------- state changes
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
            s.resolved_at, s.resolution_summary = None, ""
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
        self._wake = True

    def _assign(self, role: Role, person: str, by: str) -> list[str]:
        s = self.s
        previous = s.roles.get(role)
        s.roles[role] = person
        was = f" (was {previous})" if previous else ""
        self._event(EventKind.role, by, f"{person} is {role.label}{was}")
        if role == Role.ic:  # runbooks waiting for the IC's approval must know who that is now
            for run in s.runbooks:
                if run.status in (RunStatus.running, RunStatus.awaiting_approval):
                    self._runbook_signals.append((run.run_id, "commander_changed", person))
        warnings = []
        if s.roles.get(Role.ic) and s.roles.get(Role.ic) == s.roles.get(Role.lead):
            warnings.append(f"{person} is both incident commander and tech lead: "
                            "the IC should not also be the lead investigator")
            self._event(EventKind.warning, SYSTEM, warnings[0])
        self._wake = True
        return warnings

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
        if len(s.timeline) > s.policy.max_timeline_events:
            victim = next((i for i, e in enumerate(s.timeline[1:], 1) if e.kind in DROPPABLE), 1)
            del s.timeline[victim]
            s.timeline_dropped += 1
        self._wake = True
        return event

    def _result(self, text: str, warnings: list[str] | None = None, ref: str | None = None) -> CommandResult:
        return CommandResult(incident_id=self.s.id, phase=self.s.phase, severity=self.s.severity,
                             text=text, warnings=warnings or [], ref=ref)

    def _sync_search_attributes(self) -> None:
        s = self.s
        wanted: dict[str, object] = {
            sa.SEVERITY.name: s.severity.value, sa.PHASE.name: s.phase.value,
            sa.SERVICE.name: s.service, sa.COMMANDER.name: s.roles.get(Role.ic),
            sa.ACKNOWLEDGED.name: s.acknowledged_by is not None, sa.DECLARED_AT.name: s.declared_at,
        }
        if s.chat is not None:  # only once a channel exists: older histories never upserted it
            wanted[sa.CHANNEL.name] = s.chat.channel_id
        keys = {k.name: k for k in sa.ALL}
        updates = []
        for name, value in wanted.items():
            if self._synced.get(name, _UNSET) == value:
                continue
            key = keys[name]
            updates.append(key.value_unset() if value is None else key.value_set(value))  # type: ignore[attr-defined]
            self._synced[name] = value
        if updates:
            workflow.upsert_search_attributes(updates)

    def _refresh_details(self) -> None:
        s = self.s
        roles = ", ".join(f"{r.label}: {p}" for r, p in s.roles.items()) or "no roles assigned"
        deadline, what = self._next_deadline()
        nxt = f"\n\nNext: {what} at {deadline:%Y-%m-%d %H:%M} UTC" if deadline else ""
        ack = f"acknowledged by {s.acknowledged_by}" if s.acknowledged_by else "not acknowledged"
        workflow.set_current_details(
            f"**{s.severity.value} · {s.phase.value}** — {s.title}\n\n{roles}; {ack}{nxt}")


_UNSET = object()


def _current_search_attributes() -> dict[str, object]:
    attrs = workflow.info().typed_search_attributes
    return {key.name: attrs.get(key) for key in sa.ALL if attrs.get(key) is not None}


def _minutes(delta: timedelta) -> str:
    total = int(delta.total_seconds())
    if total < 60:
        return f"{total} s"
    minutes = total // 60
    if minutes < 120:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"
