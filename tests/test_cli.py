"""The `incidentflow` command as a user runs it: a real process against the real dev server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from domain.config import load_config
from tests.conftest import running_worker

CLI = [sys.executable, "-m", "incidentflow.cli"]
PEOPLE = ("pat", "alice", "bob", "carol", "dan")


def write_config(tmp_path: Path, service: str) -> Path:
    """The CLI's config for a test: its people, its own service (visibility stays per test), a 4-level policy."""
    path = tmp_path / "config.yaml"
    path.write_text("people:\n" + "".join(f"  - {{id: {p}, name: {p.title()}}}\n" for p in PEOPLE)
                    + f"services:\n  - {{name: {service}}}\n  - {{name: search}}\n"
                    "escalation_policies:\n  - name: default\n    levels:\n"
                    + "".join(f"      - {{wait: 1h, targets: [{{person: {p}}}]}}\n" for p in PEOPLE[1:]))
    return path


@dataclass
class Run:
    code: int
    out: str
    err: str


async def cli(*args: str, env: dict[str, str], clean: bool = False) -> Run:
    """`incidentflow ARGS…` in a fresh process with `env` added (`clean`: and no other INCIDENTFLOW_ variable)."""
    base = {k: v for k, v in os.environ.items() if not (clean and k.startswith("INCIDENTFLOW_"))}
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, env={**base, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parent.parent)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return Run(proc.returncode or 0, out.decode(), err.decode())


def cli_env(dev_env: WorkflowEnvironment, settings: Any, config: Path) -> dict[str, str]:
    """The environment a user's shell would have: the dev server, the worker's task queue, pat, the config."""
    return {"INCIDENTFLOW_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "INCIDENTFLOW_TASK_QUEUE": settings.task_queue, "INCIDENTFLOW_USER": "pat",
            "INCIDENTFLOW_CONFIG": str(config)}


def succeeding(env: dict[str, str]) -> Callable[..., Awaitable[Run]]:
    """`incidentflow ARGS…` that must exit 0 (the failure names the command and its stderr)."""
    async def ok(*args: str) -> Run:
        run = await cli(*args, env=env)
        assert run.code == 0, f"incidentflow {' '.join(args)} → {run.code}: {run.err}"
        return run
    return ok


