"""A worker without chat (no Slack token) that picks up an incident whose channel another worker opened: its
channel sync is retried until a worker with chat takes it, instead of answering with a warning, which was a new
timeline event and so another sync, without end. Real dev server (real time for the retries), in-memory Chat."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.chat import NOT_HERE
from domain.config import IncidentflowConfig, Settings
from domain.models import DeclareInput, NoteInput, Severity
from incidentflow.client import Incidents
from tests.fakes.memory import MemoryChat, MemoryDirectory
from tests.helpers import eventually
from workers.main import build_worker

CONFIG = IncidentflowConfig.model_validate({"people": [{"id": "alice", "name": "Alice"}]})


async def _texts(chat: MemoryChat, incident_id: str) -> list[str]:
    return chat.texts(incident_id)


async def test_a_worker_without_chat_leaves_the_channel_to_one_with_it(dev_env: WorkflowEnvironment) -> None:
    client, chat = dev_env.client, MemoryChat()
    settings = Settings(task_queue=f"nochat-{uuid.uuid4().hex[:8]}")
    inc = Incidents(client, settings, CONFIG)

    def worker(with_chat: bool) -> Worker:
        return build_worker(client, settings, fail_fast=True, config=lambda: CONFIG, directory=MemoryDirectory(),
                            chat=chat if with_chat else None)

    async with worker(True):
        iid = await inc.declare(DeclareInput(title="Cart empty", severity=Severity.SEV3, declared_by="alice",
                                             page=False))
        await eventually(lambda: inc.get(iid), lambda s: s.chat is not None
                         and s.chat.posted_seq >= max(e.seq for e in s.timeline))
    handle = client.get_workflow_handle(iid)
    before = len((await handle.fetch_history()).events)
    async with worker(False):
        await inc.add_note(iid, NoteInput(text="Rolled back deploy 4812", by="alice"))
        await asyncio.sleep(4)
        events = (await handle.fetch_history()).events[before:]
        syncs = [e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                 and e.activity_task_scheduled_event_attributes.activity_type.name == "sync_chat"]
        assert len(syncs) == 1, f"{len(syncs)} syncs in 4 s: the pump loops"
        pending = (await handle.describe()).raw_description.pending_activities
        assert len(pending) == 1 and pending[0].activity_type.name == "sync_chat" and pending[0].attempt >= 2
        assert NOT_HERE in pending[0].last_failure.message
        state = await inc.get(iid)
        assert not [e for e in state.timeline if "not configured" in e.text], "the refusal is no timeline event"
    async with worker(True):  # a worker with chat takes the retried sync over
        texts: list[str] = await eventually(lambda: _texts(chat, iid), lambda t: "Rolled back deploy 4812" in t)
        assert texts.count("Rolled back deploy 4812") == 1
