"""A worker process that runs only the status mail fan-out, for tests/test_status_mail_kill.py.

    python -m tests.status_mail_worker ADDRESS TASK_QUEUE DATABASE_URL SMTP_URL

`FanoutProbeWorkflow` runs `notify_subscribers` with the heartbeat timeout and retry policy a workflow
would give it, so a SIGKILLed worker's attempt is retried on the next worker a few seconds later."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.subscribers import StatusMailActivities
    from domain.statuspage.mail import FanoutResult, Notification
    from domain.statuspage.models import StatusPageConfig

HEARTBEAT_TIMEOUT = timedelta(seconds=3)


@workflow.defn
class FanoutProbeWorkflow:
    @workflow.run
    async def run(self, notification: Notification) -> FanoutResult:
        return await workflow.execute_activity_method(
            StatusMailActivities.notify_subscribers, notification, start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=5))


async def main(address: str, task_queue: str, database_url: str, smtp_url: str) -> None:
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import Worker

    from activities.mail import SmtpMailer
    from activities.records import RecordStore

    store = RecordStore.open(database_url)
    page = StatusPageConfig(title="Acme Status", url="https://status.example.com")
    acts = StatusMailActivities(store.subscribers, SmtpMailer.from_url(smtp_url), lambda: page, batch_size=100)
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    async with Worker(client, task_queue=task_queue, workflows=[FanoutProbeWorkflow],
                      activities=[acts.notify_subscribers]):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
