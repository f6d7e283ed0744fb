"""The channel reads in order: "Incident channel … opened" comes before whatever happened while it was
being opened (an auto-run's diagnostics, commands); alert churn is posted where it happened. Real
workflows on the dev server (real time: the commands land while Slack makes the open wait), with the
in-memory Chat port."""

from __future__ import annotations

import uuid

from temporalio.testing import WorkflowEnvironment

from activities import errors
from domain.config import IncidentflowConfig, Settings
from domain.models import AlertSignal, DeclareInput, NoteInput, Severity, StatusUpdateInput
from incidentflow.client import Incidents
from tests.fakes.memory import MemoryChat, MemoryDirectory
from tests.helpers import eventually
from workers.main import build_worker

CONFIG = IncidentflowConfig.model_validate({"people": [{"id": "alice", "name": "Alice"}]})


async def _value(value: object) -> object:
    return value


async def test_channel_opened_comes_before_what_happened_while_it_opened(dev_env: WorkflowEnvironment) -> None:
    chat = MemoryChat()
    chat.failures.fail_next(errors.slack_error("conversations.create", 429, "ratelimited", "2"))
    settings = Settings(task_queue=f"order-{uuid.uuid4().hex[:8]}")
    async with build_worker(dev_env.client, settings, fail_fast=True, config=lambda: CONFIG, chat=chat,
                            directory=MemoryDirectory()):
        inc = Incidents(dev_env.client, settings, CONFIG)
        iid = await inc.declare(DeclareInput(title="Cart empty", severity=Severity.SEV2, declared_by="alice",
                                             page=False))
        # while Slack makes the channel wait (429, Retry-After 2 s):
        await inc.post_status_update(iid, StatusUpdateInput(text="Carts load empty for 20% of users", by="alice"))
        await inc.raise_alert(iid, AlertSignal(source="alertmanager", fingerprint="a1", title="CartErrors"))
        await inc.add_note(iid, NoteInput(text="Looking at the cart service", by="alice"))
        state = await inc.get(iid)
        assert state.chat is None, "the commands above ran before the channel existed"
        state = await eventually(lambda: inc.get(iid), lambda s: s.chat is not None
                                 and s.chat.posted_seq >= max(e.seq for e in s.timeline))
        texts = await eventually(lambda: _value(chat.texts(iid)), lambda t: len(t) >= 4)
        assert texts[0].startswith("Incident channel ") and "opened" in texts[0], texts
        assert texts[1:] == ["Carts load empty for 20% of users", "Alert firing: CartErrors",
                             "Looking at the cart service"], texts