async def test_cli_drives_an_incident_through_every_phase(dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    svc = f"cli-{uuid.uuid4().hex[:6]}"
    config = write_config(tmp_path, svc)
    async with running_worker(dev_env.client, config=lambda: load_config(config)) as (settings, _):
        env = cli_env(dev_env, settings, config)
        ok = succeeding(env)

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
        listed = (await ok("list", "--open", "--severity", "SEV1", "--service", svc)).out.splitlines()
        assert listed[0].split() == ["ID", "SEV", "PHASE", "SERVICE", "IC", "AGE", "TITLE"], "a header row"
        row = next(line for line in listed if line.startswith(iid))
        assert row.split()[1:5] == ["SEV1", "monitoring", svc, "alice"] and row.endswith(" Checkout failing")
        assert re.fullmatch(r"\d+[sm]", row.split()[5]), f"the age: {row}"
        shown = (await ok("show", iid)).out
        assert "SEV1  monitoring  Checkout failing" in shown and "ic=alice" in shown and "lead=bob" in shown
        assert re.search(rf"^  link: http://\S+/workflows/{iid}$", shown, re.M), shown
        assert re.search(r"^  last status update: \d\d:\d\d UTC by pat: Checkout failing for ~40% of users; "
                         r"rollback in progress$", shown, re.M), shown
        assert "resolved" in (await ok("resolve", iid, "--summary", "rolled back deploy 4812")).out
        assert re.search(r"^  resolved at \S+ \d\d:\d\d UTC: rolled back deploy 4812$", (await ok("show", iid)).out,
                         re.M)
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
        assert state["url"].endswith(f"/workflows/{quiet}")
        await ok("standdown", quiet, "--reason", "it was the drill")
        assert re.search(r"^  stood down at \S+ \d\d:\d\d UTC: it was the drill$", (await ok("show", quiet)).out, re.M)


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


async def test_with_temporal_down_the_error_keeps_its_reason_and_is_cut_between_words() -> None:
    """The core's connect error is longer than a line: it is shortened at a word, and the OS's own words (what
    a user searches for) survive the cut, as does what to set."""
    from temporalio.client import Client

    with pytest.raises(RuntimeError) as raw:
        await Client.connect("127.0.0.1:1")
    full = str(raw.value)  # Failed client connect: … Os { code: 111, kind: ConnectionRefused, message: "…" })))
    reason = re.findall(r'message: "([^"]+)"', full)[-1]
    down = await cli("list", env={"INCIDENTFLOW_TEMPORAL_ADDRESS": "127.0.0.1:1"})
    assert down.code == 3 and down.out == "" and down.err.count("\n") == 1 and down.err.endswith("\n"), down
    prefix = "error: cannot reach Temporal at 127.0.0.1:1 (namespace default, plaintext): "
    assert down.err.startswith(prefix), down.err
    said, _, advice = down.err[len(prefix):].rstrip("\n").partition("; ")
    assert advice == "set INCIDENTFLOW_TEMPORAL_ADDRESS or run `incidentflow dev`", down.err
    if said != full:  # shortened: at a word boundary of the core's text, and the reason kept after the cut
        head, _, tail = said.partition(" … ")
        assert full.startswith(head) and full[len(head)] in " ,:;{([", (head, full)
        assert tail == reason, said
    assert reason in said and reason == "Connection refused", said


async def test_cli_refuses_what_the_config_does_not_know(dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    svc = f"cli-{uuid.uuid4().hex[:6]}"
    config = write_config(tmp_path, svc)
    async with running_worker(dev_env.client, config=lambda: load_config(config)) as (settings, _):
        env = {"INCIDENTFLOW_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
               "INCIDENTFLOW_TASK_QUEUE": settings.task_queue, "INCIDENTFLOW_USER": "pat",
               "INCIDENTFLOW_CONFIG": str(config)}
        everyone = "(known: pat, alice, bob, carol, dan)"
        known = f"is not one of incidentflow's people {everyone}"

        async def refused(*args: str, says: str, run_env: dict[str, str] = env) -> None:
            run = await cli(*args, env=run_env)
            assert run.code == 1 and run.err.count("\n") == 1 and says in run.err, (args, run.code, run.err)

        await refused("declare", "--service", "unknownsvc", "x", says=f"service: unknown service 'unknownsvc' "
                                                                     f"(known: {svc}, search)")
        await refused("declare", "--ic", "zed", "x", says=f"commander: 'zed' {known}")
        declared = await cli("declare", "--severity", "SEV2", "--service", svc, "Checkout failing", env=env)
        iid = declared.out.strip()
        assert declared.code == 0 and iid, declared.err
        await refused("page", iid, "zed", says=f"person: 'zed' {known}")
        await refused("role", iid, "ic", "zed", says=f"person: 'zed' {known}")
        people = f"is not one of incidentflow's people in {config} {everyone}"  # the CLI names its config
        await refused("ack", iid, "--by", "zed", says=f"by: 'zed' (--by) {people}: give --by one of them")
        os_user = {k: v for k, v in env.items() if k != "INCIDENTFLOW_USER"} | {"USER": "zed"}
        await refused("ack", iid, run_env=os_user, says=f"by: 'zed' (your OS user) {people}: set INCIDENTFLOW_USER "
                                                         "to your id among them (or pass --by)")
        await refused("escalate", iid, "--level", "9",
                      says="level: L9 is not a level of escalation policy 'default' at SEV2: it has L1–L4")
        state = json.loads((await cli("show", iid, "--json", env=env)).out)
        assert state["roles"] == {} and state["acknowledged_by"] is None
        assert not [e for e in state["timeline"] if "zed" in e["text"] or e["actor"] == "zed"], "nothing happened"
        assert "escalating at L4" in (await cli("escalate", iid, "--level", "4", env=env)).out
        paged = await cli("page", iid, "Dan", env=env)  # a name is the person's id
        assert paged.code == 0 and "paged dan via log" in paged.out, paged.err
        assert (await cli("list", "--service", "unknownsvc", env=env)).err == "no incidents match\n"


@pytest.mark.parametrize("args, says", [
    (["drill", "--ack-after", "soon"], "argument --ack-after: cannot read 'soon' as a duration"),
    (["drill", "--ack-after", "0s"], "argument --ack-after: '0s': give a duration above zero"),
    (["oncall", "--at", "yesterday"], "argument --at: cannot read 'yesterday' as a moment"),
    (["oncall", "--tz", "Mars/Olympus"], "argument --tz: unknown timezone 'Mars/Olympus'"),
    (["drill", "--at", "soon"], "argument --at: cannot read 'soon'"),
    (["escalate", "incident-x", "--level", "zero"], "argument --level: 'zero' is not an escalation level"),
    (["escalate", "incident-x", "--level", "21"], "give a number from 1 to 20"),
    (["list", "--service", "a b"], "argument --service: 'a b' is not a service name"),
    (["declare", "--severity", "SEV9", "x"], "unknown severity 'SEV9'"),
    (["timeline", "incident-x", "--by", "bob"], "unrecognized arguments: --by bob"),
    (["page", "incident-x", " "], "argument person: give a person"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
async def test_a_bad_argument_is_one_line_and_exit_2(args: list[str], says: str) -> None:
    run = await cli(*args, env={"INCIDENTFLOW_TEMPORAL_ADDRESS": "127.0.0.1:1"})
    assert run.code == 2 and run.err.count("\n") == 1 and says in run.err, (run.code, run.err)
    assert run.err.startswith(f"incidentflow {args[0]}: error: ") or run.err.startswith("incidentflow: error: ")
    assert run.err.rstrip().endswith("--help`)") and run.out == ""
