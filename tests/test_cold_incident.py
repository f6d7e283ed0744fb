"""An incident run on a cold worker (no workflow cache: every task replays the run's history first, as after a
restart or an eviction) writes a history every later replay accepts.

The SDK applies a command-less workflow task's jobs together with the next task's update when that worker has no
cache (temporalio/sdk-rust#1146, tests/test_cold_update.py), while a replay applies them in two activations.
The incident wakes its coroutines in a fixed rank and applies an activation's jobs before it runs any of them
(workflows/wake_order.py), so both issue the same commands in the same order. Without that, the first `alerts`
signal that changed nothing, followed by a command, made the history unreplayable (TMPRL1100).
Real dev server, in-memory Slack (so the chat pump runs beside the run loop)."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from domain.config import IncidentflowConfig, Settings
from domain.models import DeclareInput, NoteInput, RoleInput, Severity, SeverityInput
from domain.models.alert import AlertSignal
from domain.models.common import Role
from domain.models.messages import AlertsInput
from incidentflow.client import Incidents
from tests.fakes.memory import MemoryChat, MemoryDirectory
from tests.helpers import eventually
from workers.main import build_worker
from workers.registry import WORKFLOWS

PEOPLE = ["alice", "bob", "carol", "dave"]
CONFIG = IncidentflowConfig.model_validate({"people": [{"id": p, "name": p.title()} for p in PEOPLE]})
REPEAT = AlertsInput(alerts=[AlertSignal(source="alertmanager", fingerprint="f1", title="CheckoutErrors")])


async def test_an_incident_on_a_cold_worker_replays(dev_env: WorkflowEnvironment) -> None:
    client, chat = dev_env.client, MemoryChat()
    settings = Settings(task_queue=f"cold-{uuid.uuid4().hex[:8]}")
    inc = Incidents(client, settings, CONFIG)
    worker = build_worker(client, settings, fail_fast=True, config=lambda: CONFIG, directory=MemoryDirectory(),
                          chat=chat, max_cached_workflows=0)
    async with worker:
        iid = await inc.declare(DeclareInput(title="Checkout errors", severity=Severity.SEV3, declared_by="alice",
                                             page=False))
        handle = client.get_workflow_handle(iid)
        await handle.signal("alerts", REPEAT)  # the alert is new: a timeline event, a sync

        async def caught_up() -> None:
            await eventually(lambda: inc.get(iid), lambda s: s.chat is not None
                             and s.chat.posted_seq >= max(e.seq for e in s.timeline))
            await asyncio.sleep(0.3)  # the sync's completion: a task with no commands

        await caught_up()
        for n in range(4):
            await handle.signal("alerts", REPEAT)  # a repeat: the run loop wakes, nothing changes, no commands
            await asyncio.sleep(0.4)
            await inc.assign_role(iid, RoleInput(role=Role.ic, person=PEOPLE[(n + 1) % 4], by="alice"))
            await caught_up()
            await inc.set_severity(iid, SeverityInput(severity=Severity.SEV2 if n % 2 == 0 else Severity.SEV3,
                                                      by="alice"))
            await inc.add_note(iid, NoteInput(text=f"note {n}", by="alice"))
            await caught_up()
        history = await handle.fetch_history()
        await handle.terminate("test finished")
    result = await Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter).replay_workflow(
        history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
