"""Code levels (domain.models.incident.CODE_LEVEL). Level 1: a new incident takes every change since the baseline
without a `workflow.patched` marker and search attribute upsert each, and its escalation reads config (the policy,
who is on call) in local activities. Level 2: no upsert of a search attribute that did not change. Level 3: the
escalation runs inside the incident, one activity per level (no child workflow, no signals either way). Level 4:
the coroutines wake in a fixed rank (tests/test_cold_incident.py).
Incidents from before keep their recorded branches (tests/test_replay.py, `*.level-1-nochat.json`)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from domain.models import AckInput, DeclareInput, Severity
from domain.models.alert import AlertSignal
from domain.models.incident import CODE_LEVEL
from incidentflow.client import Incidents
from tests.conftest import running_worker
from tests.helpers import eventually
from workflows import search_attributes as sa


async def test_a_new_incident_records_no_patch_markers_and_reads_config_locally(ts_env: WorkflowEnvironment,
                                                                                tmp_path: object) -> None:
    assert CODE_LEVEL == 4
    async with running_worker(ts_env.client, data_dir=tmp_path) as (settings, _):
        inc = Incidents(ts_env.client, settings)
        iid = await inc.declare(DeclareInput(title="Checkout failing", severity=Severity.SEV1, service="checkout",
                                             declared_by="pat"))
        for n in range(3):  # three new alerts: three runbook matches, none an activity task
            await inc.raise_alert(iid, AlertSignal(fingerprint=f"fp-{n}", title=f"alert {n}", labels={"alertname": "X"}))
        await ts_env.sleep(timedelta(seconds=15))  # the channel wait (no chat configured) is over: paging starts
        await eventually(lambda: inc.get(iid), lambda s: s.escalation is not None and s.escalation.plan is not None
                         and s.alerts_received == 3)
        await inc.acknowledge(iid, AckInput(by="alice"))
        state = await inc.get(iid)
        assert state.code_level == 4
        history = await ts_env.client.get_workflow_handle(iid).fetch_history()
        kinds = Counter(e.WhichOneof("attributes") for e in history.events)
        assert kinds["marker_recorded_event_attributes"] == 0, "no patch markers"
        upserts = [list(e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields)
                   for e in history.events if e.HasField("upsert_workflow_search_attributes_event_attributes")]
        assert not any("TemporalChangeVersion" in u for u in upserts)
        assert not any("IncidentDeclaredAt" in u for u in upserts), "the door's declaration time stands"
        assert upserts and "IncidentAcknowledged" in upserts[0], f"nothing to upsert before the ack: {upserts}"
        desc = await ts_env.client.get_workflow_handle(iid).describe()
        assert desc.typed_search_attributes.get(sa.DECLARED_AT) == state.declared_at, "state and attribute agree"
        # the escalation ran inside the incident: its policy, who is on call and the L1 pages in one activity
        assert state.escalation_id is None and state.escalation is not None and not state.escalation_active
        assert state.escalations == 1 and state.escalation.finished, state.escalation
        scheduled = Counter(e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
                            if e.HasField("activity_task_scheduled_event_attributes"))
        assert scheduled["escalate_level"] == 1, scheduled
        assert not {"plan_escalation", "resolve_targets", "page"} & set(scheduled), scheduled
        assert not kinds["start_child_workflow_execution_initiated_event_attributes"], "no escalation child"
        assert not kinds["signal_external_workflow_execution_initiated_event_attributes"], "no signals to it"
        signals = {e.workflow_execution_signaled_event_attributes.signal_name for e in history.events
                   if e.HasField("workflow_execution_signaled_event_attributes")}
        assert signals == {"alert"}, "no signals from it (record_event, escalation_ended): only the alerts"
