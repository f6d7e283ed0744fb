"""RunbookWorkflow: one run of a runbook, a child of the incident.

Each step is an activity (its UI summary says exactly what it does); results go to the incident's
timeline. On a closed or stood-down incident (its workflow has ended) the door starts a read-only run on
its own, with no parent: it tells no incident, and its state (`incidentflow runbook status RUN`) is the
record. Destructive steps (rollback, scale, restart, non-GET HTTP) run only once a permitted approver
said yes: an `approval` step covers the steps after it up to the next one, and an uncovered
destructive step gets a gate of its own. An approval that times out follows `on_approval_timeout`.
No change is approved or applied while the incident is resolved or ended (it tells the run its phase).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.runbook import RunbookActivities
    from domain import policy
    from domain.models.messages import CommanderChanged
    from domain.models.runbook import (
        Approval,
        Decision,
        IncidentPhaseChanged,
        RenderedStep,
        RunbookProgress,
        RunbookStart,
        RunbookState,
        RunStatus,
        StepInput,
        StepOutcome,
        StepRecord,
    )
    from workflows import options
    from workflows.incident_core import IncidentCore

StepStatus = Literal["ok", "failed", "skipped", "denied"]
# runbook-phase (0.1.2): the incident tells its live runs when it is resolved or ended (and reopened); a run
# then approves and applies no change. Here it guards stopping a run that a history let go on.
PATCH_RUNBOOK_PHASE = "runbook-phase"
# runbook-standalone (0.1.2): a run with no parent (started by the door on an ended incident) signals no
# incident. Asked only by such runs, so the children recorded before it replay unchanged.
PATCH_STANDALONE = "runbook-standalone"
CHANGES = ("kubernetes.rollout_undo", "kubernetes.scale", "kubernetes.restart")


class DecisionRejected(ApplicationError):
    pass


@workflow.defn(name="RunbookWorkflow")
class RunbookWorkflow:
    @workflow.init
    def __init__(self, start: RunbookStart) -> None:
        r = start.request
        self.start = start
        self.s = RunbookState(run_id=start.run_id, incident_id=start.incident_id, runbook=r.runbook, title=r.title,
                              started_by=r.by, started_at=workflow.now(), commander=start.commander,
                              approvers=r.approvers, steps=r.steps, auto=r.auto,
                              incident_phase=start.incident_phase)
        self._decision: Decision | None = None
        self._alone = False  # no incident to report to (see PATCH_STANDALONE)

    @workflow.run
    async def run(self, start: RunbookStart) -> RunbookState:
        r, s = start.request, self.s
        self._alone = workflow.info().parent is None and workflow.patched(PATCH_STANDALONE)
        n = len(r.steps)
        how = " automatically (alert matched; diagnostics only)" if r.auto and not r.all_steps else ""
        await self._tell(f"Runbook {r.runbook} started{how} by {r.by}: {_steps(n)} (run {s.run_id})")
        approved: set[int] = set()
        verified = False
        manual_from: int | None = None  # auto runs stop at the first step that needs a human
        for step in r.steps:
            label = f"Step {step.index + 1}/{n}"
            if r.auto and not r.all_steps and (manual_from is not None or step.destructive
                                               or step.kind == "approval"):
                manual_from = step.index if manual_from is None else manual_from
                self._record(step, "skipped", "not run automatically: review, then run the runbook by hand")
                continue
            if step.kind == "approval":
                covers = _covered(r.steps, step.index)
                if self._changes_barred(covers) and workflow.patched(PATCH_RUNBOOK_PHASE):
                    return await self._stop_barred(step)
                if not await self._gate(step, str(step.args.get("prompt") or step.title), covers):
                    return await self._end(RunStatus.denied, step)
                approved.update(covers)
                self._record(step, "ok", s.decisions[-1])
                continue
            if self._changes_barred([step.index]) and workflow.patched(PATCH_RUNBOOK_PHASE):
                return await self._stop_barred(step)  # resolved after the approval: nothing changes now
            if step.destructive and step.index not in approved:
                if not await self._gate(step, f"Run {step.title}?", [step.index]):
                    return await self._end(RunStatus.denied, step)
                approved.add(step.index)
            started = workflow.now()
            try:
                outcome = await self._execute(step)
            except ActivityError as exc:
                why = _why(exc)
                self._record(step, "failed", why, started=started)
                await self._tell(f"{label} failed: {step.title}: {why}", kind="warning")
                if step.continue_on_error:
                    continue
                return await self._end(RunStatus.failed, step)
            self._record(step, "ok", outcome.summary, outcome, started)
            out = f"\n```\n{outcome.output[:1500]}\n```" if outcome.output else ""
            changed = step.destructive and not outcome.data.get("noop")
            await self._tell(f"{label} {step.title}: {outcome.summary}{out}", changed=changed)
            if step.kind == "prometheus.query" and outcome.data.get("verified"):
                verified = True
        return await self._end(RunStatus.succeeded, None, verified=verified)

    async def _execute(self, step: RenderedStep) -> StepOutcome:
        s, a = self.s, step.args
        if step.kind == "wait":
            await workflow.sleep(timedelta(seconds=float(a.get("duration_s") or 0)), summary=step.title)
            return StepOutcome(summary=f"waited {step.title.removeprefix('Wait ')}")
        if step.kind == "notify":
            return StepOutcome(summary=str(a.get("text") or ""))
        if step.kind == "kubernetes.restart":  # the restart's stamp is decided once: a retry changes nothing
            step = step.model_copy(update={"args": {**a, "restarted_at": workflow.now().isoformat()}})
        inp = StepInput(run_id=s.run_id, incident_id=s.incident_id, step=step)
        if step.kind in CHANGES:
            plan = await workflow.execute_activity_method(
                RunbookActivities.plan_step, inp, summary=f"Plan: {step.title}",
                start_to_close_timeout=timedelta(seconds=60), retry_policy=options.STEP_RETRY)
            if plan.noop:
                return StepOutcome(summary=f"nothing to do: {plan.summary}", data={**plan.data, "noop": True})
            inp = inp.model_copy(update={"plan": plan})
            self._note_plan(step, plan.summary, plan.changes)
            return await workflow.execute_activity_method(
                RunbookActivities.apply_step, inp, summary=plan.summary,
                start_to_close_timeout=timedelta(seconds=90), retry_policy=options.STEP_RETRY)
        long_running = step.kind == "kubernetes.rollout_status" or (step.kind == "prometheus.query" and a.get("until"))
        timeout = timedelta(seconds=float(a.get("timeout_s") or 600) + 60) if long_running else timedelta(seconds=90)
        # A killed worker's long step is retried elsewhere once its heartbeats stop: rollout polls beat every
        # few seconds; a verification query beats once per interval.
        beat = timedelta(seconds=max(20.0, 2 * float(a.get("interval_s") or 0) + 10)) if long_running else None
        return await workflow.execute_activity_method(
            RunbookActivities.apply_step, inp, summary=step.title, start_to_close_timeout=timeout,
            heartbeat_timeout=beat, retry_policy=options.STEP_RETRY)

    def _note_plan(self, step: RenderedStep, summary: str, changes: list[str]) -> None:
        workflow.logger.info("runbook %s step %s plan: %s (%s)", self.s.run_id, step.name, summary, changes)

    # ---------------------------------------------------------------- approvals
    async def _gate(self, step: RenderedStep, prompt: str, covers: list[int]) -> bool:
        s, r = self.s, self.start.request
        now = workflow.now()
        s.pending = Approval(step=step.index, prompt=prompt, requested_at=now, deadline=now + r.approval_timeout,
                             covers=covers)
        s.status = RunStatus.awaiting_approval
        self._decision = None
        await self._tell(f"Approval needed from {self._who()}: {prompt} (run {s.run_id}; "
                         f"`incidentflow runbook approve {s.run_id}` or `--deny`; "
                         f"{_minutes(r.approval_timeout)} to decide, then {r.on_approval_timeout})",
                         kind="approval", awaiting=prompt, approvers=self._allowed())
        try:
            await workflow.wait_condition(lambda: self._decision is not None, timeout=r.approval_timeout,
                                          timeout_summary=f"approval: {prompt}"[:200])
            decision = self._decision
            assert decision is not None
            verdict = "approved" if decision.approve else "denied"
            why = f": {decision.comment}" if decision.comment else ""
            text = f"{verdict} by {decision.by} at {workflow.now():%H:%M} UTC{why} ({prompt})"
            ok = decision.approve
        except TimeoutError:
            ok = r.on_approval_timeout == "approve"
            text = (f"{'approved' if ok else 'denied'} automatically: no decision within "
                    f"{_minutes(r.approval_timeout)} (on_approval_timeout: {r.on_approval_timeout}) ({prompt})")
        s.decisions.append(text)
        s.pending = None
        s.status = RunStatus.running
        await self._tell(f"Runbook {r.runbook}: {text}", kind="action" if ok else "warning")
        return ok

    def _allowed(self) -> list[str]:
        out = []
        for who in self.s.approvers:
            if who == "ic":
                if self.s.commander:
                    out.append(self.s.commander)
            else:
                out.append(who)
        return list(dict.fromkeys(out))

    def _who(self) -> str:
        parts = []
        for who in self.s.approvers:
            parts.append(f"the incident commander ({self.s.commander or 'nobody yet: assign one'})" if who == "ic"
                         else who)
        return ", ".join(parts) or "nobody (no approvers configured)"

    @workflow.update
    def decide(self, decision: Decision) -> str:
        self._decision = decision
        return f"{'approved' if decision.approve else 'denied'}: {self.s.pending.prompt if self.s.pending else ''}"

    @decide.validator
    def _check_decide(self, decision: Decision) -> None:
        if self.s.pending is None or self._decision is not None:
            raise DecisionRejected(f"nothing awaits approval in run {self.s.run_id} (status: {self.s.status.value})")
        if decision.by not in self._allowed():
            raise DecisionRejected(f"{decision.by} may not approve this run: approvers are {self._who()}")
        if decision.approve and self._changes_barred(self.s.pending.covers):
            raise DecisionRejected(f"cannot approve: {self._barred()}; deny it, or reopen the incident first")

    @workflow.signal
    def commander_changed(self, change: CommanderChanged) -> None:
        self.s.commander = change.person

    @workflow.signal
    def incident_phase_changed(self, change: IncidentPhaseChanged) -> None:
        self.s.incident_phase = change.phase

    def _changes_barred(self, indexes: list[int]) -> bool:
        """Whether these steps would change something while the incident is resolved or ended."""
        phase = self.s.incident_phase
        if phase is None or phase in policy.ACTIVE:
            return False
        return any(self.start.request.steps[i].destructive for i in indexes if i < len(self.start.request.steps))

    async def _stop_barred(self, step: RenderedStep) -> RunbookState:
        self._record(step, "denied", self._barred())
        return await self._end(RunStatus.denied, step, self._barred())

    def _barred(self) -> str:
        phase = self.s.incident_phase.value if self.s.incident_phase else "ended"
        return f"the incident is {phase}, and a change to a {phase} incident could undo its fix"

    @workflow.query
    def get_state(self) -> RunbookState:
        return self.s

    # ---------------------------------------------------------------- bookkeeping
    def _record(self, step: RenderedStep, status: StepStatus, summary: str, outcome: StepOutcome | None = None,
                started: datetime | None = None) -> None:
        self.s.results.append(StepRecord(
            index=step.index, name=step.name, kind=step.kind, title=step.title, status=status,
            summary=summary, output=outcome.output if outcome else "", data=outcome.data if outcome else {},
            started_at=started or workflow.now(), finished_at=workflow.now()))

    async def _end(self, status: RunStatus, step: RenderedStep | None, why: str = "not approved",
                   verified: bool = False) -> RunbookState:
        s = self.s
        s.status, ended_at = status, workflow.now()
        if status == RunStatus.succeeded:
            ran = sum(1 for r in s.results if r.status == "ok")
            skipped = sum(1 for r in s.results if r.status == "skipped")
            extra = f", {skipped} skipped" if skipped else ""
            text = f"Runbook {s.runbook} finished: {_steps(ran)} done{extra}"
            if verified:
                text += "; the verification passed"
        elif status == RunStatus.denied:
            where = f"step {step.index + 1} ({step.name})" if step else "a step"
            text = f"Runbook {s.runbook} stopped at {where}: {why}"
        else:
            text = f"Runbook {s.runbook} failed at {step.title if step else 'a step'}"
            if self.start.request.escalation:
                text += f". Escalation: {self.start.request.escalation}"
        await self._tell(text, kind="action" if status == RunStatus.succeeded else "warning", verified=verified)
        # Ended only once the incident has been told: whoever sees `ended_at` sees the same status there.
        s.ended_at = ended_at
        return s

    async def _tell(self, text: str, kind: str = "action", awaiting: str | None = None, verified: bool = False,
                    changed: bool = False, approvers: list[str] | None = None) -> None:
        progress = RunbookProgress(run_id=self.s.run_id, status=self.s.status, text=text[:3900], kind=kind,
                                   awaiting=awaiting, verified=verified, changed=changed,
                                   approvers=(approvers or [])[:10])
        if self._alone:  # the incident has ended: the run's own state says it all
            return
        try:
            await workflow.get_external_workflow_handle(self.s.incident_id).signal(IncidentCore.runbook_progress,
                                                                                   progress)
        except Exception as exc:  # the incident has ended: the run's own state still says it all
            workflow.logger.info("could not tell %s: %s", self.s.incident_id, exc)


def _steps(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def _covered(steps: list[RenderedStep], approval_index: int) -> list[int]:
    """The steps an approval lets run: those after it, up to the next approval step."""
    out = []
    for step in steps[approval_index + 1:]:
        if step.kind == "approval":
            break
        out.append(step.index)
    return out


def _why(exc: ActivityError) -> str:
    cause = exc.cause
    while isinstance(cause, ActivityError):
        cause = cause.cause
    return cause.message if isinstance(cause, ApplicationError) else str(cause or exc)


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} min" if minutes else f"{int(delta.total_seconds())} s"
