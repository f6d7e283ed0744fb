"""Two workers and two API processes on one Temporal: the worker running an escalation is SIGKILLed before
level 2, and the other worker carries on. Level 2 is paged exactly once, nothing repeats, and an
acknowledgement through the *other* API stops the escalation.

Everything is a real process configured by INCIDENTFLOW_* variables, as an operator runs it: two
`incidentflow worker` on one task queue and two `incidentflow api` on their own ports, against the
session dev server. PagerDuty is the loopback fake in this process; it records every request.

Which worker runs the escalation is read from its history (the identity, `pid@host`, of the worker that
took its last workflow task): that worker holds it in its sticky cache and is the one killed. The worker
sets a 1 s sticky schedule-to-start timeout (workers/main.py), so the survivor gets the timer's task at
once; the test checks from the history that the survivor ran level 2.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from tests.fakes.pagerduty import FakePagerDuty, RecordedRequest
from tests.helpers import free_port
from tests.test_escalation_durability import poller_identities

ROOT = Path(__file__).parent.parent
L1_WAIT = 8.0  # seconds from the level 1 page to level 2 (the policy below)
KILL_AFTER = 2.0  # SIGKILL the escalation's worker this long after the level 1 page arrived

CONFIG = """\
people:
  - {{id: alice, name: Alice Chen, notify: [pagerduty]}}
  - {{id: bob, name: Bob Okafor, notify: [pagerduty]}}
services:
  - {{name: {service}, escalation_policy: two-processes}}
escalation_policies:
  - name: two-processes
    levels:
      - {{name: primary, wait: 8s, targets: [{{person: alice}}]}}
      - {{name: secondary, wait: 1h, targets: [{{person: bob}}]}}
