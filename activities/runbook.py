"""Runbook steps as activities: plan (read-only, decides targets once), apply (the change), diagnose.

The activities hold `RunbookSteps` (activities/steps.py: the ports and the typed table of step kinds)
and the worker's runbooks. Destructive steps are always planned first and the plan is recorded in the
workflow's history, so a retried or replayed apply works toward the same target: a rollback retried
after it succeeded cannot undo the undo, and a scale sets the same absolute count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from temporalio import activity

from activities.steps import RunbookSteps
from domain.config import IncidentflowConfig
from domain.models.runbook import MatchInput, RunbookRequest, StepInput, StepOutcome, StepPlan
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
        stamp = self._stat()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._set = load_runbooks(self.paths)
            except RunbookError as exc:
                log.error("runbooks not reloaded, keeping the last good set:\n%s", exc)
        return self._set


class RunbookActivities:
    def __init__(self, steps: Callable[[], RunbookSteps], runbooks: Callable[[], RunbookSet],
                 config: Callable[[], IncidentflowConfig]) -> None:
        self._steps = steps
        self._runbooks = runbooks
        self._config = config

    @activity.defn
    async def plan_step(self, inp: StepInput) -> StepPlan:
        return await self._steps().plan(inp.step)

    @activity.defn
    async def apply_step(self, inp: StepInput) -> StepOutcome:
        return await self._steps().apply(inp, heartbeat=lambda detail: activity.heartbeat(detail))

    @activity.defn
    async def match_runbooks(self, inp: MatchInput) -> list[RunbookRequest]:
        """Runbooks whose `applies_to` matches the alert: requests to auto-run (diagnostics unless `all`).

        Parameters come from the alert's labels, except those that become (part of) a URL: anyone who
        can send an alert could otherwise choose where the worker sends a request, and its secrets.
        They keep their defaults; a runbook that needs one given is skipped, with the reason logged."""
        out: list[RunbookRequest] = []
        for rb in self._runbooks().matching(inp.labels, inp.service):
            if rb.name in inp.already or rb.auto_run == "none":
                continue
            urls = rb.url_params()
            ignored = sorted(k for k in inp.labels if k in urls)
            if ignored:
                log.warning("runbook %s on %s: alert labels %s not used, a URL never comes from an alert "
                            "(the parameters keep their defaults)", rb.name, inp.incident_id, ", ".join(ignored))
            required = sorted(n for n in urls if rb.parameters[n].required)
            if required:
                log.warning("runbook %s matches %s but does not run automatically: %s become part of a URL and "
                            "have no default (a URL never comes from an alert label)", rb.name, inp.incident_id,
                            ", ".join(required))
                continue
            given = {k: v for k, v in inp.labels.items() if k in rb.parameters and k not in urls}
            try:
                params = coerce_params(rb, given)
                steps = render_steps(rb, params, {"id": inp.incident_id, "service": inp.service or "",
                                                  "severity": inp.severity})
            except (ParamError, RenderError) as exc:
                log.warning("runbook %s matches %s but cannot run automatically: %s", rb.name, inp.incident_id, exc)
                continue
            out.append(request_for(rb, params, steps, "alert", self._config(), auto=True))
        return out
