"""State stays bounded: continue-as-new carries the incident over, storms are aggregated and capped."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from domain.models import (
    AckInput,
    AlertSignal,
    DeclareInput,
    EventKind,
    IncidentPolicy,
    IncidentStart,
    NoteInput,
    Phase,
    PhaseInput,
    Severity,
    StatusUpdateInput,
)
from incidentflow.client import Incidents
from tests.conftest import running_worker
from tests.helpers import events, eventually, settled
from workflows.incident import IncidentWorkflow


async def start(env: WorkflowEnvironment, task_queue: str, wid: str, policy: IncidentPolicy) -> None:
    await env.client.start_workflow(
        IncidentWorkflow.run,
        IncidentStart(declare=DeclareInput(title="Storm", severity=Severity.SEV2, declared_by="t"),
                      policy=policy),
        id=wid, task_queue=task_queue)


async def test_continue_as_new_preserves_timeline_and_timers(ts_env: WorkflowEnvironment) -> None:
    async with running_worker(ts_env.client) as (settings, notifier):
        inc = Incidents(ts_env.client, settings)
        wid = "incident-can-test"
        await start(ts_env, settings.task_queue, wid, IncidentPolicy(continue_as_new_after_events=40))
        first_run = (await ts_env.client.get_workflow_handle(wid).describe()).run_id
        await inc.acknowledge(wid, AckInput(by="alice"))
        for i in range(30):
            await inc.add_note(wid, NoteInput(text=f"note {i}", by="scribe"))
            if i % 10 == 9:  # let the workflow process a batch, so history grows in several tasks
                await inc.post_status_update(wid, StatusUpdateInput(text=f"update {i}", by="carol"))
        await settled(ts_env.client, wid)  # it continues-as-new several times: no query until it has settled
        state = await inc.get(wid)
        assert state.runs >= 2
        assert [e.text for e in events(state, EventKind.note)] == [f"note {i}" for i in range(30)]
        assert state.acknowledged_by == "alice" and state.timeline[0].kind == EventKind.declared
        seqs = [e.seq for e in state.timeline]
        assert seqs == sorted(set(seqs)), "event numbering continues across runs"
        old = await ts_env.client.get_workflow_handle(wid, run_id=first_run).describe()
        assert old.status == WorkflowExecutionStatus.CONTINUED_AS_NEW
        # the cadence timer survives the hand-over: next reminder 30 min after the last update
        last_update = events(state, EventKind.status_update)[-1].at
        await ts_env.sleep(timedelta(minutes=31))
        reminder = events(await inc.get(wid), EventKind.reminder)
        assert len(reminder) == 1 and reminder[0].at - last_update < timedelta(minutes=30, seconds=1)
        # commands still work on the new run through the same id
        await inc.set_phase(wid, PhaseInput(phase=Phase.investigating, by="alice"))
        assert (await inc.get(wid)).phase == Phase.investigating


async def test_alert_and_note_storm_stays_bounded(ts_env: WorkflowEnvironment) -> None:
    async with running_worker(ts_env.client) as (settings, _):
        inc = Incidents(ts_env.client, settings)
        wid = "incident-storm-test"
        policy = IncidentPolicy(max_alerts=50, max_timeline_events=100, max_text_length=200)
        await start(ts_env, settings.task_queue, wid, policy)
        await inc.set_phase(wid, PhaseInput(phase=Phase.investigating, by="alice"))
        sends = [inc.raise_alert(wid, AlertSignal(fingerprint=f"fp-{i % 80}", title=f"alert {i % 80}"))
                 for i in range(400)]
        sends += [inc.add_note(wid, NoteInput(text="x" * 5000, by="bot")) for _ in range(150)]
        for chunk in range(0, len(sends), 50):
            await asyncio.gather(*sends[chunk:chunk + 50])
        state = await eventually(lambda: inc.get(wid), lambda s: s.alerts_received == 400)
        assert len(state.alerts) == 50 and state.alerts_dropped == 400 - sum(a.count for a in state.alerts.values())
        assert all(a.count == 5 for a in state.alerts.values()), "repeats only bump counters"
        assert len(state.timeline) == 100 and state.timeline_dropped == 50 + 150 + 2 - 100
        assert state.timeline[0].kind == EventKind.declared, "the declaration is never dropped"
        assert events(state, EventKind.phase), "decisions are kept over notes and alerts"
        assert max(len(e.text) for e in state.timeline) <= 200
        assert len(state.model_dump_json()) < 100 * 400 + 50 * 400, "state size is bounded"