"""


def spawn(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "incidentflow.cli", command], env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


def logs(paths: list[Path]) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in paths if p.exists())


async def wait_ready(client: Client, task_queue: str, workers: list[subprocess.Popen[bytes]],
                     apis: list[tuple[subprocess.Popen[bytes], str]], log_paths: list[Path]) -> None:
    """Both workers poll the task queue and both APIs answer /healthz."""
    deadline = time.monotonic() + 40
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            for proc in [*workers, *(p for p, _ in apis)]:
                assert proc.poll() is None, f"a process exited early ({proc.returncode}):\n{logs(log_paths)}"
            identities = await poller_identities(client, task_queue)
            polling = all(any(i.startswith(f"{w.pid}@") for i in identities) for w in workers)
            healthy = True
            for _, url in apis:
                try:
                    healthy &= (await http.get(url + "/healthz")).status_code == 200
                except httpx.HTTPError:
                    healthy = False
            if polling and healthy:
                return
            await asyncio.sleep(0.2)
    raise AssertionError(f"workers/APIs not ready within 40 s:\n{logs(log_paths)}")


def triggers(pd: FakePagerDuty) -> list[RecordedRequest]:
    return [r for r in list(pd.requests) if r.status == 202 and r.json.get("event_action") == "trigger"]


def page_key(r: RecordedRequest) -> tuple[int, str]:
    details = r.json["payload"]["custom_details"]
    return int(details["level"]), str(details["target"])


async def wait_page(pd: FakePagerDuty, level: int, timeout: float, log_paths: list[Path]) -> RecordedRequest:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in triggers(pd) if page_key(r)[0] == level]
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no level {level} page within {timeout} s; PagerDuty got "
                         f"{[r.json for r in pd.requests]}\n{logs(log_paths)}")


async def task_identities(client: Client, workflow_id: str) -> list[tuple[str, str]]:
    """(event kind, worker identity) of every workflow and activity task started, in history order."""
    out = []
    async for e in client.get_workflow_handle(workflow_id).fetch_history_events():
        if e.HasField("workflow_task_started_event_attributes"):
            out.append(("workflow task", e.workflow_task_started_event_attributes.identity))
        elif e.HasField("activity_task_started_event_attributes"):
            out.append(("activity", e.activity_task_started_event_attributes.identity))
    return out


@pytest.mark.timeout(90)
async def test_two_workers_two_apis_one_worker_killed_mid_escalation(dev_env: WorkflowEnvironment,
                                                                     tmp_path: Path) -> None:
    client = dev_env.client
    service = f"svc-{uuid.uuid4().hex[:8]}"
    task_queue = f"two-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(service=service))
    token = secrets.token_hex(16)
    pd = FakePagerDuty()
    pd.start()
    base = {k: v for k, v in os.environ.items() if not k.startswith("INCIDENTFLOW_")}
    env = {**base, "INCIDENTFLOW_TEMPORAL_ADDRESS": client.service_client.config.target_host,
           "INCIDENTFLOW_TASK_QUEUE": task_queue, "INCIDENTFLOW_CONFIG": str(config),
           "INCIDENTFLOW_API_TOKEN": token, "INCIDENTFLOW_PAGERDUTY_EVENTS_URL": pd.url,
           "INCIDENTFLOW_PAGERDUTY_DEFAULT_ROUTING_KEY": pd.routing_key(), "INCIDENTFLOW_LOG_LEVEL": "INFO",
           "INCIDENTFLOW_DATA_DIR": str(tmp_path / "data")}
    log_paths = [tmp_path / n for n in ("worker-a.log", "worker-b.log", "api-1.log", "api-2.log")]
    ports = [free_port(), free_port()]
    workers = [spawn("worker", env, log_paths[0]), spawn("worker", env, log_paths[1])]
    apis = [(spawn("api", {**env, "INCIDENTFLOW_API_PORT": str(port)}, log), f"http://127.0.0.1:{port}")
            for port, log in zip(ports, log_paths[2:])]
    headers = {"authorization": f"Bearer {token}"}
    iid: str | None = None
    try:
        await wait_ready(client, task_queue, workers, apis, log_paths)
        async with httpx.AsyncClient(headers=headers, timeout=30) as http:
            # declared through API 1
            r = await http.post(apis[0][1] + "/v1/incidents", json={
                "title": "Checkout failing", "severity": "SEV2", "service": service, "declared_by": "alice"})
            assert r.status_code == 201, r.text
            iid = str(r.json()["id"])
            escalation_id = iid  # the escalation runs inside the incident (code level 3)
            l1 = await wait_page(pd, 1, 20, log_paths)
            await asyncio.sleep(max(0.0, l1.at + KILL_AFTER - time.monotonic()))

            # SIGKILL the worker that took the incident's last workflow task (it holds it in its cache)
            before = await task_identities(client, escalation_id)
            last = next(i for kind, i in reversed(before) if kind == "workflow task")
            victim = next((w for w in workers if last.startswith(f"{w.pid}@")), None)
            assert victim is not None, f"escalation ran on {last}, not on our workers {[w.pid for w in workers]}"
            survivor = next(w for w in workers if w is not victim)
            assert [page_key(t) for t in triggers(pd)] == [(1, "alice")], "level 2 paged before the kill"
            kill(victim)

            l2 = await wait_page(pd, 2, L1_WAIT + 10, log_paths)
            late = l2.at - (l1.at + L1_WAIT)
            assert -2.0 <= late <= 3.0, f"level 2 paged {late:+.2f} s off its planned time\n{logs(log_paths)}"
            after = (await task_identities(client, escalation_id))[len(before):]
            assert after and all(i.startswith(f"{survivor.pid}@") for _, i in after), (
                f"tasks after the kill ran on {after}; survivor is {survivor.pid}")

            # acknowledged through API 2: the escalation stops, PagerDuty is acknowledged once
            r = await http.post(f"{apis[1][1]}/v1/incidents/{iid}/acknowledge", json={"by": "bob"})
            assert r.status_code == 200, r.text
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and (await http.get(f"{apis[1][1]}/v1/incidents/{iid}")).json()[
                    "escalation_active"]:
                await asyncio.sleep(0.1)
            ended = (await http.get(f"{apis[1][1]}/v1/incidents/{iid}")).json()
            assert (ended["escalation"]["finished"], ended["pages"]) == ("acknowledged", 2), ended
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any(
                    q.json.get("event_action") == "acknowledge" for q in list(pd.requests)):
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # anything repeated would arrive now

            # nothing repeats: one trigger per level and person, one PagerDuty incident, one acknowledge
            assert Counter(page_key(t) for t in triggers(pd)) == Counter({(1, "alice"): 1, (2, "bob"): 1})
            actions = Counter(q.json.get("event_action") for q in list(pd.requests) if q.status == 202)
            assert actions == Counter({"trigger": 2, "acknowledge": 1}), actions
            assert [(i.dedup_key, i.status) for i in pd.incidents] == [(f"incidentflow-{iid}", "acknowledged")]
            state: dict[str, Any] = (await http.get(f"{apis[1][1]}/v1/incidents/{iid}")).json()
            pages = [e["text"] for e in state["timeline"] if e["kind"] == "page"]
            assert len(pages) == 2 and state["pages"] == 2, pages
            assert pages[0].startswith("Paged alice (L1") and pages[1].startswith("Paged bob (L2"), pages
            assert state["acknowledged_at"] and not state["escalation_active"], state
        assert survivor.poll() is None and all(p.poll() is None for p, _ in apis), logs(log_paths)
    finally:
        for proc in [*workers, *(p for p, _ in apis)]:
            kill(proc)
        for workflow_id in ([iid] if iid else []):
            try:
                await client.get_workflow_handle(workflow_id).terminate("test finished")
            except RPCError:
                pass  # already closed
        pd.stop()
