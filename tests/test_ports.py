"""The activities layer's contract: one typed step table covering every step kind, errors classified
in one place and named by every retry policy, vendor SDKs loaded only by their adapters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities import errors
from activities.steps import STEPS, RunbookSteps
from domain.models.runbook import RenderedStep, StepInput, StepPlan
from domain.runbooks.steps import STEP_KINDS
from tests.fakes.memory import MemoryCluster, MemoryProbe
from workflows import options

ROOT = Path(__file__).resolve().parent.parent


def test_the_step_table_covers_every_kind_a_runbook_can_have() -> None:
    assert set(STEPS) == set(STEP_KINDS)


def step(kind: str, **args: object) -> RenderedStep:
    return RenderedStep(index=0, name="s", kind=kind, title=kind, destructive=False, diagnostic=True, args=args)


async def test_steps_read_their_arguments_through_the_model_of_their_kind() -> None:
    cluster = MemoryCluster()
    cluster.add_deployment("shop", "checkout", ["checkout:v1", "checkout:v2"], replicas=2)
    steps = RunbookSteps(cluster, probe := MemoryProbe(), probe)
    plan = await steps.plan(step("kubernetes.scale", namespace="shop", deployment="checkout", replicas=None,
                                 factor=2, max_replicas=3))
    assert plan.data == {"previous_replicas": 2, "replicas": 3, "capped": True}
    wait = await steps.plan(step("wait", duration_s=300.0))
    assert wait == StepPlan(summary="Wait 300 s")
    query = await steps.plan(step("prometheus.query", query="up", until={"op": "<", "threshold": 0.5},
                                  timeout_s=120.0, interval_s=5.0))
    assert query.summary == "Query Prometheus until < 0.5 (at most 120 s)"

    with pytest.raises(ApplicationError) as err:  # a step whose arguments do not fit fails once, clearly
        await steps.plan(step("kubernetes.scale", deployment="checkout"))
    assert (err.value.type, err.value.non_retryable) == (errors.BAD_STEP, True) and "namespace" in err.value.message
    with pytest.raises(ApplicationError) as err:
        await steps.plan(step("kubernetes.explode"))
    assert (err.value.type, err.value.non_retryable) == (errors.UNKNOWN_STEP, True)
    with pytest.raises(ApplicationError) as err:  # the workflow runs approvals itself
        await steps.apply(StepInput(run_id="r", incident_id="i", step=step("approval", prompt="ok?")))
    assert err.value.message == "step kind 'approval' does not run as an activity"
    with pytest.raises(ApplicationError) as err:
        await steps.apply(StepInput(run_id="r", incident_id="i",
                                    step=step("kubernetes.rollout_undo", namespace="shop", deployment="checkout")))
    assert (err.value.type, err.value.non_retryable) == (errors.MISSING_PLAN, True)
    with pytest.raises(ApplicationError) as err:
        await RunbookSteps(None, probe, probe).plan(step("kubernetes.pods", namespace="shop", selector="app=x"))
    assert (err.value.type, err.value.non_retryable) == (errors.NOT_CONFIGURED, True)


def test_every_retry_policy_names_the_non_retryable_types() -> None:
    policies = [o["retry_policy"] for o in (options.NOTIFY, options.CONFIG, options.PAGE, options.CHAT,
                                            options.MATCH)] + [options.STEP_RETRY]
    for policy in policies:
        assert policy.non_retryable_error_types == list(errors.NON_RETRYABLE_TYPES)
    assert not {errors.RATE_LIMITED, errors.UNAVAILABLE, errors.KUBE_UNAVAILABLE} & set(errors.NON_RETRYABLE_TYPES)


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (500, True), (503, True), (408, True),
                                                   (400, False), (401, False), (403, False), (404, False),
                                                   (422, False)])
def test_statuses_are_split_once_for_every_vendor(status: int, retryable: bool) -> None:
    made = [errors.classify_http(status, None, "Vendor", ""),
            errors.kubernetes_error(status, f"{status}", "get deployments/x in y", None),
            errors.slack_error("chat.postMessage", status, f"http_{status}", None)]
    for err in made:
        assert err.non_retryable is not retryable, (status, err.type)
        assert (err.type in errors.NON_RETRYABLE_TYPES) is not retryable, (status, err.type)
    conflict = errors.kubernetes_error(409, "409 Conflict", "update deployments/x in y", None)
    assert conflict.type == errors.KUBE_UNAVAILABLE and not conflict.non_retryable  # re-read, then retry


def test_modules_the_workflows_import_load_no_vendor_sdk() -> None:
    modules = ["activities.notify", "activities.paging", "activities.runbook", "activities.chat",
               "activities.handoff", "activities.ports", "activities.errors", "workflows.options"]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
            + "print(sorted(m for m in ('kubernetes', 'slack_sdk', 'aiohttp') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
