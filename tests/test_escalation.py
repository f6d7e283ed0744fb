"""Escalation on the time-skipping server: a 4-level policy with a repeat, acks at each level, overrides,
manual escalation and pages, PagerDuty kept in sync through the real HTTP client and a fake server."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from activities.pagerduty import PagerDutyPager
from activities.paging import LogPager
from domain.config import IncidentflowConfig
from domain.models import (
    AckInput,
    DeclareInput,
    EscalateInput,
    EventKind,
    IncidentStart,
    NoteInput,
    PageInput,
    ResolveInput,
    Severity,
)
from domain.models.incident import CODE_LEVEL
from incidentflow.client import Incidents
from tests.conftest import running_worker
from tests.fakes.pagerduty import FakePagerDuty
from tests.helpers import events, eventually
from tests.test_replay import replayer
from workflows.incident import IncidentWorkflow

MIN = timedelta(minutes=1)
CONFIG = yaml.safe_load("""
people:
  - {id: alice, name: Alice}
  - {id: bob, name: Bob}
  - {id: carol, name: Carol}
  - {id: dan, name: Dan}
  - {id: erin, name: Erin}
services:
  - {name: checkout, escalation_policy: four-level}
schedules:
  - name: payments
    layers:
      - name: primary
        rotation: {type: weekly, participants: [alice, erin], handoff_day: monday, handoff_time: "09:00",
                   timezone: UTC, start: 2026-01-05}
escalation_policies:
  - name: four-level
    levels:
      - {name: on-call engineer, wait: 15m, targets: [{schedule: payments, layer: primary}]}
      - {name: team lead, wait: 30m, targets: [{person: bob}]}
      - {name: engineering manager, wait: 1h, targets: [{person: carol}]}
      - {name: VP engineering, wait: 2h, targets: [{person: dan}]}
    repeat: 1
    fallback: [{channel: eng-leadership}]
    by_severity:
      SEV1:
        - {wait: 5m, targets: [{schedule: payments}, {person: bob}]}
        - {wait: 10m, targets: [{person: dan}]}
