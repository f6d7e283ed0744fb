"""`incidentflow dev` as a user runs it: killed mid-incident and restarted, nothing is lost or repeated."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from domain.models import EventKind, IncidentState
from incidentflow.devstack import port_open

ROOT = Path(__file__).parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
