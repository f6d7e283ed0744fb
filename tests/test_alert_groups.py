"""Alert groups on the time-skipping server: one incident per group, exactly once, reopen and re-open."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from domain import ingest
from domain.config import IncidentflowConfig
from domain.models import AlertmanagerPayload, AlertStatus, EventKind, Phase, ResolveInput, Severity
from incidentflow.client import Incidents
from tests.conftest import running_worker
from tests.helpers import events, eventually

FIXTURES = Path(__file__).parent / "fixtures"
MIN = timedelta(minutes=1)


def payload(name: str, group: str, **labels: str) -> AlertmanagerPayload:
    """A real captured payload, re-keyed to a fresh group so tests don't share incidents."""
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    data = copy.deepcopy(data)
    data["groupKey"] = f'{{}}:{{alertname="CheckoutErrorRate", test="{group}"}}'
    for alert in data["alerts"]:
        alert["labels"].update(labels)
        alert["fingerprint"] = f"{group}-{alert['labels'].get('instance', '')}"
    return AlertmanagerPayload.model_validate(data)


async def send(inc: Incidents, p: AlertmanagerPayload) -> Any:
    batch = ingest.from_alertmanager(p, inc.config.routing.router(), datetime.now(UTC))
    return await inc.ingest(batch), ingest.group_workflow_id(batch.group_key)


async def group_incident(inc: Incidents, group_id: str) -> str:
    state = await eventually(lambda: inc.alert_group(group_id), lambda s: s is not None and s.incident_id)
    assert state is not None and state.incident_id
    return state.incident_id


async def test_one_incident_per_group_and_repeats_only_count(ts_env: WorkflowEnvironment) -> None:
    async with running_worker(ts_env.client) as (settings, _):
        inc = Incidents(ts_env.client, settings, IncidentflowConfig())
        first = payload("alertmanager-firing.json", "g1")
        # Alertmanager retries and an HA pair deliver the same notification several times, concurrently
        results = await asyncio.gather(*(send(inc, first) for _ in range(5)))
        assert {r.outcome for r, _ in results} == {"accepted"} and len({g for _, g in results}) == 1
        group_id = results[0][1]
        iid = await group_incident(inc, group_id)
        await send(inc, payload("alertmanager-firing-two.json", "g1"))
        state = await eventually(lambda: inc.get(iid), lambda s: s.alerts_received == 7)
        assert state.severity == Severity.SEV2 and state.service == "checkout"  # severity=critical → SEV2
        assert state.title == "CheckoutErrorRate on checkout" and state.declared_by == "alertmanager"
        assert state.description == "Checkout error rate above 5%", "the summary is the description, not the title"
        assert "Alert firing: Checkout error rate above 5%" in [e.text for e in events(state, EventKind.alert)]
        assert {f: a.count for f, a in state.alerts.items()} == {"g1-web-1": 6, "g1-web-2": 1}
        assert len(events(state, EventKind.alert)) == 2, "repeats do not flood the timeline"
        group = await inc.alert_group(group_id)
        assert group is not None and group.incidents_opened == 1 and group.batches == 6

        await send(inc, payload("alertmanager-resolved.json", "g1"))
        state = await eventually(lambda: inc.get(iid), lambda s: s.phase == Phase.monitoring)
        assert events(state, EventKind.phase)[-1].text.endswith("every alert has resolved: the monitoring window starts")
        await ts_env.sleep(16 * MIN)
        assert events(await inc.get(iid), EventKind.suggestion), "resolving is suggested after the window"


async def test_resolved_notifications_never_open_incidents(ts_env: WorkflowEnvironment) -> None:
    async with running_worker(ts_env.client) as (settings, _):
        inc = Incidents(ts_env.client, settings, IncidentflowConfig())
        result, group_id = await send(inc, payload("alertmanager-resolved.json", "g2"))
        assert result.outcome == "ignored" and "no open incident" in result.reason
        assert await inc.alert_group(group_id) is None


async def test_flapping_reopens_within_the_window_and_opens_a_new_incident_after(ts_env: WorkflowEnvironment) -> None:
    async with running_worker(ts_env.client) as (settings, _):
        inc = Incidents(ts_env.client, settings, IncidentflowConfig())
        _, group_id = await send(inc, payload("alertmanager-firing.json", "g3"))
        first = await group_incident(inc, group_id)
        await inc.resolve(first, ResolveInput(by="alice", summary="restarted pods"))
        await eventually(lambda: inc.alert_group(group_id), lambda g: g.incident_phase == Phase.resolved)
        await ts_env.sleep(10 * MIN)
        await send(inc, payload("alertmanager-firing.json", "g3"))  # flapping: within 30 min
        state = await eventually(lambda: inc.get(first), lambda s: s.phase == Phase.investigating)
        assert "fired again within 30 min of resolution (flapping)" in events(state, EventKind.phase)[-1].text

        await inc.resolve(first, ResolveInput(by="alice"))
        await eventually(lambda: inc.alert_group(group_id), lambda g: g.incident_phase == Phase.resolved)
        await ts_env.sleep(31 * MIN)  # the reopen window passes: the group run finishes
        done = await ts_env.client.get_workflow_handle(group_id).describe()
        assert done.status is not None and done.status.name == "COMPLETED"
        result, same_group = await send(inc, payload("alertmanager-firing.json", "g3"))
        assert result.outcome == "accepted" and same_group == group_id
        second = await eventually(lambda: inc.alert_group(group_id),
                                  lambda g: g is not None and g.incident_id not in (None, first))
        assert second.incident_id and second.incident_id.startswith("incident-") and second.incident_id != first
        assert (await inc.get(first)).phase == Phase.resolved, "the old incident is left alone"
        new_state = await inc.get(second.incident_id)
        assert new_state.alerts["g3-web-1"].status == AlertStatus.firing


async def test_a_flood_continues_as_new_without_losing_an_alert(ts_env: WorkflowEnvironment) -> None:
    from domain.models import AlertGroupStart, IncidentPolicy

    async with running_worker(ts_env.client) as (settings, _):
        inc = Incidents(ts_env.client, settings, IncidentflowConfig())
        policy = IncidentPolicy(continue_as_new_after_events=60)
        first = ingest.from_alertmanager(payload("alertmanager-firing.json", "flood"), inc.config.routing.router(),
                                         datetime.now(UTC))
        group_id = ingest.group_workflow_id(first.group_key)

        async def send_one(i: int) -> None:
            batch = first.model_copy(update={"alerts": [a.model_copy(update={"fingerprint": f"fp-{i % 40}"})
                                                         for a in first.alerts]})
            # the API's own path (signal-with-start, retried while the group is between runs)
            await inc._signal_with_start(group_id, batch, AlertGroupStart(group_key=first.group_key, policy=policy))
        for chunk in range(0, 300, 50):
            await asyncio.gather(*(send_one(i) for i in range(chunk, chunk + 50)))
        iid = await group_incident(inc, group_id)
        state = await eventually(lambda: inc.get(iid), lambda s: s.alerts_received == 300, timeout=60)
        assert sum(a.count for a in state.alerts.values()) == 300 and len(state.alerts) == 40
        group = await inc.alert_group(group_id)
        assert group is not None and group.alerts == 300 and group.incidents_opened == 1
        history = await ts_env.client.get_workflow_handle(group_id).fetch_history()
        assert history.events[0].workflow_execution_started_event_attributes.continued_execution_run_id, \
            "the group continued-as-new during the flood"