""")


def config(**changes: object) -> IncidentflowConfig:
    return IncidentflowConfig.model_validate({**CONFIG, **changes})


def pages(state: object) -> list[tuple[timedelta, str]]:
    """(time since declaration, text) of every page on the timeline."""
    return [(e.at - state.declared_at, e.text) for e in events(state, EventKind.page)]  # type: ignore[attr-defined]


def near(actual: timedelta, expected: timedelta) -> bool:
    return abs(actual - expected) < timedelta(seconds=2)


async def test_four_levels_twice_then_the_fallback(ts_env: WorkflowEnvironment) -> None:
    cfg = config()
    async with running_worker(ts_env.client, config=lambda: cfg) as (settings, _):
        inc = Incidents(ts_env.client, settings, cfg)
        iid = await inc.declare(DeclareInput(title="Checkout down", severity=Severity.SEV2, service="checkout",
                                             declared_by="am"))
        await ts_env.sleep(timedelta(hours=8))
        state = await inc.get(iid)
        on_call = "alice" if _week_parity(state.declared_at) == 0 else "erin"
        expected = [(0, on_call, "L1"), (15, "bob", "L2"), (45, "carol", "L3"), (105, "dan", "L4"),
                    (225, None, "L1"), (240, "bob", "L2"), (270, "carol", "L3"), (330, "dan", "L4"),
                    (450, "eng-leadership", "fallback")]
        got = pages(state)
        assert len(got) == len(expected), got
        for (offset, text), (minutes, who, level) in zip(got, expected):
            assert near(offset, minutes * MIN), (offset, text)
            assert f"({level}" in text and (who is None or text.startswith(f"Paged {who} "))
        assert "primary of payments" in got[0][1]
        warning = [e.text for e in events(state, EventKind.warning)]
        assert any("exhausted after 2 round(s)" in w for w in warning)


def _week_parity(at: datetime) -> int:
    handoff = datetime(2026, 1, 5, 9, tzinfo=UTC)
    return ((at - handoff) // timedelta(days=7)) % 2


@pytest.mark.parametrize("ack_after,paged", [(5, 1), (20, 2), (50, 3), (120, 4)])
async def test_acknowledging_stops_every_pending_level(ts_env: WorkflowEnvironment, ack_after: int,
                                                       paged: int) -> None:
    cfg = config()
    async with running_worker(ts_env.client, config=lambda: cfg) as (settings, _):
        inc = Incidents(ts_env.client, settings, cfg)
        iid = await inc.declare(DeclareInput(title="x", severity=Severity.SEV2, service="checkout", declared_by="am"))
        await ts_env.sleep(ack_after * MIN)
        await inc.acknowledge(iid, AckInput(by="bob"))
        await ts_env.sleep(timedelta(hours=6))
        state = await inc.get(iid)
        assert len(pages(state)) == paged, pages(state)
        assert not state.escalation_active


async def test_override_and_severity_variation(ts_env: WorkflowEnvironment) -> None:
    now = await ts_env.get_current_time()  # the shared test server's clock has been skipped ahead
    schedules = CONFIG["schedules"]
    schedules = [{**schedules[0], "overrides": [{"person": "carol", "start": (now - timedelta(hours=1)).isoformat(),
                                                 "end": (now + timedelta(hours=1)).isoformat()}]}]
    cfg = config(schedules=schedules)
    async with running_worker(ts_env.client, config=lambda: cfg) as (settings, _):
        inc = Incidents(ts_env.client, settings, cfg)
        iid = await inc.declare(DeclareInput(title="x", severity=Severity.SEV1, service="checkout", declared_by="am"))
        await ts_env.sleep(6 * MIN)
        got = pages(await inc.get(iid))
        assert [t.split(" (")[0] for _, t in got] == ["Paged carol", "Paged bob", "Paged dan"], got
        assert near(got[2][0], 5 * MIN), "SEV1 uses its own, faster levels"


async def test_manual_escalation_and_page(ts_env: WorkflowEnvironment) -> None:
    cfg = config()
    async with running_worker(ts_env.client, config=lambda: cfg) as (settings, _):
        inc = Incidents(ts_env.client, settings, cfg)
        iid = await inc.declare(DeclareInput(title="x", severity=Severity.SEV2, service="checkout", declared_by="am"))
        await eventually(lambda: inc.get(iid), lambda s: len(pages(s)) == 1)
        await inc.escalate(iid, EscalateInput(level=3, by="alice"))
        state = await eventually(lambda: inc.get(iid), lambda s: len(pages(s)) == 2)
        assert pages(state)[1][1].startswith("Paged carol (L3")
        result = await inc.page(iid, PageInput(person="erin", by="alice", note="need a DB expert"))
        assert result.text == "paged erin via log"
        await inc.acknowledge(iid, AckInput(by="carol"))
        await ts_env.sleep(timedelta(hours=5))
        state = await inc.get(iid)
        assert len(pages(state)) == 3 and not state.escalation_active
        restarted = await inc.escalate(iid, EscalateInput(level=4, by="alice"))
        assert restarted.text == "escalating at L4"
        state = await eventually(lambda: inc.get(iid), lambda s: len(pages(s)) == 4)
        assert pages(state)[-1][1].startswith("Paged dan (L4") and state.escalations == 2


async def test_sev4_and_no_page_declarations_page_nobody(ts_env: WorkflowEnvironment) -> None:
    cfg = config()
    async with running_worker(ts_env.client, config=lambda: cfg) as (settings, _):
        inc = Incidents(ts_env.client, settings, cfg)
        quiet = await inc.declare(DeclareInput(title="typo", severity=Severity.SEV4, service="checkout", declared_by="x"))
        manual = await inc.declare(DeclareInput(title="drill", severity=Severity.SEV2, service="checkout",
                                                declared_by="x", page=False))
        await ts_env.sleep(timedelta(hours=1))
        assert not pages(await inc.get(quiet)) and not pages(await inc.get(manual))
        assert (await inc.get(quiet)).escalations == 0


async def test_pagerduty_stays_in_sync_through_faults(ts_env: WorkflowEnvironment, tmp_path: Path) -> None:
    people = [{**p, "notify": ["pagerduty"]} for p in CONFIG["people"]]
    cfg = config(people=people)
    with FakePagerDuty() as fake:
        key = fake.routing_key()
        async with httpx.AsyncClient(timeout=5) as http:
            pagers = {"log": LogPager(), "pagerduty": PagerDutyPager(http, fake.url, {"checkout": key}, None)}
            async with running_worker(ts_env.client, config=lambda: cfg, pagers=pagers) as (settings, _):
                inc = Incidents(ts_env.client, settings, cfg)
                fake.fail_next(2, status=429, retry_after="1")
                iid = await inc.declare(DeclareInput(title="x", severity=Severity.SEV2, service="checkout",
                                                     declared_by="am"))
                await eventually(lambda: inc.get(iid), lambda s: len(pages(s)) == 1)
                fake.fail_next(1, status=500)
                await ts_env.sleep(16 * MIN)
                await eventually(lambda: inc.get(iid), lambda s: len(pages(s)) == 2)
                await inc.acknowledge(iid, AckInput(by="bob"))
                await eventually(lambda: _actions(fake), lambda a: "acknowledge" in a)
                await inc.resolve(iid, ResolveInput(by="bob"))
                actions = await eventually(lambda: _actions(fake), lambda a: "resolve" in a)
                timeline = (await inc.get(iid)).timeline
                # the escalation runs inside the incident (code level 3): its pages are in the incident's history
                histories = [await ts_env.client.get_workflow_handle(iid).fetch_history()]
        assert len(fake.incidents) == 1, "one PagerDuty incident per incident, whatever the retries"
        assert fake.incidents[0].dedup_key == f"incidentflow-{iid}" and fake.incidents[0].status == "resolved"
        assert actions.count("trigger") == 2 and actions.count("acknowledge") == 1 and actions.count("resolve") == 1
        assert [r.status for r in fake.requests][:3] == [429, 429, 202]
        assert all(key not in e.text for e in timeline), "routing keys stay out of the timeline"
        assert all(key not in h.to_json() for h in histories), "… and out of workflow history"


async def _actions(fake: FakePagerDuty) -> list[str]:
    return [r.json["event_action"] for r in fake.requests if r.status == 202]


async def test_an_escalation_inside_the_incident_goes_on_across_continue_as_new(ts_env: WorkflowEnvironment) -> None:
    """Code level 3 escalates inside the incident: a continue-as-new during L1's wait carries it over, and L2 is
    paged once, on time (the wait counts from when L1 started, not from the new run); every run replays."""
    cfg = config()
    async with running_worker(ts_env.client, config=lambda: cfg) as (settings, _):
        inc = Incidents(ts_env.client, settings, cfg)
        iid = f"incident-continued-{uuid.uuid4().hex[:8]}"
        policy = cfg.incident_policy().model_copy(update={"continue_as_new_after_events": 80})
        await ts_env.client.start_workflow(IncidentWorkflow.run, IncidentStart(
            declare=DeclareInput(title="x", severity=Severity.SEV2, service="checkout", declared_by="am"),
            policy=policy, code_level=CODE_LEVEL), id=iid, task_queue=settings.task_queue)
        await eventually(lambda: inc.get(iid), lambda s: len(pages(s)) == 1)
        await ts_env.sleep(5 * MIN)
        # Notes until the run continues-as-new, and no more, so the next run stays short of the limit and
        # never continues-as-new under a query. No query waits for it either: the time-skipping server holds
        # time still for a query task, and one sent to a run as it continues-as-new is never answered, so its
        # time would never move on (sleep() hangs, later queries go unanswered).
        handle = ts_env.client.get_workflow_handle(iid)
        first_run = (await handle.describe()).run_id
        for i in range(40):
            await inc.add_note(iid, NoteInput(text=f"note {i}", by="scribe"))
            if (await handle.describe()).run_id != first_run:
                break
        await eventually(handle.describe, lambda d: d.run_id != first_run)
        carried = await inc.get(iid)
        assert carried.runs >= 2
        assert carried.escalation is not None and carried.escalation.paged and carried.escalation_active
        await ts_env.sleep(12 * MIN)  # L2 is due 15 min after L1 started
        state = await eventually(lambda: inc.get(iid), lambda s: len(pages(s)) >= 2)
        got = pages(state)
        assert len(got) == 2 and got[1][1].startswith("Paged bob (L2") and near(got[1][0], 15 * MIN), got
        await inc.acknowledge(iid, AckInput(by="bob"))
        state = await eventually(lambda: inc.get(iid), lambda s: not s.escalation_active)
        assert state.escalation is not None and (state.escalation.finished, state.escalation.stopped_by) == (
            "acknowledged", "bob")
        assert state.escalations == 1 and state.pages == 2 and state.escalation_id is None
        await ts_env.sleep(timedelta(hours=1))
        assert len(pages(await inc.get(iid))) == 2, "nothing paged after the acknowledgement"
        runs = [await ts_env.client.get_workflow_handle(iid).fetch_history()]
        while previous := runs[0].events[0].workflow_execution_started_event_attributes.continued_execution_run_id:
            runs.insert(0, await ts_env.client.get_workflow_handle(iid, run_id=previous).fetch_history())
    assert len(runs) == 2, f"one continue-as-new, while notes came in; runs of {[len(h.events) for h in runs]} events"

    for history in runs:
        result = await replayer().replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, result.replay_failure
