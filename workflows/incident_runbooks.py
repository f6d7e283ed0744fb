"""The incident's runbook runs (a mixin of IncidentWorkflow): starting them (by command, or automatically
for a firing alert's diagnostics), telling them of a new commander or phase, and what their reports change.

A run that would change something (a rollback, a scale …) is refused once the incident is resolved or
ended: rolling back there re-deploys what was fixed. Diagnostics still run on a resolved incident, and on a
closed or stood-down one the door starts them on their own (`incidentflow.client_runbooks`): an ended
incident's workflow takes no more commands. The incident moves to mitigating when a run applies its first
change, not when it asks for approval.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.runbook import RunbookActivities
    from domain import policy
    from domain.models.common import EventKind, Phase, Role
    from domain.models.incident import CommandResult, IncidentState
    from domain.models.runbook import (
        IncidentPhaseChanged,
        MatchInput,
        RunbookProgress,
        RunbookRequest,
        RunbookRun,
        RunbookStart,
        RunbookTriggers,
        RunStatus,
        TriggersInput,
    )
    from domain.routing import could_start_runbook
    from workflows import options
    from workflows.incident_core import BEFORE_MONITORING, SYSTEM, IncidentCore, why
    from workflows.runbook import PATCH_RUNBOOK_PHASE, RunbookWorkflow

# mitigate-on-change (0.1.2): starting a runbook with changes no longer moves the incident to mitigating;
# the run's first applied change does (RunbookProgress.changed). Before, a denial left it in mitigating.
PATCH_MITIGATE_ON_CHANGE = "mitigate-on-change"
# runbook-phase (0.1.2, workflows/runbook.py): live runs are told when the incident leaves (or comes back
# to) the worked phases, so an approval given after the incident resolved changes nothing.
BEFORE_MITIGATING = (Phase.triage, Phase.investigating, Phase.identified)
# Code level 3: the incident keeps which auto-run runbooks could apply to it (`IncidentState.runbook_triggers`) and
# checks a new alert against them itself; `match_runbooks` runs only on a hit. Asked again when older than this, so
# a runbook added to the worker applies within it.
TRIGGERS_FRESH = timedelta(minutes=5)
TRIGGERS_LEVEL = 3
LIVE = (RunStatus.running, RunStatus.awaiting_approval)


def changes_refused(s: IncidentState, request: RunbookRequest) -> str | None:
    """Why a run that changes things may not start now (the incident is not being worked), or None. The door
    asks it too, for an incident that has ended (closed, stood down: it cannot be reopened)."""
    changes = request.changes()
    if not changes or s.phase in policy.ACTIVE:
        return None
    if s.phase in policy.TERMINAL:
        return (f"cannot run {request.runbook} ({changes[0].title}): the incident is "
                f"{s.phase.value.replace('_', ' ')}: a change is refused; read-only runbooks still run")
    return (f"cannot run {request.runbook} on a {s.phase.value} incident: it changes things "
            f"({changes[0].title}). Reopen the incident first (`incidentflow reopen {s.id}`); "
            "runbooks that only read (diagnostics) still run")


class IncidentRunbooks(IncidentCore):
    @workflow.update
    async def start_runbook(self, request: RunbookRequest) -> CommandResult:
        run_id = await self._start_runbook(request)
        return self._result(f"runbook {request.runbook} started as {run_id}", ref=run_id)

    @start_runbook.validator
    def _check_start_runbook(self, request: RunbookRequest) -> None:
        if not request.steps:
            raise policy.NotAllowed(f"runbook {request.runbook} has no steps")
        refused = self._changes_refused(request)
        if refused:
            raise policy.NotAllowed(refused)
        # Ended, still finishing: the door starts a diagnostics run on its own (client_runbooks)
        policy.check_not_ended(self.s, "run a runbook")

    def _changes_refused(self, request: RunbookRequest) -> str | None:
        return changes_refused(self.s, request)

    def _runbook_progressed(self, progress: RunbookProgress) -> None:
        s = self.s
        run = next((r for r in s.runbooks if r.run_id == progress.run_id), None)
        if run is not None:
            run.status, run.awaiting = progress.status, progress.awaiting
        self._event(EventKind(progress.kind), "runbook", progress.text, ref=progress.run_id)
        if progress.changed and s.phase in BEFORE_MITIGATING and self._patched(PATCH_MITIGATE_ON_CHANGE):
            name = run.runbook if run is not None else progress.run_id
            self._set_phase(Phase.mitigating, run.by if run is not None else SYSTEM,
                            f"runbook {name} applied its first change")
        if progress.verified and s.phase in BEFORE_MONITORING:
            self._event(EventKind.suggestion, SYSTEM, f"The runbook's verification passed: consider moving to "
                        f"monitoring (`incidentflow phase {s.id} monitoring`)")

    # ---------------------------------------------------------------- runbooks
    async def _start_runbook(self, request: RunbookRequest) -> str:
        s = self.s
        s.runbook_runs += 1
        run_id = f"{s.id}-runbook-{s.runbook_runs}"
        s.runbooks.append(RunbookRun(run_id=run_id, runbook=request.runbook, title=request.title, by=request.by,
                                     started_at=workflow.now(), auto=request.auto,
                                     incident_active=s.phase in policy.ACTIVE))
        self._mitigate_when_asked(request)
        causes = "; ".join(request.likely_causes[:5])
        self._event(EventKind.action, request.by, f"Runbook {request.runbook} ({request.title}) requested"
                    + (f". Likely causes: {causes}" if causes else "")
                    + (f". Escalation: {request.escalation}" if request.escalation else ""), ref=run_id)
        await self._order.settle(workflow.start_child_workflow(
            RunbookWorkflow.run, RunbookStart(run_id=run_id, incident_id=s.id, request=request,
                                              commander=s.roles.get(Role.ic), incident_phase=s.phase),
            id=run_id, parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            static_summary=f"Runbook {request.runbook} on {s.id}"[:200]))
        return run_id

    def _mitigate_when_asked(self, request: RunbookRequest) -> None:
        """Before mitigate-on-change, a run with changes moved the incident to mitigating at its start;
        histories recorded then replay that way."""
        if self._patched(PATCH_MITIGATE_ON_CHANGE):
            return
        changes = any(step.destructive for step in request.steps) and not request.auto
        if changes and self.s.phase in BEFORE_MITIGATING:
            self._set_phase(Phase.mitigating, request.by, f"runbook {request.runbook} is running")

    async def _flush_runbooks(self) -> None:
        while self._runbook_signals:
            run_id, change = self._runbook_signals.pop(0)
            try:
                await self._order.settle(workflow.get_external_workflow_handle_for(RunbookWorkflow.run, run_id).signal(
                    RunbookWorkflow.commander_changed, change))
            except Exception:  # the run has finished
                pass
        await self._tell_runs_the_phase()
        while self._match_queue:
            labels = self._match_queue.pop(0)
            if self.s.code_level >= TRIGGERS_LEVEL and not await self._could_run(labels):
                continue
            await self._run_matching_runbooks(labels)

    async def _could_run(self, labels: dict[str, str]) -> bool:
        """Could this alert start an auto-run runbook not run yet (the triggers, asked when unknown or stale)?"""
        s = self.s
        now = workflow.now()
        known = s.runbook_triggers
        if known is None or known.at is None or now - known.at >= TRIGGERS_FRESH:
            try:
                found: RunbookTriggers = await self._order.settle(workflow.execute_activity_method(
                    RunbookActivities.runbook_triggers, TriggersInput(incident_id=s.id, service=s.service),
                    summary="Runbooks that could run on their own", **options.MATCH))
            except ActivityError as exc:  # the incident's timers matter more than an automatic runbook
                self._event(EventKind.warning, SYSTEM, f"Runbooks for this alert not checked: {why(exc)}")
                return False
            known = s.runbook_triggers = RunbookTriggers(triggers=found.triggers, at=now)
        return could_start_runbook(known, labels, s.service, [r.runbook for r in s.runbooks])

    async def _tell_runs_the_phase(self) -> None:
        """Live runs learn when the incident is resolved (no more changes) or reopened (changes again)."""
        s = self.s
        active = s.phase in policy.ACTIVE
        for run in s.runbooks:
            if run.status not in LIVE or run.incident_active == active:
                continue
            if not self._runs_hear_the_phase():
                return
            run.incident_active = active
            try:
                await self._order.settle(workflow.get_external_workflow_handle_for(RunbookWorkflow.run, run.run_id).signal(
                    RunbookWorkflow.incident_phase_changed, IncidentPhaseChanged(phase=s.phase)))
            except Exception:  # the run has finished
                pass

    def _runs_hear_the_phase(self) -> bool:
        return self._patched(PATCH_RUNBOOK_PHASE)  # histories from before it sent runs no phase

    async def _run_matching_runbooks(self, labels: dict[str, str]) -> None:
        """A new firing alert: start the runbooks it matches (diagnostics only; see RunbookRequest.auto)."""
        s = self.s
        match = MatchInput(incident_id=s.id, service=s.service, severity=s.severity.value, labels=labels,
                           already=[r.runbook for r in s.runbooks])
        try:
            # A regular activity even at code level 1: a local one here, beside the coroutines that also issue
            # commands (chat pump, archive), replayed in another order once (test_fresh_histories_replay).
            matches = await self._order.settle(workflow.execute_activity_method(
                RunbookActivities.match_runbooks, match,
                summary=f"Runbooks for {labels.get('alertname', 'the alert')}", **options.MATCH))
        except ActivityError as exc:  # the incident's timers matter more than an automatic runbook
            self._event(EventKind.warning, SYSTEM, f"Runbooks for this alert not checked: {why(exc)}")
            return
        for request in matches:  # only while the incident is worked: nothing runs on its own after resolve
            if request.runbook not in [r.runbook for r in s.runbooks] and s.phase in policy.ACTIVE:
                await self._start_runbook(request)
