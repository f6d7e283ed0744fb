"""The incident lifecycle on the real time-skipping test server: phases, roles, updates and timers."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from domain import policy
from domain.models import (
    AckInput,
    DeclareInput,
    EventKind,
    IncidentState,
    NoteInput,
    Phase,
    PhaseInput,
    ReopenInput,
    ResolveInput,
    Role,
    RoleInput,
    Severity,
    SeverityInput,
    StandDownInput,
    StatusUpdateInput,
)
from incidentflow.client import CommandRejected, Incidents
from tests.conftest import running_worker
from tests.helpers import events, eventually
from workflows import search_attributes as sa
from workflows.incident import IncidentWorkflow

MIN = timedelta(minutes=1)


def near(actual: timedelta, expected: timedelta) -> bool:
    """Timer events land within the workflow task that handles them: a few ms after the due time."""
    return timedelta(0) <= actual - expected < timedelta(seconds=1)


async def final_state(env: WorkflowEnvironment, iid: str) -> IncidentState:
    return await env.client.get_workflow_handle_for(IncidentWorkflow.run, iid).result()


def declare(severity: Severity = Severity.SEV2, **kw: object) -> DeclareInput:
    return DeclareInput(title="Checkout failing", severity=severity, service="checkout", declared_by="pat", **kw)


async def test_whole_lifecycle(ts_env: WorkflowEnvironment) -> None:
    async with running_worker(ts_env.client) as (settings, notifier):
        inc = Incidents(ts_env.client, settings)
        iid = await inc.declare(declare(Severity.SEV1))
        assert re.fullmatch(r"incident-\d{8}-\d{4}-checkout(-\d+)?", iid), iid
        await inc.acknowledge(iid, AckInput(by="alice"))
        await inc.assign_role(iid, RoleInput(role=Role.ic, person="alice", by="alice"))
        result = await inc.assign_role(iid, RoleInput(role=Role.lead, person="alice", by="alice"))
        assert result.warnings and "should not also be the lead investigator" in result.warnings[0]
        await inc.assign_role(iid, RoleInput(role=Role.lead, person="bob", by="alice"))
        await inc.assign_role(iid, RoleInput(role=Role.comms, person="carol", by="alice"))
        await inc.assign_role(iid, RoleInput(role=Role.scribe, person="dan", by="alice"))
        for phase in (Phase.investigating, Phase.identified, Phase.mitigating, Phase.monitoring):
            await inc.set_phase(iid, PhaseInput(phase=phase, by="alice", note=f"now {phase.value}"))
        await inc.post_status_update(iid, StatusUpdateInput(text="Rolled back; watching", by="carol"))
        await inc.add_note(iid, NoteInput(text="error rate 0.1%", by="dan"))
        res = await inc.resolve(iid, ResolveInput(by="alice", summary="rolled back deploy 4812"))
        assert res.phase == Phase.resolved and "postmortem due" in res.text
        await inc.set_phase(iid, PhaseInput(phase=Phase.postmortem, by="bob"))

        desc = await ts_env.client.get_workflow_handle(iid).describe()
        attrs = desc.typed_search_attributes
        assert attrs.get(sa.SEVERITY) == "SEV1" and attrs.get(sa.PHASE) == "postmortem"
        assert attrs.get(sa.COMMANDER) == "alice" and attrs.get(sa.ACKNOWLEDGED) is True
        assert attrs.get(sa.SERVICE) == "checkout" and attrs.get(sa.DECLARED_AT) is not None

        await inc.set_phase(iid, PhaseInput(phase=Phase.closed, by="alice"))
        final = await final_state(ts_env, iid)
        assert final.phase == Phase.closed and final.ended_at is not None
        assert final.roles == {Role.ic: "alice", Role.lead: "bob", Role.comms: "carol", Role.scribe: "dan"}
        kinds = [e.kind for e in final.timeline]
        assert kinds[:2] == [EventKind.declared, EventKind.acknowledged]
        assert [e.text for e in events(final, EventKind.warning)] == [result.warnings[0]]
        phases = [e.text for e in events(final, EventKind.phase)]
        assert phases[0] == "Phase triage → investigating: now investigating"
        assert phases[-1] == "Phase postmortem → closed"
        assert events(final, EventKind.note)[0].actor == "dan"
        # show works after the workflow completed (no query needed)
        assert (await inc.get(iid)).phase == Phase.closed
        with pytest.raises(CommandRejected, match="is over"):
            await inc.acknowledge(iid, AckInput(by="zed"))


async def accepted_updates(env: WorkflowEnvironment, iid: str) -> int:
    history = await env.client.get_workflow_handle(iid).fetch_history()
    accepted = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    return sum(1 for e in history.events if e.event_type == accepted)


REJECTIONS = [
    # (commands to reach a state, the rejected command, message fragment)
    ([], ("set_phase", PhaseInput(phase=Phase.triage, by="x")), "already in phase triage"),
    ([("set_phase", PhaseInput(phase=Phase.identified, by="x"))],
     ("set_phase", PhaseInput(phase=Phase.investigating, by="x")),
     "cannot move from identified to investigating; allowed next phases: mitigating, monitoring, resolved"),
    ([("resolve", ResolveInput(by="x"))], ("set_phase", PhaseInput(phase=Phase.monitoring, by="x")),
     "allowed next phases: investigating, postmortem, closed"),
    ([("resolve", ResolveInput(by="x"))], ("resolve", ResolveInput(by="x")), "already resolved"),
    ([("resolve", ResolveInput(by="x"))], ("stand_down", StandDownInput(by="x", reason="r")),
     "cannot stand down: the incident is resolved"),
    ([], ("reopen", ReopenInput(by="x")), "only a resolved incident can be reopened"),
    ([("acknowledge", AckInput(by="alice"))], ("acknowledge", AckInput(by="bob")), "already acknowledged by alice"),
    ([], ("set_severity", SeverityInput(severity=Severity.SEV2, by="x")), "already SEV2"),
    ([("assign_role", RoleInput(role=Role.ic, person="al", by="x"))],
     ("assign_role", RoleInput(role=Role.ic, person="al", by="x")), "al is already the incident commander"),
    ([("resolve", ResolveInput(by="x"))], ("acknowledge", AckInput(by="bob")),
     "cannot acknowledge: the incident is resolved"),
]


@pytest.mark.parametrize("setup,command,message", REJECTIONS)
async def test_rejected_commands_leave_no_trace(ts_env: WorkflowEnvironment, setup: list, command: tuple,
                                                message: str) -> None:
    async with running_worker(ts_env.client) as (settings, _):
        inc = Incidents(ts_env.client, settings)
        iid = await inc.declare(declare())
        for name, arg in setup:
            await getattr(inc, name)(iid, arg)
        # settled: run() has started (the chat pump checked), and any escalation it started has ended (an
        # incident acknowledged before the channel opened pages nobody: the escalation never starts)
        # (and a resolved SEV2's postmortem has been drafted: its link is on the timeline)
        before = await eventually(lambda: inc.get(iid), lambda s: s.chat_checked and not s.escalation_active and (
            s.escalations > 0 or s.phase not in policy.ACTIVE or s.acknowledged_by is not None)
            and (s.postmortem_id is None or s.postmortem_link is not None))
        accepted_before = await accepted_updates(ts_env, iid)
        with pytest.raises(CommandRejected) as err:
            await getattr(inc, command[0])(iid, command[1])
        assert message in str(err.value) and iid in str(err.value)
        after = await inc.get(iid)
        assert after == before, "a rejected command must not change the incident"
        assert await accepted_updates(ts_env, iid) == accepted_before == len(setup), \
            "a rejected update must not reach history"


async def test_status_update_cadence(ts_env: WorkflowEnvironment) -> None:
    async with running_worker(ts_env.client) as (settings, notifier):
        inc = Incidents(ts_env.client, settings)
        iid = await inc.declare(declare(Severity.SEV2))
        t0 = (await inc.get(iid)).declared_at
        await ts_env.sleep(9 * MIN + timedelta(seconds=50))
        assert not events(await inc.get(iid), EventKind.reminder), "no reminder before 10 minutes"
        await ts_env.sleep(20 * timedelta(seconds=1))
        first = events(await inc.get(iid), EventKind.reminder)
        assert len(first) == 1 and near(first[0].at - t0, 10 * MIN)
        assert "unassigned" in first[0].text  # nobody to remind yet: said plainly
        assert [m.recipient for m in notifier.delivered] == [None]

        await inc.assign_role(iid, RoleInput(role=Role.ic, person="alice", by="alice"))
        await inc.assign_role(iid, RoleInput(role=Role.comms, person="carol", by="alice"))
        # without an update, the next reminder comes one SEV2 interval (30 min) after the first
        await ts_env.sleep(25 * MIN)
        await inc.post_status_update(iid, StatusUpdateInput(text="investigating", by="carol"))
        posted = events(await inc.get(iid), EventKind.status_update)[0].at
        await ts_env.sleep(29 * MIN)
        assert len(events(await inc.get(iid), EventKind.reminder)) == 1, "the update reset the clock"
        await ts_env.sleep(2 * MIN)
        reminders = events(await inc.get(iid), EventKind.reminder)
        assert len(reminders) == 2 and near(reminders[1].at - posted, 30 * MIN)
        assert notifier.delivered[-1].recipient == "carol", "reminders go to the comms lead"

        # escalating to SEV1 tightens the cadence to 15 min from the last update
        await inc.post_status_update(iid, StatusUpdateInput(text="still investigating", by="carol"))
        second_post = events(await inc.get(iid), EventKind.status_update)[-1].at
        await inc.set_severity(iid, SeverityInput(severity=Severity.SEV1, by="alice"))
        await ts_env.sleep(16 * MIN)
        reminders = events(await inc.get(iid), EventKind.reminder)
        assert len(reminders) == 3 and near(reminders[2].at - second_post, 15 * MIN)
        assert len({m.dedup_key for m in notifier.delivered}) == len(notifier.delivered) == 3


async def test_sev4_has_no_cadence_and_ic_gets_reminders_without_comms(ts_env: WorkflowEnvironment) -> None:
    async with running_worker(ts_env.client) as (settings, notifier):
        inc = Incidents(ts_env.client, settings)
        quiet = await inc.declare(declare(Severity.SEV4))
        loud = await inc.declare(declare(Severity.SEV3, commander="ivan"))
        await ts_env.sleep(3 * 60 * MIN)
        assert not events(await inc.get(quiet), EventKind.reminder)
        reminders = events(await inc.get(loud), EventKind.reminder)
        gaps = [b.at - a.at for a, b in zip(reminders, reminders[1:])]
        assert len(reminders) == 3 and all(abs(g - 60 * MIN) < timedelta(seconds=1) for g in gaps), gaps
        assert {m.recipient for m in notifier.delivered} == {"ivan"}


async def test_monitoring_window_suggests_resolve_and_restarts_on_refire(ts_env: WorkflowEnvironment) -> None:
    from domain.models import AlertSignal

    async with running_worker(ts_env.client) as (settings, notifier):
        inc = Incidents(ts_env.client, settings)
        iid = await inc.declare(declare(Severity.SEV4, commander="alice"))
        await inc.raise_alert(iid, AlertSignal(fingerprint="a1", title="HighErrorRate"))
        await inc.set_phase(iid, PhaseInput(phase=Phase.monitoring, by="alice"))
        await ts_env.sleep(10 * MIN)
        await inc.raise_alert(iid, AlertSignal(fingerprint="a1", status="resolved", title="HighErrorRate"))
        await inc.raise_alert(iid, AlertSignal(fingerprint="a1", title="HighErrorRate"))  # re-fires
        refired = await inc.get(iid)
        assert any("monitoring window restarts" in e.text for e in events(refired, EventKind.warning))
        await ts_env.sleep(14 * MIN)
        assert not events(await inc.get(iid), EventKind.suggestion), "window restarted at the re-fire"
        await ts_env.sleep(2 * MIN)
        state = await inc.get(iid)
        suggestion = events(state, EventKind.suggestion)
        assert len(suggestion) == 1 and near(suggestion[0].at - refired.monitoring_since, 15 * MIN)
        assert "consider resolving" in suggestion[0].text and notifier.delivered[-1].recipient == "alice"
        assert state.phase == Phase.monitoring, "suggested, never resolved behind people's backs"
        assert state.alerts["a1"].count == 3 and len(state.alerts) == 1


async def test_postmortem_deadline_reminders(ts_env: WorkflowEnvironment) -> None:
    async with running_worker(ts_env.client) as (settings, notifier):
        inc = Incidents(ts_env.client, settings)
        iid = await inc.declare(declare(Severity.SEV2, commander="alice"))
        await inc.resolve(iid, ResolveInput(by="alice", summary="fixed"))
        state = await inc.get(iid)
        assert state.postmortem_due == policy.add_business_days(state.resolved_at, 5)
        assert state.next_update_due is None, "no status-update cadence once resolved"
        await ts_env.sleep(state.postmortem_due - state.resolved_at + timedelta(days=3, hours=1))
        reminders = events(await inc.get(iid), EventKind.reminder)
        due = state.postmortem_due
        expected = [due - timedelta(days=1), due] + [due + timedelta(days=n) for n in (1, 2, 3)]
        assert len(reminders) == len(expected)
        assert all(near(r.at - e, timedelta(0)) for r, e in zip(reminders, expected)), reminders
        assert "is due" in reminders[0].text and "overdue" in reminders[1].text
        assert all(m.recipient == "alice" for m in notifier.delivered)
        await inc.set_phase(iid, PhaseInput(phase=Phase.closed, by="alice", note="postmortem published"))
        assert (await final_state(ts_env, iid)).phase == Phase.closed


async def test_resolved_sev3_auto_closes_and_reopen_restarts_the_process(ts_env: WorkflowEnvironment) -> None:
    async with running_worker(ts_env.client) as (settings, _):
        inc = Incidents(ts_env.client, settings)
        iid = await inc.declare(declare(Severity.SEV3))
        await inc.resolve(iid, ResolveInput(by="alice"))
        await ts_env.sleep(2 * MIN)
        reopened = await inc.reopen(iid, ReopenInput(by="alice", reason="errors are back"))
        assert reopened.phase == Phase.investigating
        state = await inc.get(iid)
        assert state.resolved_at is None and state.auto_close_at is None
        assert state.next_update_due == events(state, EventKind.phase)[-1].at + 10 * MIN
        await inc.resolve(iid, ResolveInput(by="alice"))
        resolved_at = (await inc.get(iid)).resolved_at
        await ts_env.sleep(timedelta(hours=24, minutes=1))
        final = await final_state(ts_env, iid)
        assert final.phase == Phase.closed and near(final.ended_at - resolved_at, timedelta(hours=24))


async def test_stand_down_ends_the_incident(ts_env: WorkflowEnvironment) -> None:
    async with running_worker(ts_env.client) as (settings, _):
        inc = Incidents(ts_env.client, settings)
        iid = await inc.declare(declare(Severity.SEV1))
        with pytest.raises(Exception, match="reason"):
            StandDownInput(by="x", reason="")
        await inc.stand_down(iid, StandDownInput(by="alice", reason="false alarm: synthetic check broke"))
        final = await final_state(ts_env, iid)
        assert final.phase == Phase.stood_down and final.stand_down_reason.startswith("false alarm")
        with pytest.raises(CommandRejected, match="is over"):
            await inc.add_note(iid, NoteInput(text="late", by="bob"))
