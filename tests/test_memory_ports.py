"""The real workflows on the time-skipping server, with the in-memory fake of each port
(tests/fakes/memory.py) instead of HTTP fakes: what a port promises is all a workflow relies on.

A runbook rolls back a deployment on the in-memory Cluster (its apply retried after success changes
nothing twice), calls the in-memory Probe and verifies a metric; the incident channel lives in the
in-memory Chat and stops cleanly when the channel is gone; pages reach the in-memory Pager, and a
channel that refuses for good does not stop the escalation.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from activities import errors
from activities.steps import RunbookSteps
from domain.config import IncidentflowConfig, Settings
from domain.models import AckInput, DeclareInput, EventKind, NotifyInput, Severity, StatusUpdateInput
from domain.models.runbook import Decision, RunStatus
from incidentflow.client import Incidents
from tests.fakes.memory import (
    MemoryChat,
    MemoryCluster,
    MemoryDirectory,
    MemoryNotifier,
    MemoryPager,
    MemoryProbe,
)
from tests.helpers import events, eventually
from workers.main import build_worker

CONFIG = IncidentflowConfig.model_validate({
    "people": [{"id": "alice", "name": "Alice"}, {"id": "bob", "name": "Bob"}, {"id": "carol", "name": "Carol"}],
    "services": [{"name": "checkout", "escalation_policy": "two-level"}],
    "escalation_policies": [{"name": "two-level", "levels": [
        # 7 minutes, not the 10 of SEV2's first status update: the time-skipping server strands a run whose
        # workflow task cancels a timer that fired while the task was with the worker (sdk-java#3088), and
        # two timers due the same instant make that likely.
        {"name": "L1", "wait": "7m", "targets": [{"person": "carol"}]},
        {"name": "L2", "wait": "10m", "targets": [{"person": "bob"}]}]}],
})
RUNBOOK = """\
name: roll-back-and-verify
title: Roll back checkout and verify
approvers: [ic]
steps:
  - {kind: kubernetes.pods, namespace: shop, selector: app=checkout}
  - {kind: approval, prompt: "Roll back shop/checkout?"}
  - {kind: kubernetes.rollout_undo, name: rollback, namespace: shop, deployment: checkout}
  - {kind: kubernetes.rollout_status, namespace: shop, deployment: checkout, timeout: 2m}
  - {kind: http.request, name: disable, method: POST, url: "https://flags.example/flags/new-checkout/disable"}
  - {kind: prometheus.query, name: verify, query: error_ratio, until: "< 0.01", timeout: 2m, interval: 1s}
"""


@dataclass
class Ports:
    cluster: MemoryCluster = field(default_factory=MemoryCluster)
    probe: MemoryProbe = field(default_factory=MemoryProbe)
    chat: MemoryChat = field(default_factory=MemoryChat)
    pager: MemoryPager = field(default_factory=MemoryPager)
    notifier: MemoryNotifier = field(default_factory=MemoryNotifier)


class FailAfterSuccess(Interceptor):
    """The first attempt of each `apply_step` of `kind` does its work, then "crashes" before reporting."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.failed = 0

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        outer = self

        class Inbound(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput) -> Any:
                result = await super().execute_activity(input)
                info, step = activity.info(), getattr(input.args[0], "step", None)
                if info.activity_type == "apply_step" and info.attempt == 1 and step and step.kind == outer.kind:
                    outer.failed += 1
                    raise RuntimeError("worker lost after the change, before reporting it")
                return result
        return Inbound(next)


