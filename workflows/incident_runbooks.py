"""The incident's runbook runs (a mixin of IncidentWorkflow): starting them (by command, or automatically
for a firing alert's diagnostics), telling them of a new commander, and what their reports change."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.runbook import RunbookActivities
    from domain import policy
    from domain.models.common import EventKind, Phase, Role
    from domain.models.incident import CommandResult
    from domain.models.runbook import MatchInput, RunbookProgress, RunbookRequest, RunbookRun, RunbookStart
    from workflows import options
    from workflows.incident_core import BEFORE_MONITORING, SYSTEM, IncidentCore, why
    from workflows.runbook import RunbookWorkflow


class IncidentRunbooks(IncidentCore):
    @workflow.update
    async def start_runbook(self, request: RunbookRequest) -> CommandResult:
        run_id = await self._start_runbook(request)
        return self._result(f"runbook {request.runbook} started as {run_id}", ref=run_id)

    @start_runbook.validator
    def _check_start_runbook(self, request: RunbookRequest) -> None:
        policy.check_not_ended(self.s, "run a runbook")
        if not request.steps:
            raise policy.NotAllowed(f"runbook {request.runbook} has no steps")

    def _runbook_progressed(self, progress: RunbookProgress) -> None:
        s = self.s
        run = next((r for r in s.runbooks if r.run_id == progress.run_id), None)
        if run is not None:
            run.status, run.awaiting = progress.status, progress.awaiting
        self._event(EventKind(progress.kind), "runbook", progress.text, ref=progress.run_id)
        if progress.verified and s.phase in BEFORE_MONITORING:
            self._event(EventKind.suggestion, SYSTEM, f"The runbook's verification passed: consider moving to "
                        f"monitoring (`incidentflow phase {s.id} monitoring`)")

    # ---------------------------------------------------------------- runbooks
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

    async def _flush_runbooks(self) -> None:
        while self._runbook_signals:
            run_id, change = self._runbook_signals.pop(0)
            try:
                await workflow.get_external_workflow_handle_for(RunbookWorkflow.run, run_id).signal(
                    RunbookWorkflow.commander_changed, change)
            except Exception:  # the run has finished
                pass
        while self._match_queue:
            await self._run_matching_runbooks(self._match_queue.pop(0))

    async def _run_matching_runbooks(self, labels: dict[str, str]) -> None:
        """A new firing alert: start the runbooks it matches (diagnostics only; see RunbookRequest.auto)."""
        s = self.s
        match = MatchInput(incident_id=s.id, service=s.service, severity=s.severity.value, labels=labels,
                           already=[r.runbook for r in s.runbooks])
        try:
            matches = await workflow.execute_activity_method(
                RunbookActivities.match_runbooks, match,
                summary=f"Runbooks for {labels.get('alertname', 'the alert')}", **options.MATCH)
        except ActivityError as exc:  # the incident's timers matter more than an automatic runbook
            self._event(EventKind.warning, SYSTEM, f"Runbooks for this alert not checked: {why(exc)}")
            return
        for request in matches:
            if request.runbook not in [r.runbook for r in s.runbooks] and s.phase in policy.ACTIVE:
                await self._start_runbook(request)
