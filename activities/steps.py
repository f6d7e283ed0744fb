"""Runbook steps: one typed table from step kind to what planning and applying it means.

`RunbookSteps` holds the ports (a `Cluster`, a `RequestProbe`, a `MetricsProbe`) and is also what
`--dry-run` uses to print a plan without touching anything. Each entry of `STEPS` reads the step's
arguments through the model of its kind (domain/models/runbook.py), so a handler works with typed
fields, never with `args["…"]`. Destructive steps are always planned first and the plan is recorded in
the workflow's history, so a retried or replayed apply works toward the same target.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from activities import errors
from activities.ports import Cluster, Heartbeat, MetricsProbe, RequestProbe, no_heartbeat
from domain.models.runbook import (
    ApprovalArgs,
    HttpRequestArgs,
    LogsArgs,
    NotifyArgs,
    PodsArgs,
    PrometheusQueryArgs,
    RenderedStep,
    RestartArgs,
    RolloutStatusArgs,
    RolloutUndoArgs,
    ScaleArgs,
    StepArgs,
    StepInput,
    StepOutcome,
    StepPlan,
    WaitArgs,
)

if TYPE_CHECKING:
    import httpx

    from domain.config import Settings

log = logging.getLogger("incidentflow.runbooks")

A = TypeVar("A", bound=StepArgs)
M = TypeVar("M", bound=BaseModel)


class RollbackDecision(BaseModel):
    """What `plan_rollout_undo` decided (StepPlan.data), read back by the apply step."""

    target_revision: int
    from_revision: int | None = None


class ScaleDecision(BaseModel):
    replicas: int
    previous_replicas: int | None = None


class RunbookSteps:
    """The ports the steps act on. A cluster is optional: without one, Kubernetes steps fail clearly."""

    def __init__(self, cluster: Cluster | None, http: RequestProbe, prometheus: MetricsProbe) -> None:
        self._cluster = cluster
        self.http = http
        self.prometheus = prometheus

    @classmethod
    def from_settings(cls, settings: Settings, client: httpx.AsyncClient | None = None) -> RunbookSteps:
        """The adapters from Settings. The Kubernetes adapter only when a cluster is configured: loading the
        `kubernetes` package takes a second or more, which nobody without a cluster should pay."""
        import httpx

        from activities.probes import HttpProbe, PrometheusProbe

        http = client or httpx.AsyncClient(timeout=30)
        kubeconfig = str(settings.kubeconfig) if settings.kubeconfig else None
        cluster: Cluster | None = None
        if kube_configured(kubeconfig):
            from activities.kubernetes import KubernetesCluster

            cluster = KubernetesCluster.from_settings(kubeconfig, settings.kube_context)
        for name, secret in settings.runbook_secrets.items():
            if not secret.hosts:
                log.warning("runbook secret %r is bound to no host, so steps that use it are refused: give it "
                            'as {"value": "…", "hosts": ["flags.internal"]} in INCIDENTFLOW_RUNBOOK_SECRETS', name)
        token = settings.prometheus_token.get_secret_value() if settings.prometheus_token else None
        return cls(cluster, HttpProbe(http, settings.runbook_secrets),
                   PrometheusProbe(http, settings.prometheus_url, token))

    def warm(self) -> None:
        """Build the cluster's client now (blocking: call it off the event loop), so the first step of
        the first run does not wait for it. A cluster that cannot be reached fails later, in its step."""
        warm = getattr(self._cluster, "warm", None)
        if callable(warm):
            warm()

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            raise errors.not_configured("no Kubernetes access configured on the worker (INCIDENTFLOW_KUBECONFIG, "
                                        "KUBECONFIG or in-cluster)")
        return self._cluster

    async def plan(self, step: RenderedStep) -> StepPlan:
        """What the step would do, touching nothing (Kubernetes reads only)."""
        kind = STEPS.get(step.kind)
        if kind is None:
            raise errors.unknown_step(f"unknown step kind {step.kind!r}")
        return await kind.plan(self, step)

    async def apply(self, inp: StepInput, heartbeat: Heartbeat = no_heartbeat) -> StepOutcome:
        kind = STEPS.get(inp.step.kind)
        if kind is None or not kind.applies:
            raise errors.unknown_step(f"step kind {inp.step.kind!r} does not run as an activity")
        return await kind.apply(self, inp, heartbeat)


def kube_configured(kubeconfig: str | None) -> bool:
    """Whether this worker has Kubernetes access to use: a kubeconfig named by Settings or $KUBECONFIG,
    ~/.kube/config, or a pod's service account (the API server's address in the environment)."""
    if kubeconfig or os.environ.get("KUBECONFIG") or os.environ.get("KUBERNETES_SERVICE_HOST"):
        return True
    return os.path.exists(os.path.expanduser("~/.kube/config"))


def _parse(model: type[M], data: object, what: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise errors.bad_step(f"{what}: {problems}") from None


def _decided(model: type[M], inp: StepInput) -> M:
    if inp.plan is None:
        raise errors.missing_plan(inp.step.name)
    return _parse(model, inp.plan.data, f"step {inp.step.name}: its plan")


Plan = Callable[[RunbookSteps, A], Awaitable[StepPlan]]
Apply = Callable[[RunbookSteps, A, StepInput, Heartbeat], Awaitable[StepOutcome]]


class Step(Protocol):
    """A row of the table, whatever its argument type."""

    @property
    def applies(self) -> bool: ...

    async def plan(self, steps: RunbookSteps, step: RenderedStep) -> StepPlan: ...

    async def apply(self, steps: RunbookSteps, inp: StepInput, heartbeat: Heartbeat) -> StepOutcome: ...


@dataclass(frozen=True)
class StepKind(Generic[A]):
    """A step kind: its typed arguments, its plan, and its apply (None: the workflow runs it itself)."""

    args: type[A]
    planner: Plan[A]
    applier: Apply[A] | None = None

    @property
    def applies(self) -> bool:
        return self.applier is not None

    async def plan(self, steps: RunbookSteps, step: RenderedStep) -> StepPlan:
        return await self.planner(steps, _parse(self.args, step.args, f"step {step.name} ({step.kind})"))

    async def apply(self, steps: RunbookSteps, inp: StepInput, heartbeat: Heartbeat) -> StepOutcome:
        step = inp.step
        if self.applier is None:
            raise errors.unknown_step(f"step kind {step.kind!r} does not run as an activity")  # see `applies`
        return await self.applier(steps, _parse(self.args, step.args, f"step {step.name} ({step.kind})"), inp,
                                  heartbeat)


# ------------------------------------------------------------------------------------- Kubernetes


async def _plan_rollout_undo(s: RunbookSteps, a: RolloutUndoArgs) -> StepPlan:
    return await s.cluster.plan_rollout_undo(a.namespace, a.deployment, a.to_revision)


async def _rollout_undo(s: RunbookSteps, a: RolloutUndoArgs, inp: StepInput, _: Heartbeat) -> StepOutcome:
    decided = _decided(RollbackDecision, inp)
    return await s.cluster.rollout_undo(a.namespace, a.deployment, decided.target_revision, decided.from_revision)


async def _plan_scale(s: RunbookSteps, a: ScaleArgs) -> StepPlan:
    return await s.cluster.plan_scale(a.namespace, a.deployment, a.replicas, a.factor, a.max_replicas)


async def _scale(s: RunbookSteps, a: ScaleArgs, inp: StepInput, _: Heartbeat) -> StepOutcome:
    decided = _decided(ScaleDecision, inp)
    outcome = await s.cluster.scale(a.namespace, a.deployment, decided.replicas)
    if decided.previous_replicas is not None:  # decided before the change: a retry reads the new count
        outcome.data["previous_replicas"] = decided.previous_replicas
    return outcome


async def _plan_restart(s: RunbookSteps, a: RestartArgs) -> StepPlan:
    return await s.cluster.plan_restart(a.namespace, a.deployment, a.restarted_at)


async def _restart(s: RunbookSteps, a: RestartArgs, _inp: StepInput, _: Heartbeat) -> StepOutcome:
    return await s.cluster.restart(a.namespace, a.deployment, a.restarted_at)


async def _plan_read(s: RunbookSteps, a: RolloutStatusArgs | PodsArgs | LogsArgs) -> StepPlan:
    return await s.cluster.plan_read(a)


async def _rollout_status(s: RunbookSteps, a: RolloutStatusArgs, _: StepInput, beat: Heartbeat) -> StepOutcome:
    return await s.cluster.rollout_status(a.namespace, a.deployment, a.timeout_s or 600, beat)


async def _pods(s: RunbookSteps, a: PodsArgs, _inp: StepInput, _: Heartbeat) -> StepOutcome:
    return await s.cluster.pods(a.namespace, a.selector)


async def _logs(s: RunbookSteps, a: LogsArgs, _inp: StepInput, _: Heartbeat) -> StepOutcome:
    return await s.cluster.logs(a.namespace, a.pod, a.selector, a.container, a.tail_lines or 100,
                                a.max_bytes or 8000)


# ------------------------------------------------------------------------------------- probes


async def _plan_request(s: RunbookSteps, a: HttpRequestArgs) -> StepPlan:
    return s.http.plan_request(a)


async def _request(s: RunbookSteps, a: HttpRequestArgs, inp: StepInput, _: Heartbeat) -> StepOutcome:
    return await s.http.request(a, idempotency_key=f"{inp.run_id}:{inp.step.index}")


async def _plan_query(_: RunbookSteps, a: PrometheusQueryArgs) -> StepPlan:
    until = (f" until {a.until.op} {a.until.threshold:g} (at most {a.timeout_s:g} s)" if a.until else "")
    return StepPlan(summary=f"Query Prometheus{until}", changes=[f"query: {a.query}"])


async def _query(s: RunbookSteps, a: PrometheusQueryArgs, _: StepInput, beat: Heartbeat) -> StepOutcome:
    return await s.prometheus.query(a, beat)


# ------------------------------------------------------------------------------------- run by the workflow


async def _plan_approval(_: RunbookSteps, a: ApprovalArgs) -> StepPlan:
    return StepPlan(summary=f"Wait for approval: {a.prompt}")


async def _plan_notify(_: RunbookSteps, a: NotifyArgs) -> StepPlan:
    return StepPlan(summary=f"Post to the incident: {a.text}")


async def _plan_wait(_: RunbookSteps, a: WaitArgs) -> StepPlan:
    return StepPlan(summary=f"Wait {a.duration_s:g} s")


STEPS: dict[str, Step] = {
    RolloutUndoArgs.kind: StepKind(RolloutUndoArgs, _plan_rollout_undo, _rollout_undo),
    ScaleArgs.kind: StepKind(ScaleArgs, _plan_scale, _scale),
    RestartArgs.kind: StepKind(RestartArgs, _plan_restart, _restart),
    RolloutStatusArgs.kind: StepKind(RolloutStatusArgs, _plan_read, _rollout_status),
    PodsArgs.kind: StepKind(PodsArgs, _plan_read, _pods),
    LogsArgs.kind: StepKind(LogsArgs, _plan_read, _logs),
    HttpRequestArgs.kind: StepKind(HttpRequestArgs, _plan_request, _request),
    PrometheusQueryArgs.kind: StepKind(PrometheusQueryArgs, _plan_query, _query),
    ApprovalArgs.kind: StepKind(ApprovalArgs, _plan_approval),
    NotifyArgs.kind: StepKind(NotifyArgs, _plan_notify),
    WaitArgs.kind: StepKind(WaitArgs, _plan_wait),
}
CHANGES = (RolloutUndoArgs.kind, ScaleArgs.kind, RestartArgs.kind)  # planned first, then applied with the plan
