"""A worker SIGKILLed while an escalation waits, and restarted: level 2 is paged on time, nobody twice.

Real processes against the real dev server: worker A (`incidentflow worker`) pages L1 and is killed
with SIGKILL two seconds into the 8 s wait; worker B, started a moment later with the same settings,
must page L2 when the wait ends and page nobody a second time. PagerDuty is the loopback fake, which
timestamps every request as it arrives.

Timing: the timer fires on the server at the planned minute, but the workflow task it produces is
first offered to worker A's *sticky* queue. The worker sets `sticky_queue_schedule_to_start_timeout`
to 1 s (workers/main.py; the SDK default of 10 s made L2 arrive ~10 s late after a kill), so the task
moves to worker B within about a second and the ±2 s requirement holds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from domain.config import Settings, load_config
from domain.models import AckInput, DeclareInput, EventKind, Severity
from incidentflow.client import Incidents
from tests.fakes.pagerduty import FakePagerDuty, RecordedRequest
from tests.helpers import events, eventually

ROOT = Path(__file__).parent.parent
L1_WAIT = 8.0  # seconds between the L1 page and the L2 page, from the policy below
TOLERANCE = 2.0  # the requirement: L2 within ±2 s of the planned time on the dev server
STICKY_DELAY = 0.0  # workers/main.py keeps the sticky schedule-to-start timeout at 1 s
KILL_AFTER = 2.0  # SIGKILL worker A this long after the L1 page arrived (well inside the 8 s wait)
RESTART_AFTER = 1.5  # start worker B this long after A died

CONFIG = """\
people:
  - {{id: alice, name: Alice Chen, notify: [pagerduty]}}
  - {{id: bob, name: Bob Okafor, notify: [pagerduty]}}
services:
  - {{name: {service}, escalation_policy: kill-test}}
escalation_policies:
  - name: kill-test
    levels:
      - {{name: primary, wait: 8s, targets: [{{person: alice}}]}}
      - {{name: secondary, wait: 1h, targets: [{{person: bob}}]}}
