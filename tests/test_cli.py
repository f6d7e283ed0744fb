"""The `incidentflow` command as a user runs it: a real process against the real dev server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from tests.conftest import running_worker

CLI = [sys.executable, "-m", "incidentflow.cli"]


@dataclass
class Run:
    code: int
    out: str
    err: str


async def cli(*args: str, env: dict[str, str]) -> Run:
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parent.parent)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return Run(proc.returncode or 0, out.decode(), err.decode())


async def test_cli_drives_an_incident_through_every_phase(dev_env: WorkflowEnvironment) -> None:
    svc = f"cli-{uuid.uuid4().hex[:6]}"
    async with running_worker(dev_env.client) as (settings, _):
        env = {"INCIDENTFLOW_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
               "INCIDENTFLOW_TASK_QUEUE": settings.task_queue, "INCIDENTFLOW_USER": "pat"}

        async def ok(*args: str) -> Run:
            run = await cli(*args, env=env)
            assert run.code == 0, f"incidentflow {' '.join(args)} → {run.code}: {run.err}"
            return run

        declared = await ok("declare", "--severity", "SEV2", "--service", svc, "Checkout failing")
        iid = declared.out.strip()
        assert re.fullmatch(rf"incident-\d{{8}}-\d{{4}}-{svc}", iid)
        assert f"/workflows/{iid}" in declared.err, "the Web UI link is printed"
        assert "acknowledged by alice" in (await ok("ack", iid, "--by", "alice")).out
        await ok("role", iid, "ic", "alice")
        warned = await ok("role", iid, "lead", "alice")
        assert "the IC should not also be the lead investigator" in warned.err
        await ok("role", iid, "lead", "bob")
        await ok("role", iid, "comms", "carol")
        await ok("role", iid, "scribe", "dan")
        assert "severity is now SEV1" in (await ok("severity", iid, "sev1", "--reason", "all checkouts")).out
        await ok("phase", iid, "investigating")
        await ok("phase", iid, "identified", "--note", "DB pool exhausted")

        back = await cli("phase", iid, "triage", env=env)
        assert back.code == 1 and back.err.count("\n") == 1, back.err
        assert "cannot move from identified to triage; allowed next phases: mitigating, monitoring, " \
               "resolved, stood_down" in back.err
        bad = await cli("phase", iid, "fixed", env=env)
        assert bad.code == 2 and "unknown phase 'fixed'" in bad.err and "investigating" in bad.err

        await ok("note", iid, "pool size 20, 400 waiters")
        await ok("update", iid, "Checkout failing for ~40% of users; rollback in progress")
        await ok("phase", iid, "mitigating")
        await ok("phase", iid, "monitoring")
        listed = await ok("list", "--open", "--severity", "SEV1", "--service", svc)
        assert iid in listed.out and "alice" in listed.out
        shown = (await ok("show", iid)).out
        assert "SEV1  monitoring  Checkout failing" in shown and "ic=alice" in shown and "lead=bob" in shown
        assert "resolved" in (await ok("resolve", iid, "--summary", "rolled back deploy 4812")).out
        assert iid not in (await ok("list", "--open", "--service", svc)).out
        await ok("reopen", iid, "--reason", "errors are back")
        await ok("resolve", iid, "--summary", "pool size raised")
        await ok("phase", iid, "postmortem")
        await ok("phase", iid, "closed")

        markdown = (await ok("timeline", iid, "--markdown")).out.splitlines()
        entries = [line for line in markdown if re.match(r"^\d\d:\d\d UTC - ", line)]
        assert entries[0].endswith(f"pat: Declared SEV2 on {svc}: Checkout failing")
        assert any(line.endswith("pat: Phase investigating → identified: DB pool exhausted") for line in entries)
        assert any(line.endswith("pat: pool size 20, 400 waiters") for line in entries)
        assert entries[-1].endswith("pat: Phase postmortem → closed")
        over = await cli("note", iid, "too late", env=env)
        assert over.code == 1 and "is over" in over.err
        quiet = (await ok("declare", "--no-page", "--service", svc, "Planned failover drill")).out.strip()
        state = json.loads((await ok("show", quiet, "--json")).out)
        assert state["escalations"] == 0 and state["severity"] == "SEV3"


async def test_cli_errors_are_one_clear_line(dev_env: WorkflowEnvironment) -> None:
    env = {"INCIDENTFLOW_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host}
    missing = await cli("show", "incident-19990101-0000-nothing", env=env)
    assert missing.code == 1
    assert missing.err == "error: no incident with id 'incident-19990101-0000-nothing'\n"
    down = await cli("list", env={"INCIDENTFLOW_TEMPORAL_ADDRESS": "127.0.0.1:1"})
    assert down.code == 3 and down.err.startswith("error: cannot reach Temporal at 127.0.0.1:1")
    assert down.err.count("\n") == 1
    sev = await cli("declare", "--severity", "SEV9", "x", env=env)
    assert sev.code == 2 and "unknown severity 'SEV9'" in sev.err
    blank = await cli("declare", "   ", env=env)
    assert blank.code == 2 and "title" in blank.err
    role = await cli("role", "x", "boss", "alice", env=env)
    assert role.code == 2 and "unknown role 'boss'" in role.err and "ic, lead, comms, scribe" in role.err
