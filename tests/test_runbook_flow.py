"""Runbooks end to end: the real RunbookWorkflow on the time-skipping server, the official `kubernetes`
client against the fake Kubernetes API, httpx against fake flag and Prometheus services.

Approval granted / denied / timed out, every step kind, the retry-after-success case for rollback and
scale (an activity that did its change and then failed to report is retried: nothing changes twice),
auto-run of diagnostics when an alert matches, and clear errors from the cluster.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from domain.config import IncidentflowConfig
from domain.models import AlertSignal, DeclareInput, EventKind, Phase, Role, RoleInput, Severity
from domain.models.runbook import Decision, RunStatus
from incidentflow.client import CommandRejected, Incidents
from tests.conftest import running_worker
from tests.fakes.flags import FakeFlags
from tests.fakes.kubernetes import FakeKubernetes
from tests.fakes.prometheus import FakePrometheus
from tests.helpers import eventually
from workflows.incident_runbooks import TRIGGERS_FRESH

CONFIG = IncidentflowConfig.model_validate({
    "people": [{"id": "alice", "name": "Alice"}, {"id": "bob", "name": "Bob"}, {"id": "carol", "name": "Carol"}],
    "services": [{"name": "checkout"}],
    "groups": {"sre-leads": ["carol"]},
})
NS, DEPLOY = "payments", "checkout-service"
ERROR_RATIO = ('sum(rate(http_requests_total{service="checkout",code=~"5.."}[5m])) / '
               'sum(rate(http_requests_total{service="checkout"}[5m]))')

EVERYTHING = """\
name: everything
title: Every step kind
approvers: [ic, "group:sre-leads"]
approval_timeout: 10m
parameters:
  flags_url: {type: url, required: true, allowed_hosts: ["FLAGS_HOST"]}
  flag: {type: string, default: new-checkout}
steps:
  - {kind: kubernetes.pods, namespace: payments, selector: app=checkout-service}
  - {kind: kubernetes.logs, namespace: payments, selector: app=checkout-service, tail_lines: 5, max_bytes: 400}
  - kind: http.request
    name: read-flag
    url: "{{ flags_url }}/flags/{{ flag }}"
    headers: {Authorization: "Bearer ${secret:flags_token}"}
    expect_status: [200]
  - {kind: approval, prompt: "Scale, restart and disable {{ flag }}?"}
  - {kind: kubernetes.scale, name: scale, namespace: payments, deployment: checkout-service, factor: 2, max_replicas: 5}
  - {kind: kubernetes.restart, name: restart, namespace: payments, deployment: checkout-service}
  - {kind: kubernetes.rollout_status, namespace: payments, deployment: checkout-service, timeout: 2m}
  - kind: http.request
    name: disable
    method: POST
    url: "{{ flags_url }}/flags/{{ flag }}/disable"
    headers: {Authorization: "Bearer ${secret:flags_token}"}
    json: {incident: "{{ incident.id }}"}
  - {kind: notify, text: "Flag {{ flag }} is off; watching the error ratio"}
  - {kind: wait, duration: 5m}
  - kind: prometheus.query
    name: verify
    query: 'sum(rate(http_requests_total{service="checkout",code=~"5.."}[5m])) / sum(rate(http_requests_total{service="checkout"}[5m]))'
    until: "< 0.01"
    timeout: 2m
    interval: 1s
