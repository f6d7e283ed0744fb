"""An incident run on a cold worker (no workflow cache: every task replays the run's history first, as after a
restart or an eviction) writes a history every later replay accepts.

The SDK applies a command-less workflow task's jobs together with the next task's update when that worker has no
cache (temporalio/sdk-rust#1146, tests/test_cold_update.py), while a replay applies them in two activations.
The incident wakes its coroutines in a fixed rank and applies an activation's jobs before it runs any of them
(workflows/wake_order.py), so both issue the same commands in the same order. Without that, the first `alerts`
signal that changed nothing, followed by a command, made the history unreplayable (TMPRL1100).
The status page's run loop and outbox pump likewise (behind the `wake-order` patch).
Real dev server; in-memory Slack (so the chat pump runs beside the run loop), a real SMTP server and a fake
Atlassian Statuspage for the status page."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
from temporalio import activity
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.mail import SmtpMailer
from activities.records import RecordStore
from activities.statuspage import StatusPageActivities, published_version
from activities.statuspage_io import AtlassianStatuspage
from activities.statuspage_mirror import StatuspageMirrorActivities
from activities.subscribers import StatusMailActivities
from domain.config import IncidentflowConfig, Settings
from domain.models import DeclareInput, NoteInput, RoleInput, Severity, SeverityInput
from domain.models.alert import AlertSignal
from domain.models.common import Role
from domain.models.messages import AlertsInput
from domain.statuspage.messages import StatusPageStart
from domain.statuspage.models import PublishInput, StatusPageConfig
from incidentflow.client import Incidents
from tests.fakes.memory import MemoryChat, MemoryDirectory
from tests.fakes.smtp import SmtpServer
from tests.fakes.statuspage import FakeStatuspage
from tests.helpers import eventually
from tests.test_statuspage_workflow import CONFIG as CONFIG_PAGE
from tests.test_statuspage_workflow import smtp, sp, store  # noqa: F401 - fixtures
from workers import single_batch
from workers.main import build_worker
from workers.registry import WORKFLOWS
from workflows.status_mail import StatusMailWorkflow
from workflows.statuspage import StatusPageWorkflow

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


class SlowConfig(StatusPageActivities):
    """The config arrives after the first publish: that handler waits for it, beside the run loop."""

    @activity.defn(name="load_statuspage_config")
    async def load_statuspage_config(self) -> StatusPageConfig:
        await asyncio.sleep(0.5)
        return await super().load_statuspage_config()


async def test_the_status_page_on_a_cold_worker_replays(
        dev_env: WorkflowEnvironment, tmp_path: Path,
        smtp: SmtpServer, sp: FakeStatuspage, store: RecordStore) -> None:  # noqa: F811 - the fixtures imported above
    """The status page's run loop (the files) and outbox pump (subscriber mail, the Statuspage mirror) both act on
    a publish; their results come in tasks that issue nothing, then the next publish comes. The first publish
    comes before the config has loaded, so its handler waits beside the run loop: under a full suite's load, when
    handlers still waited through `workflow.wait_condition`, that wrote a history the worker itself could not
    replay (TMPRL1100, `TimerCanceled` where the mail child's start was expected)."""
    config = CONFIG_PAGE.model_copy(update={"mirror": True})
    acts = SlowConfig(lambda: config, tmp_path)
    mail = StatusMailActivities(store.subscribers, SmtpMailer.from_url(smtp.url()), lambda: config)
    client, queue = dev_env.client, f"cold-sp-{uuid.uuid4().hex[:8]}"

    async def version() -> int:
        return published_version(tmp_path / "statuspage")

    async with httpx.AsyncClient(timeout=5) as http:
        mirror = StatuspageMirrorActivities(AtlassianStatuspage(
            http, page_id=sp.page_id, api_key=sp.api_key, base_url=sp.base_url,
            component_ids={"api": sp.add_component("Public API")}, min_interval=0.01))
        worker = Worker(client, task_queue=queue, workflows=[StatusPageWorkflow, StatusMailWorkflow],
                        activities=[acts.load_statuspage_config, acts.publish_page, mail.notify_subscribers,
                                    mirror.mirror_update, mirror.mirror_maintenance], max_cached_workflows=0)
        assert single_batch.enable(worker)
        async with worker:
            handle = await client.start_workflow(StatusPageWorkflow.run, StatusPageStart(),
                                                 id=f"statuspage-{uuid.uuid4().hex[:8]}", task_queue=queue)
            for n, status in enumerate(["investigating", "identified", "monitoring", "resolved"]):
                # a page its own worker cannot replay answers no update: fail in seconds, not at the suite's timeout
                done = await asyncio.wait_for(handle.execute_update(
                    StatusPageWorkflow.publish, PublishInput.model_validate({
                        "incident_id": "inc-1", "name": "Checkout failing", "status": status, "by": "carol",
                        "body": f"Update {n}", "components": [{"component": "api", "status": "major_outage"}]})), 20)
                await eventually(version, lambda v, want=done.version: v >= want)
                await asyncio.sleep(0.6)  # the mirror's and the mail's results: tasks with no commands
            history = await handle.fetch_history()
            await handle.terminate("test finished")
    result = await Replayer(workflows=[StatusPageWorkflow, StatusMailWorkflow],
                            data_converter=pydantic_data_converter).replay_workflow(history,
                                                                                     raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
