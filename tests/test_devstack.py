"""`incidentflow dev` as a user runs it: killed mid-incident and restarted, nothing is lost or repeated;
started on a file with incidents from before the baseline, it says so and how to go on."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.config import Settings
from domain.models import DeclareInput, EventKind, IncidentStart, IncidentState, Severity
from domain.models.paging import EscalationStart
from incidentflow.client import Incidents, TemporalUnavailable, connect
from incidentflow.devstack import DevServer, port_open, stale_workflows
from tests.conftest import running_worker
from tests.helpers import eventually, free_port
from workflows.escalation import EscalationWorkflow

ROOT = Path(__file__).parent.parent



@pytest.fixture
def stack_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    config = tmp_path / "config.yaml"
    config.write_text("policy:\n  first_update_after: 15s\n  update_every: {SEV2: 1h}\n")
    env = {**os.environ, "INCIDENTFLOW_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
           "INCIDENTFLOW_UI_PORT": str(free_port()), "INCIDENTFLOW_API_PORT": str(free_port()),
           "INCIDENTFLOW_DATA_DIR": str(tmp_path / "data"), "INCIDENTFLOW_CONFIG": str(config),
           "INCIDENTFLOW_TASK_QUEUE": "incidentflow", "INCIDENTFLOW_USER": "pat"}
    yield env


def start_dev(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "incidentflow.cli", "dev", "--no-demo"], env=env, cwd=ROOT,
                            stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{env['INCIDENTFLOW_API_PORT']}/readyz"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"dev exited early:\n{log.read_text()}"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"dev stack not ready within 60 s:\n{log.read_text()}")


def worker_pid(log: Path) -> int:
    """The worker's pid, as the stack's banner names it (the last start's)."""
    lines = [line for line in log.read_text().splitlines() if line.strip().startswith("Worker ")]
    assert lines and "its own process (pid " in lines[-1], lines
    return int(lines[-1].split("(pid ")[1].split(")")[0])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def cli(env: dict[str, str], *args: str) -> str:
    run = subprocess.run([sys.executable, "-m", "incidentflow.cli", *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"incidentflow {' '.join(args)}: {run.stderr}"
    return run.stdout


def state(env: dict[str, str], iid: str) -> IncidentState:
    return IncidentState.model_validate_json(cli(env, "show", iid, "--json"))


def test_dev_stack_killed_mid_incident_keeps_incident_and_pending_reminder(stack_env: dict[str, str],
                                                                          tmp_path: Path) -> None:
    log = tmp_path / "dev.log"
    temporal_port = int(stack_env["INCIDENTFLOW_TEMPORAL_ADDRESS"].rsplit(":", 1)[1])
    first = start_dev(stack_env, log)
    worker = worker_pid(log)
    assert worker != first.pid and alive(worker), "the worker runs in its own process"
    try:
        iid = cli(stack_env, "declare", "--severity", "SEV2", "--service", "checkout", "Checkout failing").strip()
        cli(stack_env, "ack", iid, "--by", "alice")
        cli(stack_env, "role", iid, "comms", "carol")
        cli(stack_env, "note", iid, "before the crash")
    finally:
        first.send_signal(signal.SIGKILL)  # no goodbye: the worker, API and our handlers die mid-flight
        first.wait()
    deadline = time.monotonic() + 15
    while port_open("127.0.0.1", temporal_port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not port_open("127.0.0.1", temporal_port), "the dev server must die with its parent"
    deadline = time.monotonic() + 30
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(worker), "the worker process must die with its parent"

    second = start_dev(stack_env, log)
    try:
        before = state(stack_env, iid)
        assert [e.kind for e in before.timeline] == [EventKind.declared, EventKind.acknowledged, EventKind.role,
                                                     EventKind.note]
        assert before.next_update_due == before.declared_at + timedelta(seconds=15)
        deadline = time.monotonic() + 40
        while not (after := state(stack_env, iid)).reminders_sent and time.monotonic() < deadline:
            time.sleep(0.5)
        reminders = [e for e in after.timeline if e.kind == EventKind.reminder]
        assert len(reminders) == 1 and reminders[0].text.endswith("→ carol")
        late = reminders[0].at - before.next_update_due
        assert timedelta(0) <= late < timedelta(seconds=5), f"reminder {late} late"
        time.sleep(2)
        assert state(stack_env, iid).reminders_sent == 1, "the reminder is not repeated"
        assert iid in cli(stack_env, "list", "--open")
        # the Web UI of the embedded server lists it under the severity filter a newcomer types
        ui = f"http://127.0.0.1:{stack_env['INCIDENTFLOW_UI_PORT']}"
        assert httpx.get(ui + "/", timeout=10).status_code == 200
        listed = httpx.get(f"{ui}/api/v1/namespaces/default/workflows",
                           params={"query": 'IncidentSeverity="SEV2" AND IncidentPhase!="closed"'}, timeout=10)
        assert iid in [w["execution"]["workflowId"] for w in listed.json()["executions"]]
    finally:
        second.send_signal(signal.SIGTERM)
        code = second.wait(30)
    assert code == 0 and "stopped." in log.read_text()
    assert not port_open("127.0.0.1", temporal_port), "a clean stop stops the dev server too"


def test_a_worker_process_that_dies_stops_the_stack_with_an_error(stack_env: dict[str, str], tmp_path: Path) -> None:
    """A stack that accepted incidents nobody works on would be worse than one that stops and says why."""
    log = tmp_path / "dev.log"
    temporal_port = int(stack_env["INCIDENTFLOW_TEMPORAL_ADDRESS"].rsplit(":", 1)[1])
    proc = start_dev(stack_env, log)
    try:
        os.kill(worker_pid(log), signal.SIGKILL)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = log.read_text()
    assert code == 1, out
    assert "error: the worker process exited (code -9)" in out and "`incidentflow worker`" in out
    assert not port_open("127.0.0.1", temporal_port), "the dev server stops with the stack"


# ---------------------------------------------------------------- workflows from before the baseline
@workflow.defn(name="IncidentWorkflow", sandboxed=False)
class IncidentBeforeTheBaseline:
    """An incident as an older incidentflow ran it: other commands than today's code gives."""

    @workflow.run
    async def run(self, start: IncidentStart) -> None:
        await workflow.sleep(timedelta(hours=1))


async def start_old_incident(client: Client, workflow_id: str) -> None:
    """Run it on the server until its first command (a timer) is in history, then stop its worker."""
    queue = f"old-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[IncidentBeforeTheBaseline]):
        handle = await client.start_workflow(
            IncidentBeforeTheBaseline.run, IncidentStart(declare=DeclareInput(title="Old", declared_by="pat")),
            id=workflow_id, task_queue=queue)
        await eventually(handle.fetch_history, lambda h: any(e.HasField("timer_started_event_attributes")
                                                            for e in h.events), timeout=20)


async def test_running_workflows_that_cannot_replay_are_found(fresh_dev_env: WorkflowEnvironment) -> None:
    client = fresh_dev_env.client
    async with running_worker(client) as (settings, _):
        current = await Incidents(client, settings).declare(DeclareInput(
            title="Today's incident", severity=Severity.SEV2, service="checkout", declared_by="pat"))
        await start_old_incident(client, "incident-from-before")
        await eventually(lambda: Incidents(client, settings).get(current), lambda s: s.chat_checked)
        stale, checked = await stale_workflows(client)
    assert current in checked, "today's incident was replayed too, and replays fine"
    assert [(s.workflow_type, s.workflow_id) for s in stale] == [("IncidentWorkflow", "incident-from-before")]
    assert "nondeterminism" in stale[0].reason.lower() or "TMPRL1100" in stale[0].reason


async def connect_when_healthy(settings: Settings) -> Client:
    """The port opens a moment before the frontend answers ("Frontend is not healthy yet")."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return await connect(settings)
        except TemporalUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def run_dev_process(env: dict[str, str], log: Path, terminate_stale: bool = False) -> subprocess.Popen[bytes]:
    """`incidentflow dev --no-demo [--terminate-stale]` (the CLI flag calls `run_dev(..., terminate_stale=)`)."""
    code = ("import os, sys; from domain.config import Settings; from incidentflow.stack import run_dev; "
            f"code = run_dev(Settings(), demo=False, terminate_stale={terminate_stale}); "
            "sys.stdout.flush(); sys.stderr.flush(); os._exit(code)")
    out = open(log, "ab")
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


OLD = "incident-20250101-0900-checkout"


def test_dev_on_a_file_with_incidents_from_before_the_baseline_says_how_to_go_on(
        stack_env: dict[str, str], tmp_path: Path) -> None:
    settings = Settings(temporal_address=stack_env["INCIDENTFLOW_TEMPORAL_ADDRESS"],
                        data_dir=Path(stack_env["INCIDENTFLOW_DATA_DIR"]))
    server = DevServer(settings, ui=False)
    server.start()
    try:
        async def seed() -> None:
            client = await connect_when_healthy(settings)
            await start_old_incident(client, OLD)
            # its escalation: replays (nothing ran yet), but must not outlive it
            await client.start_workflow(EscalationWorkflow.run, EscalationStart(
                incident_id=OLD, summary="[SEV3] Old", severity=Severity.SEV3), id=f"{OLD}-escalation-1",
                task_queue="nobody-polls-this")
        asyncio.run(seed())
    finally:
        server.stop()

    log = tmp_path / "dev.log"
    refused = run_dev_process(stack_env, log)
    assert refused.wait(90) == 1, log.read_text()
    said = log.read_text()
    assert "1 of 2 running workflows on" in said and "temporal.db" in said, said
    assert "started by an older incidentflow" in said and f"IncidentWorkflow {OLD}: nondeterminism" in said
    assert "incidentflow dev --terminate-stale" in said and f"remove {settings.data_dir}/" in said
    assert "Traceback" not in said, "said plainly, not as a stack trace"

    log.write_text("")
    proceeds = run_dev_process(stack_env, log, terminate_stale=True)
    try:
        url = f"http://127.0.0.1:{stack_env['INCIDENTFLOW_API_PORT']}/readyz"
        deadline = time.monotonic() + 60
        while not _ready(url):
            assert proceeds.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        assert f"terminated 2 stale workflow(s): {OLD}, {OLD}-escalation-1" in log.read_text()
    finally:
        proceeds.send_signal(signal.SIGTERM)
        assert proceeds.wait(30) == 0, log.read_text()


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
