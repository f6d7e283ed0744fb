"""A worker SIGKILLed in the middle of a runbook, and restarted: the run resumes, no completed step repeats.

Real processes against the session dev server, like tests/test_escalation_durability.py: worker A
(`incidentflow worker`) runs an approved runbook (scale to 5 → wait for the rollout → restart → wait for
the rollout) against the fake Kubernetes API in this process. The fake's rollout takes 6 s, so worker A
is inside the first `kubernetes.rollout_status` (a heartbeating activity) when it is SIGKILLed; the scale
is done. Worker B, started right away with the same settings, must finish the run: the rollout wait is
retried once its heartbeat times out on the server, and the scale is neither planned nor applied again.

Timing: nothing tells the server that worker A died, so the interrupted attempt only ends when its
heartbeat timeout (workflows/runbook.py: 60 s for long-running steps) expires; the retry follows ~1 s
later. The test prints how long the run took from the kill to success.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.kube_templates import RESTARTED_AT
from domain.config import Settings, load_config
from domain.models import DeclareInput, Severity
from domain.models.runbook import Decision, RunbookState, RunStatus
from incidentflow.client import Incidents
from tests.fakes.kubernetes import FakeKubernetes, RecordedRequest
from tests.helpers import eventually
from tests.test_escalation_durability import kill, start_worker, wait_polling

NS, NAME = "shop", "checkout"
DEPLOYMENT_PATH = f"/apis/apps/v1/namespaces/{NS}/deployments/{NAME}"
ROLLOUT_DELAY = 6.0  # the fake's rollouts take this long: the kill lands inside the first rollout wait
RUNBOOK_NAME = "durable-scale-restart"

CONFIG = """\
people:
  - {id: alice, name: Alice Chen}
  - {id: bob, name: Bob Okafor}
services:
  - {name: checkout}
"""

RUNBOOK = """\
name: durable-scale-restart
title: Scale up, then restart
approvers: [ic]
approval_timeout: 10m
parameters:
  namespace: {type: string, default: shop}
  deployment: {type: string, default: checkout}
steps:
  - {kind: approval, name: approve, prompt: "Scale {{ namespace }}/{{ deployment }} to 5 and restart it?"}
  - {kind: kubernetes.scale, name: scale, namespace: "{{ namespace }}", deployment: "{{ deployment }}", replicas: 5}
  - {kind: kubernetes.rollout_status, name: wait-scale, namespace: "{{ namespace }}",
     deployment: "{{ deployment }}", timeout: 2m}
  - {kind: kubernetes.restart, name: restart, namespace: "{{ namespace }}", deployment: "{{ deployment }}"}
  - {kind: kubernetes.rollout_status, name: wait-restart, namespace: "{{ namespace }}",
     deployment: "{{ deployment }}", timeout: 2m}
