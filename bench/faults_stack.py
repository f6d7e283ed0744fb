"""The fault suite's moving parts (bench/faults.py): the Temporal dev server on a sqlite file, `incidentflow
worker` and `incidentflow api` as real processes configured only through INCIDENTFLOW_* variables, the
loopback fakes (PagerDuty, Slack, Kubernetes) in this process, and the chaos that SIGKILLs the worker and
restarts the server.

Nothing here imports the worker: the processes are the product as an operator runs it.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/faults.py`: the project root for tests.fakes and the packages
    sys.path.insert(0, str(ROOT))

NAMESPACE = "faults"  # the Kubernetes namespace of the deployments the runbooks change
TASK_QUEUE = "incidentflow-faults"
PEOPLE = {"alice": "Alice Chen", "bob": "Bob Okafor", "carol": "Carol Diaz"}  # L1, L2, L3 of the policy
LEVELS = ("alice", "bob", "carol")
ROLLBACK = "rollback-deployment"  # shipped runbook: approval → rollout undo → wait for the rollout
SCALE = "faults-scale-double"  # the suite's own runbook: scale by a factor of 2 (planned once)
IMAGE_REPO = "registry.example.com/faults"
REPLICAS = 2  # each deployment starts with 2 replicas and 3 revisions (v1, v2, v3 running)

CONFIG = """\
# Written by bench/faults.py: short timers so escalations and reminders fire during the run.
people:
{people}
policy:
  first_update_after: {reminder}s
  update_every: {{SEV1: {reminder}s, SEV2: {reminder}s, SEV3: {reminder}s}}
escalation_policies:
  - name: default
    levels:
      - {{name: on-call, wait: {wait}s, targets: [{{person: alice}}]}}
      - {{name: team lead, wait: {wait}s, targets: [{{person: bob}}]}}
      - {{name: manager, wait: {wait}s, targets: [{{person: carol}}]}}
"""

SCALE_RUNBOOK = """\
name: faults-scale-double
title: Double a deployment's replicas
description: |
  Written by bench/faults.py. `factor: 2` makes a repeated plan visible: the count is planned once and kept
  in history, so a retried or replayed step sets the same absolute count instead of doubling again.
approvers: [ic]
approval_timeout: 30m
auto_run: none
parameters:
  namespace: {type: string, default: faults}
  deployment: {type: string, required: true}
steps:
  - {kind: kubernetes.scale, name: scale, namespace: "{{ namespace }}", deployment: "{{ deployment }}",
     factor: 2, max_replicas: 64}
  - {kind: kubernetes.rollout_status, name: wait-for-rollout, namespace: "{{ namespace }}",
     deployment: "{{ deployment }}", timeout: 5m}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service(group: int) -> str:
    return f"svc-{group:03d}"


def runbook_for(group: int) -> str:
    """Even groups get a rollback, odd groups a scale."""
    return ROLLBACK if group % 2 == 0 else SCALE


# ---------------------------------------------------------------------------- the fakes
@dataclass
class Fakes:
    pd: Any  # tests.fakes.pagerduty.FakePagerDuty
    slack: Any  # tests.fakes.slack.FakeSlack
    kube: Any  # tests.fakes.kubernetes.FakeKubernetes
    routing_key: str
    kubeconfig: Path
    slack_users: dict[str, str] = field(default_factory=dict)  # person → Slack user id

    def stop(self) -> None:
        for fake in (self.pd, self.slack, self.kube):
            try:
                fake.stop()
            except Exception:  # noqa: BLE001 - stopping is best effort
                pass


def start_fakes(workdir: Path, groups: int, slack_every: int, pd_burst: tuple[int, int]) -> Fakes:
    """PagerDuty with 5xx bursts (`pd_burst` = (cycle, failures) in requests), Slack answering 429 to every
    `slack_every`-th call, and one Deployment per group in the Kubernetes fake."""
    from tests.fakes.kubernetes import FakeKubernetes
    from tests.fakes.pagerduty import FakePagerDuty
    from tests.fakes.slack import FakeSlack

    pd = FakePagerDuty()
    if pd_burst[0] and pd_burst[1]:
        pd.fail_bursts(pd_burst[0], pd_burst[1], status=503)
    pd.start()
    slack = FakeSlack()
    users = {p: slack.add_user(name=p, email=f"{p}@example.com") for p in PEOPLE}
    if slack_every:
        slack.rate_limit_every(slack_every, retry_after=1)
    slack.start()
    kube = FakeKubernetes(seed=0)
    for g in range(groups):
        kube.add_deployment(NAMESPACE, service(g), f"{IMAGE_REPO}-{service(g)}:v3", replicas=REPLICAS, revisions=3)
    kube.start()
    kubeconfig = kube.write_kubeconfig(workdir / "kubeconfig.yaml", namespace=NAMESPACE)
    for fake in (pd, slack, kube):  # a SIGKILLed worker resets its connections: no traceback per reset
        fake._httpd.handle_error = lambda request, client_address: None
    return Fakes(pd, slack, kube, pd.routing_key(), kubeconfig, users)


