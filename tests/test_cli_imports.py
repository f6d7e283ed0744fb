"""The CLI loads only what a command needs: `--help` and the commands that only talk to Temporal import
neither the worker, Kubernetes, Slack, aiohttp nor the HTTP stack (each costs a user time on every call).

Each case is a fresh interpreter that runs our real `main(argv)` and then reports which of those top-level
modules are in `sys.modules`. The Temporal commands run against an address nobody listens on, so they go
as far as connecting and stop there with their clear error (exit 3).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
HEAVY = ("workers", "kubernetes", "slack_sdk", "aiohttp", "fastapi", "uvicorn")
PROBE = f"""
import json, os, sys
from incidentflow.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:  # --help
    code = exc.code
print(json.dumps({{"code": code, "loaded": sorted(m for m in {HEAVY!r} if m in sys.modules)}}), flush=True)
os._exit(0)
"""
UNREACHABLE = "127.0.0.1:1"


def probe(*argv: str) -> tuple[int, list[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIDENTFLOW_")}
    env["INCIDENTFLOW_TEMPORAL_ADDRESS"] = UNREACHABLE
    run = subprocess.run([sys.executable, "-c", PROBE, *argv], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    return int(report["code"] or 0), list(report["loaded"]), run.stderr


def test_help_loads_nothing_heavy() -> None:
    code, loaded, _ = probe("--help")
    assert code == 0 and loaded == []


@pytest.mark.parametrize("argv", [
    ["list", "--open"],
    ["show", "incident-20261123-0815-checkout"],
    ["ack", "incident-20261123-0815-checkout"],
    ["severity", "incident-20261123-0815-checkout", "sev1", "--reason", "all regions"],
    ["note", "incident-20261123-0815-checkout", "pool size 20"],
    ["declare", "--severity", "SEV2", "Checkout failing"],
    ["runbook", "approve", "incident-20261123-0815-checkout-runbook-1"],
], ids=lambda argv: argv[0] if argv[0] != "runbook" else "runbook-approve")
def test_temporal_commands_load_nothing_heavy(argv: list[str]) -> None:
    code, loaded, err = probe(*argv)
    assert code == 3 and err.startswith(f"error: cannot reach Temporal at {UNREACHABLE}"), err
    assert loaded == [], f"incidentflow {' '.join(argv)} imported {loaded}"


READ_PROBE = f"""
import json, os, sys
from incidentflow.cli import reads
assert reads.handles(sys.argv[1:])
code = reads.main(sys.argv[1:])
light = ("workflows", "activities", "incidentflow.commands", "incidentflow.client", "domain.config", "jinja2",
         "sqlalchemy", *{HEAVY!r})
print(json.dumps({{"code": code, "loaded": sorted(m for m in light if m in sys.modules)}}), flush=True)
os._exit(0)
"""


@pytest.mark.parametrize("argv", [["show", "incident-20261123-0815-checkout"],
                                  ["timeline", "incident-20261123-0815-checkout", "--markdown"]],
                         ids=lambda argv: argv[0])
def test_the_reads_people_repeat_load_no_workflow_nor_the_command_table(argv: list[str]) -> None:
    """`show` and `timeline` take incidentflow.cli.reads (what the console script runs for them): the Temporal
    client and the state model only, so they answer within 1.5x of a minimal client (bench/cli.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIDENTFLOW_")}
    env["INCIDENTFLOW_TEMPORAL_ADDRESS"] = UNREACHABLE
    run = subprocess.run([sys.executable, "-c", READ_PROBE, *argv], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["code"] == 3 and run.stderr.startswith(f"error: cannot reach Temporal at {UNREACHABLE}"), run.stderr
    assert report["loaded"] == [], report["loaded"]
