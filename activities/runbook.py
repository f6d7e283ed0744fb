"""Runbook steps as activities: plan (read-only, decides targets once), apply (the change), diagnose.

The activities hold `RunbookSteps` (activities/steps.py: the ports and the typed table of step kinds)
and the worker's runbooks. Destructive steps are always planned first and the plan is recorded in the
workflow's history, so a retried or replayed apply works toward the same target: a rollback retried
after it succeeded cannot undo the undo, and a scale sets the same absolute count.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from temporalio import activity

from activities.metrics import recorder
from activities.steps import RunbookSteps
from domain.config import IncidentflowConfig
from domain.models.runbook import (
    MatchInput,
    RunbookRequest,
    RunbookTrigger,
    RunbookTriggers,
    StepInput,
    StepOutcome,
    StepPlan,
    TriggersInput,
)
from domain.runbooks.loader import RunbookError, RunbookSet, load_runbooks
from domain.runbooks.render import ParamError, RenderError, coerce_params, render_steps
from domain.runbooks.request import request_for

__all__ = ["RunbookActivities", "RunbookSource", "RunbookSteps"]

log = logging.getLogger("incidentflow.runbooks")


class RunbookSource:
    """The worker's runbooks, re-read when a file changes; a broken edit keeps the last good set."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self._stamp: tuple[tuple[str, float], ...] | None = None
        self._set = RunbookSet({}, {})
        self._lock = threading.Lock()  # the warm-up thread and the activities: nobody sees a set half read

    def _stat(self) -> tuple[tuple[str, float], ...]:
        out = []
        for base in self.paths:
            files = sorted(base.glob("*.y*ml")) if base.is_dir() else [base]
            for f in files:
                try:
                    out.append((str(f), f.stat().st_mtime))
                except OSError:
                    continue
        return tuple(out)

    def __call__(self) -> RunbookSet:
        with self._lock:
            stamp = self._stat()
            if stamp != self._stamp:
                try:
                    self._set = load_runbooks(self.paths)
                except RunbookError as exc:
                    log.error("runbooks not reloaded, keeping the last good set:\n%s", exc)
                self._stamp = stamp  # only now: a caller meanwhile waited, it did not get the empty set
            return self._set


class _Once:
    """The step adapters, built once by whichever thread asks first (the warm-up or an activity)."""

    def __init__(self, build: Callable[[], RunbookSteps]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self.value: RunbookSteps | None = None

    def __call__(self) -> RunbookSteps:
        with self._lock:
            if self.value is None:
                self.value = self._build()
            return self.value


class RunbookActivities:
    """Runbook steps and auto-run matching. `warm` (the worker's default) builds the step adapters and
    reads the runbooks in a background thread at once: loading the `kubernetes` package took 1.0-1.4 s
    on our 2-core machines (more while the worker is busy), and done by the first step it held up that
    step and, on the event loop, every other activity of the worker."""

    def __init__(self, steps: Callable[[], RunbookSteps], runbooks: Callable[[], RunbookSet],
                 config: Callable[[], IncidentflowConfig], *, warm: bool = True) -> None:
        self._steps = _Once(steps)
        self._runbooks = runbooks
        self._config = config
        if warm:
            threading.Thread(target=self._warm, name="incidentflow-runbooks-warm-up", daemon=True).start()

    def _warm(self) -> None:
        try:
            self._runbooks()
            self._steps().warm()
        except Exception as exc:  # the first step that needs them reports the problem
            log.warning("runbook adapters not prepared in advance: %s", exc)

    async def _ready(self) -> RunbookSteps:
        """The adapters, without blocking the event loop while they are built (or still warming up)."""
        ready = self._steps.value
        return ready if ready is not None else await asyncio.to_thread(self._steps)

    @activity.defn
    async def plan_step(self, inp: StepInput) -> StepPlan:
        try:
            return await (await self._ready()).plan(inp.step)
        except Exception:
            recorder().runbook_step(inp.step.kind, "error")  # the step fails (or retries) before it applies
            raise

    @activity.defn
    async def apply_step(self, inp: StepInput) -> StepOutcome:
        try:
            outcome = await (await self._ready()).apply(inp, heartbeat=lambda detail: activity.heartbeat(detail))
        except Exception:
            recorder().runbook_step(inp.step.kind, "error")
            raise
        recorder().runbook_step(inp.step.kind, "ok" if outcome.ok else "failed")
        return outcome

    @activity.defn
    async def runbook_triggers(self, inp: TriggersInput) -> RunbookTriggers:
        """The auto-run runbooks whose applies_to could match an alert of this incident's service, with their alert
        matchers: the incident checks each new alert against them and calls `match_runbooks` only on a hit."""
        triggers = [RunbookTrigger(runbook=rb.name, alerts=list(rb.applies_to.alerts))
                    for rb in self._runbooks() if rb.applies_to is not None and rb.auto_run != "none"
                    and (not rb.applies_to.services or inp.service in rb.applies_to.services)]
        return RunbookTriggers(triggers=triggers)

    @activity.defn
    async def match_runbooks(self, inp: MatchInput) -> list[RunbookRequest]:
        """Runbooks whose `applies_to` matches the alert: requests to auto-run (diagnostics unless `all`).

        Parameters come from the alert's labels (an alert without a `service` label has the incident's
        service), except those that become (part of) a URL: anyone who can send an alert could otherwise
        choose where the worker sends a request, and its secrets. They keep their defaults; a runbook that
        needs one given is skipped, with the reason logged."""
        out: list[RunbookRequest] = []
        labels = {**({"service": inp.service} if inp.service else {}), **inp.labels}
        for rb in self._runbooks().matching(labels, inp.service):
            if rb.name in inp.already or rb.auto_run == "none":
                continue
            urls = rb.url_params()
            ignored = sorted(k for k in labels if k in urls)
            if ignored:
                log.warning("runbook %s on %s: alert labels %s not used, a URL never comes from an alert "
                            "(the parameters keep their defaults)", rb.name, inp.incident_id, ", ".join(ignored))
            required = sorted(n for n in urls if rb.parameters[n].required)
            if required:
                log.warning("runbook %s matches %s but does not run automatically: %s become part of a URL and "
                            "have no default (a URL never comes from an alert label)", rb.name, inp.incident_id,
                            ", ".join(required))
                continue
            given = {k: v for k, v in labels.items() if k in rb.parameters and k not in urls}
            try:
                params = coerce_params(rb, given)
                steps = render_steps(rb, params, {"id": inp.incident_id, "service": inp.service or "",
                                                  "severity": inp.severity})
            except (ParamError, RenderError) as exc:
                log.warning("runbook %s matches %s but cannot run automatically: %s", rb.name, inp.incident_id, exc)
                continue
            out.append(request_for(rb, params, steps, "alert", self._config(), auto=True))
        return out
