"""A worker that creates Jira tickets the way the action item's workflow does, for tests/test_jira.py
(in process, and as a process to SIGKILL mid-creation):

    INCIDENTFLOW_JIRA_EMAIL=… INCIDENTFLOW_JIRA_API_TOKEN=… python -m tests.jira_worker ADDRESS TASK_QUEUE JIRA_URL

The secrets come from the environment, as in production (`build_tracker` over `LearningSecrets`)."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

from activities.errors import NON_RETRYABLE_TYPES
from activities.ports import Tracker
from domain.actions.models import TicketInput, TicketRef

RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=6,
                    non_retryable_error_types=list(NON_RETRYABLE_TYPES))
START_TO_CLOSE = timedelta(seconds=4)  # a killed worker's attempt is retried elsewhere after this


class TicketActivities:
    def __init__(self, tracker: Tracker) -> None:
        self._tracker = tracker

    @activity.defn
    async def create_ticket(self, item: TicketInput) -> TicketRef:
        return await self._tracker.create(item)


@workflow.defn(sandboxed=False)  # a test double: no sandbox re-imports of this module
class CreateTicketWorkflow:
    @workflow.run
    async def run(self, item: TicketInput) -> TicketRef:
        return await workflow.execute_activity_method(
            TicketActivities.create_ticket, item, start_to_close_timeout=START_TO_CLOSE, retry_policy=RETRY)


async def main(address: str, task_queue: str, jira_url: str) -> None:
    import httpx
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import Worker

    from activities.postmortem_sinks import build_tracker
    from domain.postmortem.config import JiraConfig, LearningSecrets, TrackerConfig

    config = TrackerConfig(kind="jira", jira=JiraConfig(url=jira_url, project="OPS"))
    async with httpx.AsyncClient(timeout=30) as http:
        tracker = build_tracker(config, LearningSecrets(), http)
        assert tracker is not None
        acts = TicketActivities(tracker)
        client = await Client.connect(address, data_converter=pydantic_data_converter)
        async with Worker(client, task_queue=task_queue, workflows=[CreateTicketWorkflow],
                          activities=[acts.create_ticket]):
            await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
