"""A worker SIGKILLed while it creates an action item's GitHub issue (GitHub created it; the worker never heard
back), and another worker started: the retried activity finds that issue, so there is exactly one ticket.
Real `incidentflow worker` processes against the time-skipping server and the fake GitHub over HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from temporalio.testing import WorkflowEnvironment

from domain.actions.models import ActionItem, ActionItemStart, action_id
from domain.postmortem.models import ItemKind, Priority
from tests.fakes.github import FakeGitHub
from workflows.action_item import ActionItemWorkflow

ROOT = Path(__file__).parent.parent


def worker(env: WorkflowEnvironment, queue: str, config: Path, gh: FakeGitHub, log: Path) -> subprocess.Popen[bytes]:
    environ = {**os.environ, "INCIDENTFLOW_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
               "INCIDENTFLOW_TASK_QUEUE": queue, "INCIDENTFLOW_CONFIG": str(config),
               "INCIDENTFLOW_DATA_DIR": str(config.parent / "data"), "INCIDENTFLOW_GITHUB_TOKEN": gh.token}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "incidentflow.cli", "worker"], cwd=ROOT, env=environ,
                                stdout=out, stderr=subprocess.STDOUT)


async def test_a_worker_killed_mid_ticket_creation_leaves_exactly_one_ticket(dev_env: WorkflowEnvironment,
                                                                             tmp_path: Path) -> None:
    with FakeGitHub(repo="acme/ops") as gh:
        config = tmp_path / "incidentflow.yaml"
        config.write_text(yaml.safe_dump({
            "people": [{"id": "alice", "name": "Alice", "github": "alice-gh"}],
            "action_items": {"tracker": {"kind": "github", "github": {"api_url": gh.base_url, "repo": "acme/ops"}},
                             "digest": {"enabled": False}}}))
        queue, log = "tq-ticket-kill", tmp_path / "workers.log"
        release = gh.hold_next("POST", "/issues")
        first = worker(dev_env, queue, config, gh, log)
        try:
            now = datetime.now(UTC)
            aid = action_id("incident-20261207-0100-checkout", "kill test")
            item = ActionItem(aid=aid, incident_id="incident-20261207-0100-checkout", text="Alert on queue depth",
                              owner="alice", due=(now + timedelta(days=14)).date(), priority=Priority.P1,
                              kind=ItemKind.detect, created_at=now, created_by="alice")
            handle = await dev_env.client.start_workflow(ActionItemWorkflow.run, ActionItemStart(item=item), id=aid,
                                                        task_queue=queue)
            deadline = time.monotonic() + 60
            while not gh.issues:  # worker A runs the activity: GitHub has created it, the answer is held back
                assert first.poll() is None and time.monotonic() < deadline, log.read_text()
                await asyncio.sleep(0.05)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            release.set()
            second = worker(dev_env, queue, config, gh, log)
            try:
                # the killed attempt misses its heartbeat (10 s); the retry runs on `second`
                deadline = time.monotonic() + 90
                while (ticket := (await handle.query(ActionItemWorkflow.get)).ticket) is None:
                    assert time.monotonic() < deadline, log.read_text()
                    await asyncio.sleep(0.5)
            finally:
                second.kill()
                second.wait(10)
        finally:
            release.set()
            if first.poll() is None:
                first.kill()
            await handle.terminate("test finished") if "handle" in locals() else None
        assert len(gh.issues) == 1, [i["title"] for i in gh.issues]
        assert ticket.key == str(gh.issues[0]["number"]) and ticket.tracker == "github"
        assert [r.status for r in gh.requests if r.method == "POST" and r.path.endswith("/issues")] == [0]
