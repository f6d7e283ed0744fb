"""A worker SIGKILLed mid-fan-out, and another started: every subscriber is mailed, and only the messages
in flight at the kill (at most the fan-out's concurrency) may arrive twice. Real processes, the real dev
server, a real SMTP server (aiosmtpd) and the records store on a SQLite file both processes share."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.records import RecordStore
from domain.statuspage.mail import Notification, NotificationKind
from tests.fakes.smtp import Received, SmtpServer
from tests.status_mail_worker import FanoutProbeWorkflow

ROOT = Path(__file__).parent.parent
SUBSCRIBERS = 1000
KILL_AT = 300  # messages received when worker A is killed
CONCURRENCY = 4  # StatusMailActivities' default: the most messages in flight at once


def start(address: str, task_queue: str, db: str, smtp: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "tests.status_mail_worker", address, task_queue, db, smtp],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


async def wait_polling(client: Client, task_queue: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until this very process (the SDK's identity is `pid@host`) polls the task queue."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"worker exited early ({proc.returncode}):\n{log.read_text()}"
        resp = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace="default", task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
        if any(p.identity.startswith(f"{proc.pid}@") for p in resp.pollers):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"worker {proc.pid} not polling {task_queue} within 30 s:\n{log.read_text()}")


def kill(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


@pytest.mark.timeout(240)
async def test_a_worker_killed_mid_fanout_loses_nobody_and_repeats_only_the_messages_in_flight(
        dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/records.db"
    store = RecordStore.open(db)
    emails = [f"user{i}@example.com" for i in range(SUBSCRIBERS)]
    for email in emails:
        store.subscribers.confirm(store.subscribers.subscribe(email).confirm_token)
    client, task_queue, log = dev_env.client, f"mail-{uuid.uuid4().hex[:8]}", tmp_path / "workers.log"
    address = client.service_client.config.target_host
    killed = threading.Event()
    worker_a = worker_b = None
    with SmtpServer() as smtp:
        try:
            worker_a = start(address, task_queue, db, smtp.url(), log)

            def kill_a_at(_: Received) -> None:
                if len(smtp.received) >= KILL_AT and not killed.is_set():
                    killed.set()
                    kill(worker_a)  # SIGKILL from the SMTP server's thread, right as message KILL_AT lands

            smtp.on_message = kill_a_at
            await wait_polling(client, task_queue, worker_a, log)
            notification = Notification(notification_id=f"kill-{uuid.uuid4().hex[:6]}", kind=NotificationKind.incident,
                                        subject="API errors", text="We are investigating failing API requests.")
            handle = await client.start_workflow(FanoutProbeWorkflow.run, notification, id=notification.notification_id,
                                                 task_queue=task_queue)
            while not killed.is_set():
                assert worker_a.poll() is None, log.read_text()
                await asyncio.sleep(0.05)
            at_kill = len(smtp.messages())
            worker_b = start(address, task_queue, db, smtp.url(), log)
            result = await asyncio.wait_for(handle.result(), 180)
        finally:
            kill(worker_a)
            kill(worker_b)
        counts = smtp.count_by_recipient()
    store.close()
    repeated = sorted(e for e, n in counts.items() if n > 1)
    print(f"\nkilled after {at_kill} messages; retry sent {result.sent}, skipped {result.already_sent}; "
          f"repeated: {repeated}")
    assert set(counts) == set(emails), f"lost: {sorted(set(emails) - set(counts))[:10]}\n{log.read_text()}"
    assert max(counts.values()) <= 2 and len(repeated) <= CONCURRENCY, repeated
    assert result.sent + result.already_sent <= SUBSCRIBERS and result.sent >= SUBSCRIBERS - at_kill
