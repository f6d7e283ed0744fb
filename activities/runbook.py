"""Runbook steps as activities: plan (read-only, decides targets once), apply (the change), diagnose.

`RunbookSteps` holds the adapters (Kubernetes, HTTP, Prometheus) and is also what `--dry-run` uses to
print a plan without touching anything. Destructive steps are always planned first and the plan is
recorded in the workflow's history, so a retried or replayed apply works toward the same target:
a rollback retried after it succeeded cannot undo the undo, and a scale sets the same absolute count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import NOT_CONFIGURED
from activities.probes import HttpSteps, PrometheusSteps
from domain.config import IncidentflowConfig, Settings
from domain.models.runbook import MatchInput, RunbookRequest, StepInput, StepOutcome, StepPlan
from domain.runbooks.loader import RunbookError, RunbookSet, load_runbooks
from domain.runbooks.render import ParamError, RenderedStep, RenderError, coerce_params, render_steps
from domain.runbooks.request import request_for

log = logging.getLogger("incidentflow.runbooks")

KUBE_CHANGES = ("kubernetes.rollout_undo", "kubernetes.scale", "kubernetes.restart")


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


class RunbookSteps:
    def __init__(self, kube: Any | None, http: HttpSteps, prometheus: PrometheusSteps) -> None:
        self._kube = kube
        self.http = http
        self.prometheus = prometheus

    @classmethod
    def from_settings(cls, settings: Settings, client: httpx.AsyncClient | None = None) -> RunbookSteps:
        from activities.kubernetes import KubeSteps

        http = client or httpx.AsyncClient(timeout=30)
        kube = KubeSteps.from_settings(str(settings.kubeconfig) if settings.kubeconfig else None,
                                       settings.kube_context)
        secrets = {k: v.get_secret_value() for k, v in settings.runbook_secrets.items()}
        token = settings.prometheus_token.get_secret_value() if settings.prometheus_token else None
        return cls(kube, HttpSteps(http, secrets), PrometheusSteps(http, settings.prometheus_url, token))

    @property
    def kube(self) -> Any:
        if self._kube is None:
            raise ApplicationError("no Kubernetes access configured on the worker (INCIDENTFLOW_KUBECONFIG, "
                                   "KUBECONFIG or in-cluster)", type=NOT_CONFIGURED, non_retryable=True)
        return self._kube

    async def plan(self, step: RenderedStep) -> StepPlan:
        """What the step would do, touching nothing (Kubernetes reads only)."""
        a = step.args
        if step.kind == "kubernetes.rollout_undo":
            plan: StepPlan = await self.kube.plan_rollout_undo(a["namespace"], a["deployment"], a.get("to_revision"))
            return plan
        if step.kind == "kubernetes.scale":
            plan = await self.kube.plan_scale(a["namespace"], a["deployment"], a.get("replicas"), a.get("factor"),
                                              int(a.get("max_replicas") or 100))
            return plan
        if step.kind == "kubernetes.restart":
            plan = await self.kube.plan_restart(a["namespace"], a["deployment"], str(a.get("restarted_at") or ""))
            return plan
        if step.kind in ("kubernetes.rollout_status", "kubernetes.pods", "kubernetes.logs"):
            plan = await self.kube.plan_readonly(step.kind, a)
            return plan
        if step.kind == "http.request":
            return self.http.plan(a)
        if step.kind == "prometheus.query":
            until = a.get("until")
            cond = f" until {until['op']} {until['threshold']:g} (at most {a.get('timeout_s', 600):g} s)" if until else ""
            return StepPlan(summary=f"Query Prometheus{cond}", changes=[f"query: {a['query']}"])
        if step.kind == "approval":
            return StepPlan(summary=f"Wait for approval: {a.get('prompt', '')}")
        if step.kind == "notify":
            return StepPlan(summary=f"Post to the incident: {a.get('text', '')}")
        if step.kind == "wait":
            return StepPlan(summary=f"Wait {a.get('duration_s', 0):g} s")
        raise ApplicationError(f"unknown step kind {step.kind!r}", type="UnknownStep", non_retryable=True)

    async def apply(self, inp: StepInput, heartbeat: Callable[[str], None] = lambda _: None) -> StepOutcome:
        step, a, plan = inp.step, inp.step.args, inp.plan
        if step.kind == "kubernetes.rollout_undo":
            data = _planned(plan, step)
            outcome: StepOutcome = await self.kube.rollout_undo(a["namespace"], a["deployment"],
                                                                int(data["target_revision"]),
                                                                data.get("from_revision"))
            return outcome
        if step.kind == "kubernetes.scale":
            data = _planned(plan, step)
            outcome = await self.kube.scale(a["namespace"], a["deployment"], int(data["replicas"]))
            if "previous_replicas" in data:  # decided before the change: a retry reads the new count
                outcome.data["previous_replicas"] = data["previous_replicas"]
            return outcome
        if step.kind == "kubernetes.restart":
            outcome = await self.kube.restart(a["namespace"], a["deployment"], str(a["restarted_at"]))
            return outcome
        if step.kind == "kubernetes.rollout_status":
            outcome = await self.kube.rollout_status(a["namespace"], a["deployment"], float(a.get("timeout_s") or 600),
                                                     heartbeat)
            return outcome
        if step.kind == "kubernetes.pods":
            outcome = await self.kube.pods(a["namespace"], a["selector"])
            return outcome
        if step.kind == "kubernetes.logs":
            outcome = await self.kube.logs(a["namespace"], a.get("pod"), a.get("selector"), a.get("container"),
                                           int(a.get("tail_lines") or 100), int(a.get("max_bytes") or 8000))
            return outcome
        if step.kind == "http.request":
            return await self.http.request(a, idempotency_key=f"{inp.run_id}:{step.index}")
        if step.kind == "prometheus.query":
            return await self.prometheus.check(a["query"], a.get("until"), float(a.get("timeout_s") or 600),
                                               float(a.get("interval_s") or 30), heartbeat)
        raise ApplicationError(f"step kind {step.kind!r} does not run as an activity", type="UnknownStep",
                               non_retryable=True)


def _planned(plan: StepPlan | None, step: RenderedStep) -> dict[str, Any]:
    if plan is None:
        raise ApplicationError(f"step {step.name} needs its plan", type="MissingPlan", non_retryable=True)
    return plan.data


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
        """Runbooks whose `applies_to` matches the alert: requests to auto-run (diagnostics unless `all`)."""
        out = []
        for rb in self._runbooks().matching(inp.labels, inp.service):
            if rb.name in inp.already or rb.auto_run == "none":
                continue
            given = {k: v for k, v in inp.labels.items() if k in rb.parameters}
            try:
                params = coerce_params(rb, given)
                steps = render_steps(rb, params, {"id": inp.incident_id, "service": inp.service or "",
                                                  "severity": inp.severity})
            except (ParamError, RenderError) as exc:
                log.warning("runbook %s matches %s but cannot run automatically: %s", rb.name, inp.incident_id, exc)
                continue
            out.append(request_for(rb, params, steps, "alert", self._config(), auto=True))
        return out