"""
STEPS = ["approve", "scale", "wait-scale", "restart", "wait-restart"]


def scale_writes(fake: FakeKubernetes) -> list[RecordedRequest]:
    """Successful writes that set the replica count: the scale subresource, or spec.replicas directly."""
    out = []
    for w in fake.writes():
        body = w.body if isinstance(w.body, dict) else {}
        if w.path == f"{DEPLOYMENT_PATH}/scale" or (w.path == DEPLOYMENT_PATH
                                                     and "replicas" in (body.get("spec") or {})):
            out.append(w)
    return out


def restart_writes(fake: FakeKubernetes) -> list[RecordedRequest]:
    return [w for w in fake.writes() if RESTARTED_AT.encode() in w.raw]


def rollout_polls_after(fake: FakeKubernetes, since: float) -> list[RecordedRequest]:
    """Reads of the deployment itself (what rollout_status polls) answered after `since`."""
    return [r for r in list(fake.requests) if r.method == "GET" and r.path == DEPLOYMENT_PATH and r.at > since]


@pytest.mark.timeout(300)
async def test_worker_killed_mid_runbook_resumes_without_repeating_a_step(
        dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    client = dev_env.client
    task_queue = f"rbkill-{uuid.uuid4().hex[:8]}"
    config_path = tmp_path / "config.yaml"
    config_path.write_text(CONFIG)
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    (runbooks / f"{RUNBOOK_NAME}.yaml").write_text(RUNBOOK)
    log = tmp_path / "workers.log"

    fake = FakeKubernetes()
    fake.start()
    fake.add_deployment(NS, NAME, "registry.example/checkout:v2", replicas=3, revisions=2)
    kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    fake.rollout_delay = ROLLOUT_DELAY

    incidents = Incidents(client, Settings(task_queue=task_queue, runbooks_dir=runbooks), load_config(config_path))
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIDENTFLOW_")}
    env.update({"INCIDENTFLOW_TEMPORAL_ADDRESS": client.service_client.config.target_host,
                "INCIDENTFLOW_TASK_QUEUE": task_queue, "INCIDENTFLOW_CONFIG": str(config_path),
                "INCIDENTFLOW_KUBECONFIG": str(kubeconfig), "INCIDENTFLOW_RUNBOOKS_DIR": str(runbooks),
                "INCIDENTFLOW_LOG_LEVEL": "INFO"})
    worker_a = worker_b = None
    iid: str | None = None
    run_id: str | None = None
    try:
        worker_a = start_worker(env, log)
        await wait_polling(client, task_queue, worker_a, log)
        iid = await incidents.declare(DeclareInput(title="Checkout saturated", severity=Severity.SEV2,
                                                   service="checkout", declared_by="alice", commander="alice",
                                                   page=False))
        run_id = (await incidents.run_runbook(iid, RUNBOOK_NAME, {}, by="alice")).ref
        assert run_id
        await eventually(lambda: incidents.runbook_run(run_id),
                         lambda r: r.status == RunStatus.awaiting_approval, timeout=30)
        assert not fake.writes(), "nothing changes before the approval"
        await incidents.decide_runbook(run_id, Decision(by="alice", comment="go"))

        # the scale is done and the first rollout wait has started polling: that is where A dies
        deadline = time.monotonic() + 30
        while not (scale_writes(fake) and rollout_polls_after(fake, scale_writes(fake)[0].at)):
            assert time.monotonic() < deadline, (
                f"no scale followed by a rollout poll within 30 s; requests: "
                f"{[(r.method, r.path, r.status) for r in fake.requests]}\n{log.read_text()}")
            await asyncio.sleep(0.05)
        scaled_at = scale_writes(fake)[0].at
        before: RunbookState = await incidents.runbook_run(run_id)  # a query: worker A still answers
        assert [r.name for r in before.results] == ["approve", "scale"], before.results
        assert before.status == RunStatus.running
        status = fake.deployment(NS, NAME).get("status") or {}
        assert status.get("updatedReplicas") != 5, f"the rollout finished before the kill: {status}"
        kill(worker_a)
        killed_at = time.monotonic()
        assert killed_at - scaled_at < ROLLOUT_DELAY, "killed too late: the rollout wait may have finished"
        fake.rollout_delay = 1.0  # the restart's rollout need not be slow: the kill is behind us

        worker_b = start_worker(env, log)
        await wait_polling(client, task_queue, worker_b, log)
        run = await eventually(lambda: incidents.runbook_run(run_id), lambda r: r.ended_at is not None,
                               timeout=180, interval=0.5)
        took = time.monotonic() - killed_at
        print(f"\nkilled {killed_at - scaled_at:.2f} s after the scale; run {run.status.value} "
              f"{took:.1f} s after the kill")
        assert run.status == RunStatus.succeeded, (run.status, [(r.name, r.status, r.summary) for r in run.results],
                                                   log.read_text())

        # each step ran, and is recorded, exactly once
        assert [(r.name, r.status) for r in run.results] == [(n, "ok") for n in STEPS], run.results
        by_name = {r.name: r for r in run.results}
        assert by_name["scale"].data.get("previous_replicas") == 3 and by_name["scale"].data.get("replicas") == 5
        assert by_name["restart"].data.get("changed") is True

        # the cluster saw one scale and one restart
        scales = scale_writes(fake)
        assert len(scales) == 1, [(w.method, w.path, w.body) for w in scales]
        assert scales[0].method == "PATCH" and scales[0].body == {"spec": {"replicas": 5}}
        restarts = restart_writes(fake)
        assert len(restarts) == 1, [(w.method, w.path, w.body) for w in restarts]
        assert len(fake.writes()) == 2, [(w.method, w.path) for w in fake.writes()]
        dep = fake.deployment(NS, NAME)
        assert dep["spec"]["replicas"] == 5
        assert fake.revision(NS, NAME) == 3, "one new revision, from the one restart"
        assert len(fake.replicasets(NS, NAME)) == 3
        stamp = restarts[0].body["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
        assert dep["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == stamp

        # the history shows the kill hit the rollout wait: one attempt timed out on its heartbeat
        history = await client.get_workflow_handle(run_id).fetch_history()
        scheduled = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
        types = [e.activity_task_scheduled_event_attributes.activity_type.name for e in scheduled]
        assert sorted(types) == sorted(["plan_step", "apply_step", "apply_step", "plan_step", "apply_step",
                                        "apply_step"]), types
        retried = [e.activity_task_started_event_attributes for e in history.events
                   if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
                   and e.activity_task_started_event_attributes.attempt > 1]
        beats = [e.activity_task_scheduled_event_attributes.heartbeat_timeout.ToTimedelta().total_seconds()
                 for e in scheduled]
        print(f"heartbeat timeouts of the scheduled activities: {beats}")
        assert len(retried) == 1, [(a.attempt, a.last_failure.message) for a in retried]
        assert retried[0].attempt == 2
        assert retried[0].last_failure.timeout_failure_info.timeout_type == TimeoutType.TIMEOUT_TYPE_HEARTBEAT, \
            retried[0].last_failure

        # the incident's timeline tells each step once
        state = await incidents.get(iid)
        texts = [e.text for e in state.timeline if e.ref == run_id]
        for i in range(2, len(STEPS) + 1):
            lines = [t for t in texts if t.startswith(f"Step {i}/{len(STEPS)} ")]
            assert len(lines) == 1, (i, texts)
        assert not [t for t in texts if t.startswith("Step 1/")], texts  # approvals have their own lines
        assert sum(t.startswith(f"Runbook {RUNBOOK_NAME} started") for t in texts) == 1, texts
        assert sum("approved by alice" in t for t in texts) == 1, texts
        assert sum(t.startswith(f"Runbook {RUNBOOK_NAME} finished: 5 steps done") for t in texts) == 1, texts
        assert not [t for t in texts if "failed" in t], texts
        assert worker_b.poll() is None, f"worker B died:\n{log.read_text()}"
    finally:
        kill(worker_a)
        kill(worker_b)
        for workflow_id in [w for w in (run_id, iid) if w]:
            try:
                await client.get_workflow_handle(workflow_id).terminate("test finished")
            except RPCError:
                pass  # already closed
        fake.stop()
