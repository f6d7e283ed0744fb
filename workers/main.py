"""The worker: adapters built once from Settings, workflows and bound activity methods registered."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from temporalio.client import Client
from temporalio.worker import Interceptor, Worker

from activities.notify import IncidentActivities, LogNotifier
from activities.ports import Notifier
from incidentflow.config import Settings
from workflows import WORKFLOWS

log = logging.getLogger("incidentflow.worker")


def build_worker(client: Client, settings: Settings, notifier: Notifier | None = None,
                 interceptors: Sequence[Interceptor] = (), fail_fast: bool = False) -> Worker:
    """`fail_fast` (tests) turns any workflow-code exception into a failed workflow instead of a task
    retried forever, so a bug shows as a red test, not a hang."""
    incident_activities = IncidentActivities(notifier or LogNotifier())
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=[incident_activities.send_notification],
        interceptors=interceptors,
        workflow_failure_exception_types=[Exception] if fail_fast else [],
    )


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    from incidentflow.client import connect

    client = await connect(settings)
    worker = build_worker(client, settings)
    log.info("worker polling task queue %s on %s", settings.task_queue, settings.temporal_address)
    async with worker:
        await (stop.wait() if stop else asyncio.Event().wait())