"""


@pytest.fixture
def fakes(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with FakeKubernetes() as kube, FakeFlags() as flags, FakePrometheus() as prom:
        kube.add_deployment(NS, DEPLOY, "registry.example/checkout:v3", replicas=3, revisions=3)
        flags.add_flag("new-checkout", enabled=True)
        extra = tmp_path / "runbooks"
        extra.mkdir()
        (extra / "everything.yaml").write_text(EVERYTHING.replace("FLAGS_HOST", flags.url))
        yield {"kube": kube, "flags": flags, "prom": prom, "settings": {
            "kubeconfig": str(kube.write_kubeconfig(tmp_path / "kubeconfig")), "runbooks_dir": str(extra),
            "prometheus_url": prom.base_url, "runbook_secrets": {"flags_token": {"value": flags.token, "hosts": [flags.url]}}}}


@asynccontextmanager
async def stack(env: WorkflowEnvironment, fakes: dict[str, Any], interceptors: Any = ()
                ) -> AsyncIterator[Incidents]:
    async with running_worker(env.client, config=lambda: CONFIG, interceptors=interceptors,
                              **fakes["settings"]) as (settings, _):
        yield Incidents(env.client, settings, CONFIG)


async def declare(inc: Incidents, service: str = "checkout") -> str:
    return await inc.declare(DeclareInput(title="Checkout errors", severity=Severity.SEV2, service=service,
                                          declared_by="alice", commander="alice", page=False))


async def awaiting(inc: Incidents, run_id: str) -> Any:
    return await eventually(lambda: inc.runbook_run(run_id), lambda r: r.status == RunStatus.awaiting_approval)


async def finished(inc: Incidents, run_id: str) -> Any:
    return await eventually(lambda: inc.runbook_run(run_id), lambda r: r.ended_at is not None, timeout=60)


def rollback_params() -> dict[str, str]:
    return {"namespace": NS, "deployment": DEPLOY}


async def test_rollback_waits_for_the_ic_then_rolls_back(ts_env: WorkflowEnvironment, fakes: dict[str, Any]) -> None:
    kube: FakeKubernetes = fakes["kube"]
    async with stack(ts_env, fakes) as inc:
        iid = await declare(inc)
        result = await inc.run_runbook(iid, "rollback-deployment", rollback_params(), by="bob")
        run_id = result.ref
        assert run_id == f"{iid}-runbook-1"
        await awaiting(inc, run_id)
        state = await inc.get(iid)
        assert state.phase == Phase.triage, "asking to roll back changes nothing yet, the phase included"
        asks = [e for e in state.timeline if e.kind == EventKind.approval]
        assert asks and asks[-1].ref == run_id and "the incident commander (alice)" in asks[-1].text
        assert not kube.writes(), "nothing changes before approval"

        with pytest.raises(CommandRejected, match="bob may not approve"):
            await inc.decide_runbook(run_id, Decision(by="bob"))
        await inc.decide_runbook(run_id, Decision(by="alice", comment="go"))
        run = await finished(inc, run_id)
        assert run.status == RunStatus.succeeded, run.results
        dep = kube.deployment(NS, DEPLOY)
        assert dep["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v2")
        assert kube.revision(NS, DEPLOY) == 4
        undo = next(r for r in run.results if r.kind == "kubernetes.rollout_undo")
        assert undo.status == "ok" and undo.data.get("target_revision") == 2
        phases = [e.text for e in (await inc.get(iid)).timeline if e.kind == EventKind.phase]
        assert phases == ["Phase triage → mitigating: runbook rollback-deployment applied its first change"]
        timeline = "\n".join(e.text for e in (await inc.get(iid)).timeline)
        assert "approved by alice at" in timeline and ": go" in timeline
        assert "from revision 3 to the template of revision 2" in timeline
        assert "image registry.example/checkout:v3 → registry.example/checkout:v2" in timeline
        assert "finished" in timeline


async def test_denied_and_timed_out_approvals_change_nothing(ts_env: WorkflowEnvironment,
                                                            fakes: dict[str, Any]) -> None:
    kube: FakeKubernetes = fakes["kube"]
    async with stack(ts_env, fakes) as inc:
        iid = await declare(inc)
        denied = (await inc.run_runbook(iid, "rollback-deployment", rollback_params(), by="alice")).ref
        await awaiting(inc, denied)
        await inc.decide_runbook(denied, Decision(approve=False, by="alice", comment="not the deploy"))
        run = await finished(inc, denied)
        assert run.status == RunStatus.denied and "denied by alice" in run.decisions[0]
        with pytest.raises(CommandRejected, match="nothing awaits approval"):
            await inc.decide_runbook(denied, Decision(by="alice"))

        timed = (await inc.run_runbook(iid, "scale-up", {"deployment": DEPLOY, "namespace": NS}, by="alice")).ref
        await awaiting(inc, timed)
        await ts_env.sleep(timedelta(minutes=16))  # the runbook's approval_timeout is 15m, outcome deny
        run = await finished(inc, timed)
        assert run.status == RunStatus.denied
        assert "no decision within 15 min" in run.decisions[0] and "on_approval_timeout: deny" in run.decisions[0]
        assert not kube.writes(), "neither run touched the cluster"
        state = await inc.get(iid)
        assert {r.run_id: r.status for r in state.runbooks} == {denied: RunStatus.denied, timed: RunStatus.denied}
        assert state.phase == Phase.triage, "a denied change leaves the phase where it was"


class FailAfterSuccess(Interceptor):
    """The activity does its work, then its first attempt "crashes" before reporting: Temporal retries."""

    def __init__(self, kinds: set[str]) -> None:
        self.kinds = kinds
        self.failed: list[str] = []

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        outer = self

        class Inbound(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput) -> Any:
                result = await super().execute_activity(input)
                info = activity.info()
                kind = getattr(input.args[0], "step", None)
                if (info.activity_type == "apply_step" and info.attempt == 1 and kind is not None
                        and kind.kind in outer.kinds):
                    outer.failed.append(kind.kind)
                    raise RuntimeError("worker lost after the change, before reporting it")
                return result
        return Inbound(next)


async def test_rollback_and_scale_retried_after_success_change_nothing_twice(
        ts_env: WorkflowEnvironment, fakes: dict[str, Any]) -> None:
    kube: FakeKubernetes = fakes["kube"]
    crash = FailAfterSuccess({"kubernetes.rollout_undo", "kubernetes.scale"})
    async with stack(ts_env, fakes, interceptors=[crash]) as inc:
        iid = await declare(inc)
        run_id = (await inc.run_runbook(iid, "rollback-deployment", rollback_params(), by="alice")).ref
        await awaiting(inc, run_id)
        await inc.decide_runbook(run_id, Decision(by="alice"))
        assert (await finished(inc, run_id)).status == RunStatus.succeeded
        assert kube.revision(NS, DEPLOY) == 4, "the retry did not undo the undo"
        assert kube.deployment(NS, DEPLOY)["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v2")

        run_id = (await inc.run_runbook(iid, "scale-up", {"deployment": DEPLOY, "namespace": NS, "replicas": "7"},
                                        by="alice")).ref
        await awaiting(inc, run_id)
        await inc.decide_runbook(run_id, Decision(by="alice"))
        run = await finished(inc, run_id)
        assert run.status == RunStatus.succeeded
        assert kube.deployment(NS, DEPLOY)["spec"]["replicas"] == 7
        scale = next(r for r in run.results if r.kind == "kubernetes.scale")
        assert scale.data.get("previous_replicas") == 3
    assert crash.failed == ["kubernetes.rollout_undo", "kubernetes.scale"], "each apply really was retried"
    template_writes = [w for w in kube.writes() if w.method == "PUT" and w.path.endswith(f"/deployments/{DEPLOY}")]
    assert len(template_writes) == 1, "one rollback write; the retry found the template already restored"


async def test_every_step_kind_with_a_group_approver(ts_env: WorkflowEnvironment, fakes: dict[str, Any]) -> None:
    kube, flags, prom = fakes["kube"], fakes["flags"], fakes["prom"]
    prom.set(ERROR_RATIO, [0.2, 0.05, 0.004])
    kube.set_logs(NS, DEPLOY, "\n".join(f"line {i}: upstream timeout" for i in range(50)))
    async with stack(ts_env, fakes) as inc:
        iid = await declare(inc)
        run_id = (await inc.run_runbook(iid, "everything", {"flags_url": flags.url}, by="alice")).ref
        run = await awaiting(inc, run_id)
        assert [r.kind for r in run.results] == ["kubernetes.pods", "kubernetes.logs", "http.request"]
        assert "ready" in run.results[0].summary and "checkout-service" in run.results[0].output
        assert "upstream timeout" in run.results[1].output and len(run.results[1].output) <= 600
        assert json.loads(run.results[2].output)["enabled"] is True
        await inc.decide_runbook(run_id, Decision(by="carol"))  # carol is in group sre-leads
        await eventually(lambda: inc.runbook_run(run_id), lambda r: any(x.kind == "notify" for x in r.results))
        await ts_env.sleep(timedelta(minutes=6))  # the `wait: 5m` step is a durable timer
        run = await finished(inc, run_id)
        assert run.status == RunStatus.succeeded, [(r.name, r.summary) for r in run.results]
        by_name = {r.name: r for r in run.results}
        assert by_name["scale"].data == {**by_name["scale"].data, "previous_replicas": 3, "replicas": 5}
        assert kube.deployment(NS, DEPLOY)["spec"]["replicas"] == 5
        annotations = kube.deployment(NS, DEPLOY)["spec"]["template"]["metadata"].get("annotations", {})
        assert "kubectl.kubernetes.io/restartedAt" in annotations
        assert flags.enabled("new-checkout") is False
        disable = [r for r in flags.requests if r.path.endswith("/disable")]
        assert len(disable) == 1 and disable[0].headers["authorization"] == f"Bearer {flags.token}"
        assert disable[0].headers.get("idempotency-key") == f"{run_id}:7"
        assert by_name["verify"].data["verified"] is True and prom.calls(ERROR_RATIO) == 3
        state = await inc.get(iid)
        texts = "\n".join(e.text for e in state.timeline)
        assert "Flag new-checkout is off" in texts and "verification passed" in texts
        assert flags.token not in json.dumps(state.model_dump(mode="json")), "secrets never reach history"
        history = await ts_env.client.get_workflow_handle(run_id).fetch_history()
        assert flags.token not in history.to_json()


async def test_cluster_errors_are_reported_clearly(ts_env: WorkflowEnvironment, fakes: dict[str, Any]) -> None:
    kube: FakeKubernetes = fakes["kube"]
    kube.forbid("patch", "deployments/scale")
    kube.forbid("update", "deployments/scale")
    async with stack(ts_env, fakes) as inc:
        iid = await declare(inc)
        run_id = (await inc.run_runbook(iid, "scale-up", {"deployment": DEPLOY, "namespace": NS}, by="alice")).ref
        await awaiting(inc, run_id)
        await inc.decide_runbook(run_id, Decision(by="alice"))
        run = await finished(inc, run_id)
        assert run.status == RunStatus.failed
        failed = next(r for r in run.results if r.status == "failed")
        assert "403" in failed.summary and "forbidden" in failed.summary.lower()
        warnings = [e.text for e in (await inc.get(iid)).timeline if e.kind == EventKind.warning]
        assert any("failed" in w and "403" in w for w in warnings)
        assert any("Escalation:" in w for w in warnings), "a failed runbook shows its escalation text"
        missing = (await inc.run_runbook(iid, "rollback-deployment", {"deployment": "nope", "namespace": NS},
                                         by="alice")).ref
        await awaiting(inc, missing)
        await inc.decide_runbook(missing, Decision(by="alice"))
        run = await finished(inc, missing)
        assert run.status == RunStatus.failed and "404" in run.results[-1].summary


async def test_the_ic_changing_changes_who_may_approve(ts_env: WorkflowEnvironment, fakes: dict[str, Any]) -> None:
    async with stack(ts_env, fakes) as inc:
        iid = await declare(inc)
        run_id = (await inc.run_runbook(iid, "rollback-deployment", rollback_params(), by="alice")).ref
        await awaiting(inc, run_id)
        await inc.assign_role(iid, RoleInput(role=Role.ic, person="bob", by="alice"))
        await eventually(lambda: inc.runbook_run(run_id), lambda r: r.commander == "bob")
        with pytest.raises(CommandRejected, match="alice may not approve"):
            await inc.decide_runbook(run_id, Decision(by="alice"))
        await inc.decide_runbook(run_id, Decision(by="bob"))
        assert (await finished(inc, run_id)).status == RunStatus.succeeded


async def test_a_matching_alert_runs_the_diagnostics_only(ts_env: WorkflowEnvironment, fakes: dict[str, Any]) -> None:
    kube, prom = fakes["kube"], fakes["prom"]
    prom.set(ERROR_RATIO, 0.08)
    async with stack(ts_env, fakes) as inc:
        iid = await declare(inc)
        await inc.raise_alert(iid, AlertSignal(source="alertmanager", fingerprint="abc", title="CheckoutHighErrorRate",
                                               labels={"alertname": "CheckoutHighErrorRate", "service": "checkout"}))
        state = await eventually(lambda: inc.get(iid), lambda s: bool(s.runbooks) and s.runbooks[0].status
                                 in (RunStatus.succeeded, RunStatus.failed))
        run = await inc.runbook_run(state.runbooks[0].run_id)
        assert run.runbook == "checkout-high-error-rate" and run.auto
        assert [r.status for r in run.results] == ["ok"] * 3 + ["skipped"] * 4, run.results
        assert "0.08" in run.results[2].summary
        assert not [r for r in run.results if r.kind == "kubernetes.rollout_undo" and r.status == "ok"]
        assert not kube.writes(), "an alert never changes the cluster by itself"
        assert state.phase == Phase.triage, "diagnostics do not move the phase"
        # the same alert firing again does not start the runbook twice
        await inc.raise_alert(iid, AlertSignal(source="alertmanager", fingerprint="def", title="CheckoutHighErrorRate",
                                               labels={"alertname": "CheckoutHighErrorRate", "service": "checkout"}))
        await eventually(lambda: inc.get(iid), lambda s: s.alerts_received == 2)
        assert len((await inc.get(iid)).runbooks) == 1


async def test_only_an_alert_a_runbook_could_match_costs_a_match(ts_env: WorkflowEnvironment,
                                                                  fakes: dict[str, Any]) -> None:
    """Code level 3: the incident asks once which auto-run runbooks could apply to it, checks each new alert against
    their matchers itself, and asks `match_runbooks` only on a hit (each match was an activity and a workflow task
    per alert); it asks again once its answer is older than TRIGGERS_FRESH."""
    fakes["prom"].set(ERROR_RATIO, 0.02)
    async with stack(ts_env, fakes) as inc:
        iid = await declare(inc)

        async def alert(n: int, name: str) -> None:
            await inc.raise_alert(iid, AlertSignal(source="alertmanager", fingerprint=f"fp-{n}", title=name,
                                                   labels={"alertname": name, "instance": f"web-{n}"}))

        async def scheduled() -> Counter[str]:
            history = await ts_env.client.get_workflow_handle(iid).fetch_history()
            return Counter(e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
                           if e.HasField("activity_task_scheduled_event_attributes"))

        for n in range(3):
            await alert(n, "DiskFull")
        await eventually(lambda: inc.get(iid), lambda st: st.alerts_received == 3 and st.runbook_triggers is not None)
        assert (await scheduled())["match_runbooks"] == 0 and (await scheduled())["runbook_triggers"] == 1
        await alert(3, "CheckoutHighErrorRate")  # the incident's service fills in `service`: the runbook applies
        state = await eventually(lambda: inc.get(iid), lambda st: bool(st.runbooks))
        assert state.runbooks[0].runbook == "checkout-high-error-rate" and state.runbooks[0].auto
        await alert(4, "CheckoutHighErrorRate")  # it has run: nothing could start, nothing to ask
        await eventually(lambda: inc.get(iid), lambda st: st.alerts_received == 5)
        assert (await scheduled())["match_runbooks"] == 1
        await ts_env.sleep(TRIGGERS_FRESH + timedelta(minutes=1))
        await alert(5, "DiskFull")
        await eventually(lambda: inc.get(iid), lambda st: st.alerts_received == 6)
        counts = await eventually(scheduled, lambda c: c["runbook_triggers"] == 2)
        assert counts["match_runbooks"] == 1 and len((await inc.get(iid)).runbooks) == 1


async def test_an_alert_for_checkout_service_runs_the_checkout_diagnostics_on_its_labels(
        ts_env: WorkflowEnvironment, fakes: dict[str, Any]) -> None:
    """The shipped runbook on a service named checkout-service whose metric labels the status `status`."""
    kube, prom = fakes["kube"], fakes["prom"]
    ratio = ('sum(rate(http_requests_total{service="checkout-service",status=~"5.."}[5m])) / '
             'sum(rate(http_requests_total{service="checkout-service"}[5m]))')
    prom.set(ratio, 0.3)
    async with stack(ts_env, fakes) as inc:
        iid = await declare(inc, service="checkout-service")
        await inc.raise_alert(iid, AlertSignal(source="alertmanager", fingerprint="cs", title="HighErrorRate",
                                               labels={"alertname": "HighErrorRate", "namespace": NS,
                                                       "status_label": "status"}))
        state = await eventually(lambda: inc.get(iid), lambda s: bool(s.runbooks) and s.runbooks[0].status
                                 in (RunStatus.succeeded, RunStatus.failed))
        run = await inc.runbook_run(state.runbooks[0].run_id)
        assert run.runbook == "checkout-high-error-rate"
        assert [r.status for r in run.results[:3]] == ["ok"] * 3, run.results
        assert run.results[0].data["pods"] == 3 and "app=checkout-service" in run.results[0].summary
        assert "0.3" in run.results[2].summary and prom.calls(ratio) == 1
        assert not kube.writes()
