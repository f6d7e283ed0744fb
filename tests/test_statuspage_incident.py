"""The incident's public side on the time-skipping server, with the real worker: a draft on declaring (and on
identified, monitoring, resolved, reopen), the first public update due 10 minutes after declaring with
reminders to the comms lead until it is published, the cadence restarting from each publish, auto-publish for
the severities that ask for it, and nothing of this for incidents whose service has no component."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from domain.config import IncidentflowConfig, Settings
from domain.models import (
    DeclareInput,
    Phase,
    PhaseInput,
    ReopenInput,
    ResolveInput,
    Role,
    RoleInput,
    Severity,
)
from domain.models.common import EventKind
from domain.statuspage.messages import statuspage_id
from incidentflow.client import Incidents
from workers.main import build_worker
from workflows.statuspage import StatusPageWorkflow

CONFIG = IncidentflowConfig.model_validate({
    "people": [{"id": "alice", "name": "Alice"}, {"id": "bob", "name": "Bob"}],
    "services": [{"name": "checkout"}, {"name": "search"}, {"name": "internal"}],
    "statuspage": {"title": "Acme status", "url": "http://status.test", "first_update": "10m",
                   "cadence": {"SEV2": "30m"}, "auto_publish": ["SEV1"],
                   "components": [{"id": "pay", "name": "Payments", "services": ["checkout"]},
                                  {"id": "find", "name": "Search", "services": ["search"]}]}})


@asynccontextmanager
async def stack(env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Incidents]:
    settings = Settings(task_queue=f"pub-{uuid.uuid4().hex[:8]}", data_dir=tmp_path)
    async with build_worker(env.client, settings, fail_fast=True, config=lambda: CONFIG):
        inc = Incidents(env.client, settings, CONFIG)
        await inc.ensure_statuspage()
        yield inc


async def declare(inc: Incidents, service: str, severity: Severity = Severity.SEV2) -> str:
    return await inc.declare(DeclareInput(title="Card payments failing", severity=severity, service=service,
                                          declared_by="alice", page=False))


def texts(state: Any, kind: EventKind) -> list[str]:
    return [e.text for e in state.timeline if e.kind == kind]


async def until(inc: Incidents, iid: str, check: Any, tries: int = 100) -> Any:
    for _ in range(tries):
        state = await inc.get(iid)
        if check(state):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {[e.text for e in state.timeline]}")


async def test_drafts_reminders_and_the_cadence(ts_env: WorkflowEnvironment, tmp_path: Path) -> None:
    async with stack(ts_env, tmp_path) as inc:
        iid = await declare(inc, "checkout")
        state = await until(inc, iid, lambda s: texts(s, EventKind.suggestion))
        assert state.public.components == ["pay"]
        first = texts(state, EventKind.suggestion)[0]
        assert "Public update to publish (investigating; pay partial_outage)" in first and "Payments" in first
        await inc.assign_role(iid, RoleInput(role=Role.comms, person="bob", by="alice"))

        await ts_env.sleep(timedelta(minutes=10, seconds=5))  # the first public update is owed
        state = await until(inc, iid, lambda s: any("status page owes" in t for t in texts(s, EventKind.reminder)))
        reminder = next(t for t in texts(state, EventKind.reminder) if "status page owes" in t)
        assert reminder.endswith("→ bob")  # the comms lead

        result = await inc.publish_public_update(iid, "bob")
        assert result.update.status.value == "investigating"
        state = await until(inc, iid, lambda s: s.public.last_status == "investigating")
        assert state.public.due == state.public.last_at + timedelta(minutes=30)
        assert any("Published a public update" in e.text and e.actor == "bob" for e in state.timeline)

        await inc.set_phase(iid, PhaseInput(phase=Phase.identified, by="alice", note="bad deploy"))
        state = await until(inc, iid, lambda s: len(texts(s, EventKind.suggestion)) >= 2)
        assert "(identified;" in texts(state, EventKind.suggestion)[-1]

        await inc.resolve(iid, ResolveInput(by="alice", summary="rolled back"))
        state = await until(inc, iid, lambda s: any("(resolved; pay operational)" in t
                                                    for t in texts(s, EventKind.suggestion)))
        assert state.public.due is not None  # the resolution is owed: the draft first, reminders 10 min on
        assert not any("owes the public the resolution" in t for t in texts(state, EventKind.reminder))
        await inc.publish_public_update(iid, "bob")
        state = await until(inc, iid, lambda s: s.public.last_status == "resolved")
        assert state.public.due is None
        page = await inc.statuspage_state()
        assert page.components["pay"].status.value == "operational" and not page.incident(iid).open

        await inc.reopen(iid, ReopenInput(by="alice", reason="errors are back"))
        state = await until(inc, iid, lambda s: any("(investigating;" in t for t in texts(s, EventKind.suggestion)[1:]))
        assert state.public.due is not None


async def test_sev1_auto_publishes_and_a_service_without_components_owes_nothing(ts_env: WorkflowEnvironment,
                                                                               tmp_path: Path) -> None:
    async with stack(ts_env, tmp_path) as inc:
        iid = await declare(inc, "checkout", Severity.SEV1)
        state = await until(inc, iid, lambda s: s.public and s.public.last_status == "investigating")
        assert any(e.actor == "incidentflow (auto-publish)" for e in state.timeline)
        page = await ts_env.client.get_workflow_handle_for(
            StatusPageWorkflow.run, statuspage_id(inc.settings.task_queue)).query(StatusPageWorkflow.get_state)
        assert page.components["pay"].status.value == "major_outage"

        other = await declare(inc, "internal")
        await ts_env.sleep(timedelta(minutes=30))
        state = await inc.get(other)
        assert state.public is None
        assert not texts(state, EventKind.suggestion) and not any("status page" in t for t in
                                                                  texts(state, EventKind.reminder))


async def test_public_update_reminders_go_on_until_it_is_posted(ts_env: WorkflowEnvironment, tmp_path: Path) -> None:
    """Six reminders 10 minutes apart, then hourly, for as long as the update is owed; publishing stops them."""
    async with stack(ts_env, tmp_path) as inc:
        iid = await declare(inc, "checkout")
        await until(inc, iid, lambda s: texts(s, EventKind.suggestion))
        await ts_env.sleep(timedelta(minutes=10 + 50, seconds=5))  # due at 10 min, then 20, 30 … 60: six

        def owed(s: Any) -> list[Any]:
            return [e for e in s.timeline if e.kind == EventKind.reminder and "status page owes" in e.text]
        state = await until(inc, iid, lambda s: len(owed(s)) == 6)
        gaps = [b.at - a.at for a, b in zip(owed(state), owed(state)[1:], strict=False)]
        assert [round(g.total_seconds() / 60) for g in gaps] == [10] * 5, gaps
        await ts_env.sleep(timedelta(hours=2, seconds=5))  # after the sixth: hourly, not silence
        state = await until(inc, iid, lambda s: len(owed(s)) == 8)
        assert round((owed(state)[-1].at - owed(state)[-2].at).total_seconds() / 60) == 60

        await inc.assign_role(iid, RoleInput(role=Role.comms, person="alice", by="alice"))
        await inc.publish_public_update(iid, "alice")
        await until(inc, iid, lambda s: s.public.last_status == "investigating")
        before = len(owed(await inc.get(iid)))
        await ts_env.sleep(timedelta(minutes=25))  # SEV2's public cadence is 30 min: nothing owed yet
        assert len(owed(await inc.get(iid))) == before