@asynccontextmanager
async def stack(env: WorkflowEnvironment, ports: Ports, tmp_path: Path,
                interceptors: tuple[Interceptor, ...] = (),
                config: IncidentflowConfig = CONFIG) -> AsyncIterator[Incidents]:
    """A worker whose every port is an in-memory fake (no Slack, no cluster, no HTTP anywhere)."""
    (tmp_path / "runbooks").mkdir(exist_ok=True)
    (tmp_path / "runbooks" / "roll-back-and-verify.yaml").write_text(RUNBOOK)
    settings = Settings(task_queue=f"mem-{uuid.uuid4().hex[:8]}", runbooks_dir=tmp_path / "runbooks")
    worker = build_worker(env.client, settings, ports.notifier, interceptors=interceptors, fail_fast=True,
                          pagers={"memory": ports.pager}, config=lambda: config, chat=ports.chat,
                          runbook_steps=RunbookSteps(ports.cluster, ports.probe, ports.probe),
                          directory=MemoryDirectory())
    async with worker:
        yield Incidents(env.client, settings, config)


async def declare(inc: Incidents, page: bool = False) -> str:
    return await inc.declare(DeclareInput(title="Checkout errors", severity=Severity.SEV2, service="checkout",
                                          declared_by="alice", commander="alice", page=page))


async def test_a_rollback_on_the_in_memory_cluster(ts_env: WorkflowEnvironment, tmp_path: Path) -> None:
    ports = Ports()
    ports.cluster.add_deployment("shop", "checkout", ["checkout:v1", "checkout:v2", "checkout:v3"])
    ports.probe.values["error_ratio"] = [0.2, 0.05, 0.004]
    crash = FailAfterSuccess("kubernetes.rollout_undo")
    async with stack(ts_env, ports, tmp_path, interceptors=(crash,)) as inc:
        iid = await declare(inc)
        run_id = (await inc.run_runbook(iid, "roll-back-and-verify", {}, by="alice")).ref
        assert run_id
        run = await eventually(lambda: inc.runbook_run(run_id), lambda r: r.status == RunStatus.awaiting_approval)
        assert [r.summary for r in run.results] == ["3 pods (3 ready) for app=checkout in shop"]
        assert ports.cluster.writes == [], "nothing changes before the approval"
        await inc.decide_runbook(run_id, Decision(by="alice", comment="go"))
        run = await eventually(lambda: inc.runbook_run(run_id), lambda r: r.ended_at is not None, timeout=60)
        assert run.status == RunStatus.succeeded, [(r.name, r.summary) for r in run.results]
        state = await inc.get(iid)
        texts = [e.text for e in state.timeline]
        posted = await eventually(lambda: _posted(ports.chat, iid),
                                  lambda posted: any("finished: 6 steps done" in t for t in posted))

    dep = ports.cluster.deployments["shop/checkout"]
    assert (dep.image, dep.revision) == ("checkout:v2", 4)
    assert crash.failed == 1 and ports.cluster.writes == ["rollback shop/checkout to 2"], \
        "the retried apply found the template already restored"
    by_name = {r.name: r for r in run.results}
    assert by_name["rollback"].data["target_revision"] == 2
    assert by_name["verify"].data["verified"] is True and ports.probe.queries == ["error_ratio"] * 3
    [(request, key)] = ports.probe.requests
    assert request.method == "POST" and key == f"{run_id}:4"
    # the retry's answer is what the run reports: the change was already there
    assert any("shop/checkout already at the template of revision 2 (nothing to do)" in t for t in texts)
    assert any("verification passed" in t for t in texts)
    assert [t for t in posted if t.startswith("Step ")] == [t for t in texts if t.startswith("Step ")], \
        "every step line reached the channel, in order"


async def _posted(chat: MemoryChat, incident_id: str) -> list[str]:
    return chat.texts(incident_id) if incident_id in chat.channels else []


