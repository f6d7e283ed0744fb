"""Recorded incident histories: the scenarios behind tests/histories/*.json.

`python -m tests.record_histories` writes `<workflow id>[.run1].<VERSION>.json` from the current code. Bump
VERSION when workflow logic changes (behind `workflow.patched`) and keep the older files: they are what
running incidents look like, and test_replay.py makes sure new code still replays every one of them.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from domain.models import (
    AckInput,
    AlertSignal,
    AlertStatus,
    DeclareInput,
    IncidentPolicy,
    IncidentStart,
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
from domain.models.runbook import Decision, RenderedStep, RunbookRequest
from incidentflow.client import Incidents
from workflows.incident import IncidentWorkflow

HISTORIES = Path(__file__).parent / "histories"
# Bump when the workflow code changes in a way recorded histories should capture; older files stay.
VERSION = "v7"  # v4: Slack chat pump (fake Slack); v5: runbooks; v6: keep-wakes; v7: chat-posts-meanwhile
MIN = timedelta(minutes=1)


async def lifecycle(env: WorkflowEnvironment, inc: Incidents) -> list[str]:
    iid = "incident-recorded-lifecycle"
    await env.client.start_workflow(IncidentWorkflow.run, IncidentStart(declare=DeclareInput(
        title="Checkout failing", severity=Severity.SEV2, service="checkout", declared_by="pat")),
        id=iid, task_queue=inc.settings.task_queue)
    await inc.acknowledge(iid, AckInput(by="alice"))
    await inc.assign_role(iid, RoleInput(role=Role.ic, person="alice", by="alice"))
    await inc.assign_role(iid, RoleInput(role=Role.lead, person="alice", by="alice"))
    await inc.assign_role(iid, RoleInput(role=Role.lead, person="bob", by="alice"))
    await inc.assign_role(iid, RoleInput(role=Role.comms, person="carol", by="alice"))
    await env.sleep(11 * MIN)  # first-update reminder
    await inc.post_status_update(iid, StatusUpdateInput(text="investigating", by="carol"))
    await inc.set_severity(iid, SeverityInput(severity=Severity.SEV1, by="alice", reason="all users"))
    await inc.set_phase(iid, PhaseInput(phase=Phase.identified, by="bob", note="pool exhausted"))
    await env.sleep(16 * MIN)  # SEV1 cadence reminder
    await inc.add_note(iid, NoteInput(text="rolling back", by="bob"))
    await inc.set_phase(iid, PhaseInput(phase=Phase.monitoring, by="alice"))
    await env.sleep(16 * MIN)  # resolve suggested
    await inc.resolve(iid, ResolveInput(by="alice", summary="rolled back"))
    await env.sleep(timedelta(days=9))  # postmortem reminders
    await inc.set_phase(iid, PhaseInput(phase=Phase.postmortem, by="bob"))
    await inc.set_phase(iid, PhaseInput(phase=Phase.closed, by="alice"))
    await env.client.get_workflow_handle(iid).result()
    return [iid]


async def alerts_reopen_standdown(env: WorkflowEnvironment, inc: Incidents) -> list[str]:
    iid = "incident-recorded-alerts"
    await env.client.start_workflow(IncidentWorkflow.run, IncidentStart(declare=DeclareInput(
        title="Search latency", severity=Severity.SEV3, service="search", declared_by="am",
        commander="dan")), id=iid, task_queue=inc.settings.task_queue)
    for status in (AlertStatus.firing, AlertStatus.firing, AlertStatus.resolved):  # resolved → monitoring
        await inc.raise_alert(iid, AlertSignal(source="alertmanager", fingerprint="f1", status=status,
                                               title="SearchLatencyHigh"))
    await env.sleep(5 * MIN)
    await inc.raise_alert(iid, AlertSignal(source="alertmanager", fingerprint="f1", title="SearchLatencyHigh"))
    await inc.resolve(iid, ResolveInput(by="dan"))
    await env.sleep(10 * MIN)
    await inc.raise_alert(iid, AlertSignal(source="alertmanager", fingerprint="f1", title="SearchLatencyHigh"))
    await inc.raise_alert(iid, AlertSignal(source="alertmanager", fingerprint="f1", status=AlertStatus.resolved,
                                           title="SearchLatencyHigh"))  # flapped: reopened, then monitoring
    await inc.resolve(iid, ResolveInput(by="dan"))
    await env.sleep(31 * MIN)
    await inc.reopen(iid, ReopenInput(by="dan", reason="latency is back"))
    await inc.stand_down(iid, StandDownInput(by="dan", reason="load test, not an incident"))
    await env.client.get_workflow_handle(iid).result()
    return [iid]


async def continued(env: WorkflowEnvironment, inc: Incidents) -> list[str]:
    iid = "incident-recorded-continued"
    handle = await env.client.start_workflow(IncidentWorkflow.run, IncidentStart(
        declare=DeclareInput(title="Noisy", severity=Severity.SEV2, declared_by="pat"),
        policy=IncidentPolicy(continue_as_new_after_events=30)), id=iid, task_queue=inc.settings.task_queue)
    for i in range(25):
        await inc.add_note(iid, NoteInput(text=f"note {i}", by="scribe"))
        if i % 5 == 4:
            await inc.post_status_update(iid, StatusUpdateInput(text=f"update {i}", by="carol"))
    while (await inc.get(iid)).runs < 2:
        await asyncio.sleep(0.05)
    await inc.stand_down(iid, StandDownInput(by="pat", reason="done recording"))
    await env.client.get_workflow_handle(iid).result()
    return [handle.first_execution_run_id or "", iid]


async def runbook(env: WorkflowEnvironment, inc: Incidents) -> list[str]:
    """A runbook run with an approval gate, a durable wait and notifications (no cluster needed)."""
    iid = "incident-recorded-runbook"
    await env.client.start_workflow(IncidentWorkflow.run, IncidentStart(declare=DeclareInput(
        title="Queue backlog", severity=Severity.SEV2, service="orders", declared_by="pat", commander="dan",
        page=False)), id=iid, task_queue=inc.settings.task_queue)

    def step(index: int, kind: str, title: str, **args: object) -> RenderedStep:
        return RenderedStep(index=index, name=f"{index}-{kind}", kind=kind, title=title, destructive=False,
                            diagnostic=kind != "approval", args=dict(args))
    request = RunbookRequest(runbook="drain-queue", title="Drain the queue", by="dan", steps=[
        step(0, "notify", "Notify: draining", text="Draining the orders queue"),
        step(1, "approval", "Approval: pause consumers?", prompt="Pause consumers?"),
        step(2, "wait", "Wait 1s", duration_s=1.0),
        step(3, "notify", "Notify: done", text="Queue drained")])
    result = await inc._update(iid, IncidentWorkflow.start_runbook, request)
    run_id = result.ref or ""
    while (await inc.runbook_run(run_id)).pending is None:
        await asyncio.sleep(0.05)
    await inc.assign_role(iid, RoleInput(role=Role.ic, person="erin", by="dan"))  # forwarded to the run
    while (await inc.runbook_run(run_id)).commander != "erin":
        await asyncio.sleep(0.05)
    await inc.decide_runbook(run_id, Decision(by="erin", comment="ok"))
    # The wait is 1 s of real time: skipping a longer one here (env.sleep, or awaiting the result) stalled
    # the time-skipping server in about 1 of 7 runs, with the run's timer started and never fired.
    await env.client.get_workflow_handle(run_id).result()
    await inc.resolve(iid, ResolveInput(by="erin", summary="drained"))
    await inc.set_phase(iid, PhaseInput(phase=Phase.postmortem, by="erin"))
    await inc.set_phase(iid, PhaseInput(phase=Phase.closed, by="erin"))
    await env.client.get_workflow_handle(iid).result()
    return [iid]


SCENARIOS = [lifecycle, alerts_reopen_standdown, continued, runbook]


async def record(env: WorkflowEnvironment, inc: Incidents) -> dict[str, WorkflowHistory]:
    """Run every scenario; returns histories by file stem (workflow id, plus the run for older runs)."""
    out: dict[str, WorkflowHistory] = {}
    for scenario in SCENARIOS:
        ids = await scenario(env, inc)
        if len(ids) == 2:  # first run of a continued-as-new incident
            first = env.client.get_workflow_handle(ids[1], run_id=ids[0])
            out[f"{ids[1]}.run1"] = await first.fetch_history()
        for iid in ids[-1:]:
            out[iid] = await env.client.get_workflow_handle(iid).fetch_history()
            for run in (await inc.get(iid)).runbooks:  # the runbook runs it started (children)
                out[run.run_id] = await env.client.get_workflow_handle(run.run_id).fetch_history()
    return out


async def _main() -> None:
    from temporalio.contrib.pydantic import pydantic_data_converter

    from tests.conftest import binary, register_search_attributes, running_worker
    from tests.fakes.slack import FakeSlack

    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"), data_converter=pydantic_data_converter)
    await register_search_attributes(env)
    with FakeSlack() as slack:  # chat on: histories carry the channel's activities too
        async with running_worker(env.client, slack_bot_token=slack.bot_token,
                                  slack_api_url=slack.base_url) as (settings, _):
            histories = await record(env, Incidents(env.client, settings))
    HISTORIES.mkdir(exist_ok=True)
    for stem, history in histories.items():
        (HISTORIES / f"{stem}.{VERSION}.json").write_text(history.to_json())
        print(f"wrote {stem}.{VERSION}.json ({len(history.events)} events)")
    await env.shutdown()


if __name__ == "__main__":
    asyncio.run(_main())