"""


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "incidentflow.cli", "worker"], env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)


async def poller_identities(client: Client, task_queue: str) -> set[str]:
    resp = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace="default", task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
    return {p.identity for p in resp.pollers}


async def wait_polling(client: Client, task_queue: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until this very process (the SDK's identity is `pid@host`) polls the task queue."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"worker exited early ({proc.returncode}):\n{log.read_text()}"
        if any(i.startswith(f"{proc.pid}@") for i in await poller_identities(client, task_queue)):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"worker {proc.pid} not polling {task_queue} within 30 s:\n{log.read_text()}")


def triggers(pd: FakePagerDuty) -> list[RecordedRequest]:
    return [r for r in list(pd.requests) if r.status == 202 and r.json.get("event_action") == "trigger"]


def details(request: RecordedRequest) -> dict[str, Any]:
    return dict(request.json["payload"]["custom_details"])


async def wait_trigger(pd: FakePagerDuty, level: int, target: str, timeout: float, log: Path) -> RecordedRequest:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in triggers(pd) if (details(r)["level"], details(r)["target"]) == (level, target)]
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no L{level} page to {target} within {timeout} s; PagerDuty got "
                         f"{[r.json for r in pd.requests]}\nworker log:\n{log.read_text()}")


def kill(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


@dataclass
class Rig:
    """Worker processes of one task queue with the kill-test policy, paging the PagerDuty fake."""

    client: Client
    incidents: Incidents
    pd: FakePagerDuty
    env: dict[str, str]
    log: Path
    task_queue: str
    service: str
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    iid: str | None = None

    async def start_worker(self) -> subprocess.Popen[bytes]:
        """A new `incidentflow worker` process, once it polls the task queue."""
        proc = start_worker(self.env, self.log)
        self.workers.append(proc)
        await wait_polling(self.client, self.task_queue, proc, self.log)
        return proc

    async def declare(self) -> str:
        self.iid = await self.incidents.declare(DeclareInput(title="Checkout failing", severity=Severity.SEV2,
                                                             service=self.service, declared_by="pat"))
        return self.iid


@asynccontextmanager
async def kill_rig(dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Rig]:
    """The rig; at the end every worker it started is killed, its incident terminated, the fake stopped."""
    client = dev_env.client
    service = f"svc-{uuid.uuid4().hex[:8]}"
    task_queue = f"kill-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(service=service))
    pd = FakePagerDuty()
    pd.start()
    env = {**os.environ, "INCIDENTFLOW_TEMPORAL_ADDRESS": client.service_client.config.target_host,
           "INCIDENTFLOW_TASK_QUEUE": task_queue, "INCIDENTFLOW_CONFIG": str(config),
           "INCIDENTFLOW_PAGERDUTY_EVENTS_URL": pd.url,
           "INCIDENTFLOW_PAGERDUTY_DEFAULT_ROUTING_KEY": pd.routing_key(), "INCIDENTFLOW_LOG_LEVEL": "INFO"}
    env.pop("INCIDENTFLOW_PAGERDUTY_ROUTING_KEYS", None)
    rig = Rig(client, Incidents(client, Settings(task_queue=task_queue), load_config(config)), pd, env,
              tmp_path / "workers.log", task_queue, service)
    try:
        yield rig
    finally:
        for proc in rig.workers:
            kill(proc)
        if rig.iid:
            try:
                await client.get_workflow_handle(rig.iid).terminate("test finished")
            except RPCError:
                pass  # already closed
        pd.stop()


@pytest.mark.timeout(120)
async def test_worker_killed_during_escalation_wait_pages_level_2_once_on_time(
        dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    async with kill_rig(dev_env, tmp_path) as rig:
        pd, log, incidents = rig.pd, rig.log, rig.incidents
        worker_a = await rig.start_worker()
        iid = await rig.declare()

        l1 = await wait_trigger(pd, 1, "alice", 20, log)
        await asyncio.sleep(max(0.0, l1.at + KILL_AFTER - time.monotonic()))
        assert not [r for r in triggers(pd) if details(r)["level"] != 1], "L2 paged before the kill"
        kill(worker_a)  # SIGKILL: no graceful shutdown, its sticky poll and cache die with it
        killed_at = time.monotonic()
        await asyncio.sleep(RESTART_AFTER)
        worker_b = await rig.start_worker()
        restarted_at = time.monotonic()

        planned = l1.at + L1_WAIT
        l2 = await wait_trigger(pd, 2, "bob", max(0.0, planned - time.monotonic()) + STICKY_DELAY + 10, log)
        late = l2.at - planned
        print(f"\nL1 page → kill {killed_at - l1.at:.2f} s, worker B polling at +{restarted_at - l1.at:.2f} s; "
              f"L2 page at +{l2.at - l1.at:.2f} s: {late:+.2f} s against the planned +{L1_WAIT:.0f} s")
        assert -TOLERANCE <= late <= STICKY_DELAY + TOLERANCE, (
            f"L2 paged {late:+.2f} s off its planned time (allowed: ±{TOLERANCE} s, plus {STICKY_DELAY} s "
            f"of sticky-queue timeout)\n{log.read_text()}")

        # nobody twice: one trigger per (level, target), every one on the same PagerDuty incident
        sent = Counter((details(r)["level"], details(r)["target"]) for r in triggers(pd))
        assert sent == Counter({(1, "alice"): 1, (2, "bob"): 1}), f"triggers sent: {dict(sent)}"
        assert all(r.status == 202 for r in pd.requests), [(r.status, r.raw) for r in pd.requests]
        assert len(pd.incidents) == 1, [(i.dedup_key, i.status) for i in pd.incidents]
        assert pd.incidents[0].dedup_key == f"incidentflow-{iid}"

        state = await eventually(lambda: incidents.get(iid), lambda s: len(events(s, EventKind.page)) >= 2,
                                 timeout=15)
        pages = events(state, EventKind.page)
        assert len(pages) == 2 and state.pages == 2, [e.text for e in pages]
        assert pages[0].text.startswith("Paged alice (L1") and pages[1].text.startswith("Paged bob (L2")

        # acknowledging stops the escalation and acknowledges the one PagerDuty incident, once
        await incidents.acknowledge(iid, AckInput(by="bob"))

        def acks() -> list[RecordedRequest]:
            return [r for r in list(pd.requests) if r.json.get("event_action") == "acknowledge"]

        deadline = time.monotonic() + 15
        while not acks() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert acks(), f"no acknowledge reached PagerDuty\n{log.read_text()}"
        await asyncio.sleep(3)
        assert len(acks()) == 1 and acks()[0].json["dedup_key"] == f"incidentflow-{iid}", [r.json for r in acks()]
        assert len(triggers(pd)) == 2, "paged again after the acknowledgement"
        assert pd.incidents[0].status == "acknowledged"
        # the escalation (inside the incident: code level 3) ended with the acknowledgement
        state = await eventually(lambda: incidents.get(iid), lambda s: not s.escalation_active, timeout=15)
        assert state.escalation is not None and state.escalation_id is None
        assert (state.escalation.finished, state.pages, state.escalation.stopped_by) == ("acknowledged", 2, "bob")
        assert worker_b.poll() is None, f"worker B died:\n{log.read_text()}"


HELD = 30.0  # PagerDuty holds the L1 page this long: worker A dies with the page in flight


@pytest.mark.timeout(120)
async def test_worker_killed_while_a_page_is_in_flight_retries_the_level_within_seconds(
        dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    """Worker A is SIGKILLed while its L1 page waits on PagerDuty (the vendor took it and has not answered).
    The level's activity heartbeats, so the server notices the dead worker within the heartbeat timeout (10 s)
    and worker B pages again: the same dedup key, so PagerDuty keeps one incident, and the incident records L1
    within seconds rather than after the activity's 60 s start-to-close timeout. L2 follows, once."""
    async with kill_rig(dev_env, tmp_path) as rig:
        pd, log, incidents = rig.pd, rig.log, rig.incidents
        worker_a = await rig.start_worker()
        pd.hold_next(1, HELD)
        iid = await rig.declare()
        deadline = time.monotonic() + 20
        while not pd.arrivals and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert pd.arrivals, f"the L1 page never reached PagerDuty\n{log.read_text()}"
        await asyncio.sleep(0.5)
        assert not pd.requests, "the held page was answered before the kill"
        kill(worker_a)
        killed_at = time.monotonic()
        worker_b = await rig.start_worker()

        state = await eventually(lambda: incidents.get(iid), lambda s: len(events(s, EventKind.page)) >= 1,
                                 timeout=30)
        recorded = time.monotonic() - killed_at
        print(f"\nL1 recorded {recorded:.1f} s after the kill (PagerDuty held the first attempt {HELD:.0f} s)")
        assert recorded < 20, f"L1 recorded {recorded:.1f} s after the kill\n{log.read_text()}"
        assert events(state, EventKind.page)[0].text.startswith("Paged alice (L1")

        l2 = await wait_trigger(pd, 2, "bob", 30, log)
        assert l2.at - killed_at < 25, f"L2 paged {l2.at - killed_at:.1f} s after the kill"
        await asyncio.sleep(max(0.0, pd.arrivals[0] + HELD + 1 - time.monotonic()))  # the held one is applied too
        sent = Counter((details(r)["level"], details(r)["target"]) for r in triggers(pd))
        assert sent[(2, "bob")] == 1 and 1 <= sent[(1, "alice")] <= 2, dict(sent)  # the retry repeats L1's key
        assert len({r.json["dedup_key"] for r in triggers(pd)}) == 1 and len(pd.incidents) == 1, \
            [(i.dedup_key, i.status) for i in pd.incidents]
        state = await incidents.get(iid)
        assert [e.text.split(" (")[0] for e in events(state, EventKind.page)] == ["Paged alice", "Paged bob"]
        assert worker_b.poll() is None, f"worker B died:\n{log.read_text()}"