async def test_chat_on_the_in_memory_port_stops_when_the_channel_is_gone(ts_env: WorkflowEnvironment,
                                                                         tmp_path: Path) -> None:
    ports = Ports()
    async with stack(ts_env, ports, tmp_path) as inc:
        iid = await declare(inc)
        state = await eventually(lambda: inc.get(iid), lambda s: s.chat is not None)
        assert state.chat is not None and state.chat.provider == "memory"
        assert ports.chat.channels[iid].members == ["alice"]
        await inc.post_status_update(iid, StatusUpdateInput(text="Index rebuilding", by="alice"))
        await eventually(lambda: _posted(ports.chat, iid), lambda posted: "Index rebuilding" in posted)

        ports.chat.failures.fail_next(errors.slack_rejected("channel_not_found", "channel_not_found", fatal=True))
        await inc.post_status_update(iid, StatusUpdateInput(text="Still rebuilding", by="alice"))
        state = await eventually(lambda: inc.get(iid), lambda s: s.chat is not None and s.chat.broken is not None)
        assert any("Channel updates stopped" in e.text for e in events(state, EventKind.warning))
        posted = len(ports.chat.texts(iid))
        result = await inc.acknowledge(iid, AckInput(by="bob"))  # the incident goes on; chat stays quiet
        assert result.text == "acknowledged by bob"
        await ts_env.sleep(timedelta(minutes=1))
        assert len(ports.chat.texts(iid)) == posted and "Still rebuilding" not in ports.chat.texts(iid)


async def test_pages_reach_the_in_memory_pager(ts_env: WorkflowEnvironment, tmp_path: Path) -> None:
    ports = Ports(pager=MemoryPager(refuse={"carol"}))  # carol's channel refuses for good
    async with stack(ts_env, ports, tmp_path) as inc:
        iid = await declare(inc, page=True)
        await ts_env.sleep(timedelta(minutes=8))
        state = await eventually(lambda: inc.get(iid), lambda s: bool(events(s, EventKind.page)))
    assert [r.target for r in ports.pager.sent] == ["bob"], "a refusal costs the level, not the escalation"
    assert ports.pager.sent[0].reason.startswith("L2")
    assert [e.text for e in events(state, EventKind.page)] == ["Paged bob (L2, person bob) via memory"]
    assert any(e.text.startswith("Could not page carol (L1)") and "memory cannot reach carol" in e.text
               for e in events(state, EventKind.warning))


class BlockingNotifier(MemoryNotifier):
    """Holds every notification until released: the incident's run loop waits on that activity meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting, self.release = asyncio.Event(), asyncio.Event()

    async def notify(self, message: NotifyInput) -> None:
        self.waiting.set()
        await self.release.wait()
        await super().notify(message)


async def test_an_ack_stops_the_paging_while_the_run_loop_waits_on_an_activity(ts_env: WorkflowEnvironment,
                                                                               tmp_path: Path) -> None:
    """The fault suite found it: an ack was applied at once, but the escalation was told only when the run
    loop got round to it, and the loop can wait a minute on a notification stranded on a killed worker."""
    ports = Ports(notifier=BlockingNotifier())
    slow = CONFIG.model_copy(update={"escalation_policies": [
        p.model_copy(update={"levels": [lv.model_copy(update={"wait": timedelta(minutes=30)}) for lv in p.levels]})
        for p in CONFIG.escalation_policies]})
    async with stack(ts_env, ports, tmp_path, config=slow) as inc:
        iid = await declare(inc, page=True)
        await eventually(lambda: inc.get(iid), lambda s: s.escalation_active and s.pages >= 1)
        await ts_env.sleep(timedelta(minutes=10, seconds=5))  # the first status-update reminder is due
        await asyncio.wait_for(ports.notifier.waiting.wait(), 30)  # the loop now waits on the notification
        await inc.acknowledge(iid, AckInput(by="alice"))
        state = await eventually(lambda: inc.get(iid), lambda s: not s.escalation_active, timeout=10)
        assert state.escalation is not None and state.escalation.finished == "acknowledged"
        assert not ports.notifier.release.is_set() and ports.notifier.delivered == [], \
            "the escalation stopped while the notification was still being sent"
        assert [p.target for p in ports.pager.sent if p.action == "trigger"] == ["carol"], "no level 2"
        ports.notifier.release.set()
