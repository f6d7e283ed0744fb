"""Status page benchmark: publish latency (command → static files on disk) against raw Temporal.

    .venv/bin/python bench/statuspage.py [--publishes 200] [--json]

* incidentflow: `StatusPageWorkflow.publish` updates, one after another; each is timed from the client's
  update call until `version.txt` in the publish directory says that version (every page file written).
* raw: a workflow whose update runs one plain activity writing one file; timed from the update call until
  the file is there.

Starts its own local dev server (in-memory) and one worker at a time in this process. It measures and prints;
it never asserts. With --json, one JSON line of named figures at the end. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

if (_bench := os.path.dirname(__file__)) not in sys.path:
    sys.path.insert(0, _bench)
with workflow.unsafe.imports_passed_through():
    from common import (
        fmt,
        peak_rss_mb,
        percentile,
        ratio,
        run_and_exit,
        start_dev_server,
        table,
        temporal_cli,
    )


@activity.defn(name="raw_write_file")
async def raw_write_file(path: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(path)
    os.replace(tmp, path)


@workflow.defn(name="RawPublishWorkflow")
class RawPublish:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.update
    async def publish(self, path: str) -> None:
        await workflow.execute_activity(raw_write_file, path, start_to_close_timeout=timedelta(seconds=30))


async def wait_for(check: Any, limit: float = 30.0) -> None:
    t0 = time.perf_counter()
    while not check():
        if time.perf_counter() - t0 > limit:
            raise TimeoutError("the file never appeared")
        await asyncio.sleep(0.002)


async def run_raw(client: Client, n: int, directory: Path) -> list[float]:
    queue = f"raw-{uuid.uuid4().hex[:6]}"
    out = []
    async with Worker(client, task_queue=queue, workflows=[RawPublish], activities=[raw_write_file]):
        handle = await client.start_workflow(RawPublish.run, id=f"raw-publish-{queue}", task_queue=queue)
        for i in range(n):
            path = directory / f"raw-{i}.txt"
            t0 = time.perf_counter()
            await handle.execute_update(RawPublish.publish, str(path))
            await wait_for(path.exists)
            out.append((time.perf_counter() - t0) * 1000)
    return out


async def run_incidentflow(client: Client, n: int, directory: Path) -> list[float]:
    from activities.statuspage import StatusPageActivities, published_version
    from domain.statuspage.messages import StatusPageStart
    from domain.statuspage.models import (
        ComponentChange,
        ComponentStatus,
        PublicStatus,
        PublishInput,
        StatusPageConfig,
    )
    from workflows.maintenance import MaintenanceWorkflow
    from workflows.statuspage import StatusPageWorkflow

    config = StatusPageConfig.model_validate({
        "title": "Bench status", "publish_dir": str(directory / "page"),
        "components": [{"id": f"c{k}", "name": f"Component {k}", "services": [f"s{k}"]} for k in range(8)]})
    acts = StatusPageActivities(lambda: config, directory)
    queue = f"sp-{uuid.uuid4().hex[:6]}"
    statuses = list(PublicStatus)
    out = []
    async with Worker(client, task_queue=queue, workflows=[StatusPageWorkflow, MaintenanceWorkflow],
                      activities=[acts.load_statuspage_config, acts.publish_page]):
        handle = await client.start_workflow(StatusPageWorkflow.run, StatusPageStart(), id=f"sp-{queue}",
                                             task_queue=queue)
        for i in range(n):
            cmd = PublishInput(
                incident_id=f"inc-{i // 4}", name=f"Incident {i // 4}", status=statuses[i % 4],
                body=f"Update {i}: what is affected, what we know, what we do.", by="bench",
                components=[ComponentChange(component=f"c{i % 8}", status=ComponentStatus.partial_outage
                                            if i % 4 != 3 else ComponentStatus.operational)])
            t0 = time.perf_counter()
            result = await handle.execute_update(StatusPageWorkflow.publish, cmd)
            await wait_for(lambda v=result.version: published_version(directory / "page") >= v)
            out.append((time.perf_counter() - t0) * 1000)
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--publishes", "-n", type=int, default=200, help="publishes per system (200)")
    ap.add_argument("--json", action="store_true", help="end with one JSON line of named figures")
    args = ap.parse_args()
    env, boot = await start_dev_server(temporal_cli())
    import temporalio
    print(f"\nincidentflow status page benchmark: N={args.publishes}; temporalio {temporalio.__version__}, "
          f"Python {platform.python_version()}, {os.cpu_count()} cores; dev server (in-memory) up in {boot:.2f} s",
          flush=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            raw = await run_raw(env.client, args.publishes, Path(tmp))
            flow = await run_incidentflow(env.client, args.publishes, Path(tmp))
    finally:
        await env.shutdown()

    def row(name: str, v: list[float]) -> list[str]:
        return [name, str(len(v)), fmt(percentile(v, 50)), fmt(percentile(v, 99)), fmt(max(v))]

    print(table("Publish latency (ms): command → files on disk", ["system", "n", "p50", "p99", "max"],
                [row("incidentflow", flow), row("raw (one activity, one file)", raw),
                 ["incidentflow / raw", "", ratio(percentile(flow, 50), percentile(raw, 50)),
                  ratio(percentile(flow, 99), percentile(raw, 99)), ratio(max(flow), max(raw))]]))
    print(f"peak RSS of this process: {peak_rss_mb():.0f} MB")
    if args.json:
        print(json.dumps({"publish_p50_ms": round(percentile(flow, 50), 2),
                          "publish_p99_ms": round(percentile(flow, 99), 2),
                          "raw_publish_p50_ms": round(percentile(raw, 50), 2),
                          "raw_publish_p99_ms": round(percentile(raw, 99), 2),
                          "publish_p99_ratio": round(percentile(flow, 99) / percentile(raw, 99), 2),
                          "publishes": args.publishes}))


if __name__ == "__main__":
    run_and_exit(main)