def write_files(workdir: Path, level_wait: float, reminder: float) -> tuple[Path, Path]:
    """The YAML config and a runbooks directory with the suite's scale runbook."""
    people = "\n".join(f"  - {{id: {p}, name: {n}, email: {p}@example.com, notify: [pagerduty]}}"
                       for p, n in PEOPLE.items())
    config = workdir / "config.yaml"
    config.write_text(CONFIG.format(people=people, reminder=f"{reminder:g}", wait=f"{level_wait:g}"))
    runbooks = workdir / "runbooks"
    runbooks.mkdir(exist_ok=True)
    (runbooks / f"{SCALE}.yaml").write_text(SCALE_RUNBOOK)
    return config, runbooks


# ---------------------------------------------------------------------------- the processes
class Stack:
    """The dev server (sqlite file), one worker process and one API process, all on free ports."""

    def __init__(self, workdir: Path, fakes: Fakes, config: Path, runbooks: Path) -> None:
        from domain.config import Settings
        from incidentflow.devstack import DevServer

        self.workdir = workdir
        self.address = f"127.0.0.1:{free_port()}"
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.token = secrets.token_hex(16)
        self.server = DevServer(Settings(temporal_address=self.address, data_dir=workdir / "temporal",
                                         ui_port=free_port()), ui=False)
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("INCIDENTFLOW_")},
                    "INCIDENTFLOW_TEMPORAL_ADDRESS": self.address, "INCIDENTFLOW_TASK_QUEUE": TASK_QUEUE,
                    "INCIDENTFLOW_CONFIG": str(config), "INCIDENTFLOW_RUNBOOKS_DIR": str(runbooks),
                    "INCIDENTFLOW_API_PORT": str(self.api_port), "INCIDENTFLOW_API_TOKEN": self.token,
                    "INCIDENTFLOW_PAGERDUTY_EVENTS_URL": fakes.pd.url,
                    "INCIDENTFLOW_PAGERDUTY_DEFAULT_ROUTING_KEY": fakes.routing_key,
                    "INCIDENTFLOW_SLACK_BOT_TOKEN": fakes.slack.bot_token,
                    "INCIDENTFLOW_SLACK_API_URL": fakes.slack.base_url,
                    "INCIDENTFLOW_KUBECONFIG": str(fakes.kubeconfig), "INCIDENTFLOW_LOG_LEVEL": "WARNING",
                    "INCIDENTFLOW_DATA_DIR": str(workdir / "data")}
        self.worker: subprocess.Popen[bytes] | None = None
        self.api: subprocess.Popen[bytes] | None = None
        self.client: Any = None  # temporalio Client, for polling the task queue and reading histories
        self.server_up = False
        self.worker_down = False  # killed on purpose, not restarted yet
        self.kills: list[float] = []  # time.time() of each SIGKILL of the worker
        self.worker_starts: list[float] = []
        self.restarts: list[tuple[float, float]] = []  # (server killed, server listening again)
        self.unexpected: list[str] = []  # processes that died without being killed

    # -- server
    def start_server(self) -> None:
        self.server.start(timeout=60)
        self.server_up = True

    def kill_server(self) -> None:
        self.server_up = False
        proc = self.server.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)

    # -- processes
    def _spawn(self, command: str, log: str) -> subprocess.Popen[bytes]:
        with open(self.workdir / log, "ab") as out:
            out.write(f"\n--- {time.strftime('%H:%M:%S')} incidentflow {command}\n".encode())
            out.flush()
            return subprocess.Popen([sys.executable, "-m", "incidentflow.cli", command], env=self.env, cwd=ROOT,
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def start_worker(self) -> None:
        self.worker = self._spawn("worker", "worker.log")
        self.worker_starts.append(time.time())
        self.worker_down = False

    def kill_worker(self) -> None:
        self.worker_down = True
        if self.worker is not None and self.worker.poll() is None:
            os.kill(self.worker.pid, signal.SIGKILL)
            self.worker.wait(30)
        self.kills.append(time.time())

    def start_api(self) -> None:
        self.api = self._spawn("api", "api.log")

    async def wait_api(self, timeout: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                if self.api is None or self.api.poll() is not None:
                    raise RuntimeError(f"the API exited at start; see {self.workdir / 'api.log'}")
                try:
                    if (await http.get(self.api_url + "/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.3)
        raise RuntimeError(f"the API did not answer /healthz within {timeout:.0f} s; see {self.workdir / 'api.log'}")

    async def connect(self) -> None:
        from temporalio.client import Client
        from temporalio.contrib.pydantic import pydantic_data_converter

        self.client = await Client.connect(self.address, data_converter=pydantic_data_converter)

    async def pollers(self) -> set[str]:
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

        resp = await self.client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace="default", task_queue=TaskQueue(name=TASK_QUEUE),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW), timeout=timedelta(seconds=3))
        return {p.identity for p in resp.pollers}

    async def wait_polling(self, timeout: float = 90.0) -> bool:
        """Until the current worker process polls the task queue (its identity is `pid@host`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.worker
            if proc is not None and proc.poll() is None:
                try:
                    if any(i.startswith(f"{proc.pid}@") for i in await self.pollers()):
                        return True
                except Exception:  # noqa: BLE001 - the server may be restarting
                    pass
            await asyncio.sleep(0.25)
        return False

    async def watchdog(self, stop: asyncio.Event) -> None:
        """Restarts a worker or API process that died without being killed (and counts it)."""
        while not stop.is_set():
            if (self.worker is not None and not self.worker_down and self.worker.poll() is not None
                    and self.server_up):
                self.unexpected.append(f"worker exited with {self.worker.returncode}")
                self.start_worker()
            if self.api is not None and self.api.poll() is not None:
                self.unexpected.append(f"api exited with {self.api.returncode}")
                self.start_api()
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass

    def stop(self) -> None:
        for proc in (self.worker, self.api):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        self.server.stop()


# ---------------------------------------------------------------------------- chaos
@dataclass
class ChaosEvent:
    at: float  # seconds after the start of the run
    kind: str  # "kill" (SIGKILL the worker, start a new one after `pause`) | "restart" (the server)
    pause: float
    done_at: float | None = None  # time.time() when it happened
    polling_after: float | None = None  # seconds from a kill until the new worker polled


def plan_chaos(kills: int, restarts: int, start: float, window: float, rng: random.Random) -> list[ChaosEvent]:
    """Kills and restarts spread over [start, start + window], each in its own slot with a random offset."""
    events: list[ChaosEvent] = []
    for kind, n, pause in (("kill", kills, (0.2, 2.0)), ("restart", restarts, (1.0, 5.0))):
        slot = window / max(n, 1)
        for i in range(n):
            events.append(ChaosEvent(start + slot * (i + rng.uniform(0.15, 0.85)), kind, rng.uniform(*pause)))
    return sorted(events, key=lambda e: e.at)


async def run_chaos(stack: Stack, plan: list[ChaosEvent], t0: float, min_up: float,
                    log: Callable[[str], None]) -> None:
    """Runs the plan in order. A kill waits until the worker has been polling for `min_up` seconds, so
    every kill hits a working worker; the server is never down while a worker starts."""
    for event in plan:
        await asyncio.sleep(max(0.0, t0 + event.at - time.time()))
        if event.kind == "kill":
            if not await stack.wait_polling():
                log("worker not polling within 90 s before a kill")
            since = time.time() - (stack.worker_starts[-1] if stack.worker_starts else 0.0)
            await asyncio.sleep(max(0.0, min_up - since))
            stack.kill_worker()
            event.done_at = time.time()
            await asyncio.sleep(event.pause)
            stack.start_worker()
            if await stack.wait_polling():
                event.polling_after = time.time() - event.done_at
        else:
            stack.kill_server()
            event.done_at = time.time()
            await asyncio.sleep(event.pause)
            stack.start_server()
            stack.restarts.append((event.done_at, time.time()))
        log(f"{event.kind} #{sum(1 for e in plan if e.kind == event.kind and e.done_at)} at "
            f"+{event.done_at - t0:.0f} s")
    await stack.wait_polling()
