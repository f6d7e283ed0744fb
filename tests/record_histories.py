"""Recorded histories: the scenarios behind tests/histories/*.json.

`python -m tests.record_histories` runs every scenario on the time-skipping server, with the example
config, chat against the fake Slack and the log pager, and writes `<workflow id>[.runN].<VERSION>.json`
for every workflow it ran: incidents (one continued-as-new), their escalation and runbook children, an
alert group and a handoff note. test_replay.py replays every file on every run.

Versioning (README, "Changing workflow code"): the files of each release stay. Record a new set only
for a release (set VERSION to it), never to make a replay failure go away.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.client import WorkflowExecutionStatus, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from domain import ingest
from domain.config import IncidentflowConfig, load_config
from domain.models import (
    AckInput,
    AlertBatch,
    AlertmanagerPayload,
    AlertSignal,
    AlertStatus,
    DeclareInput,
    EscalateInput,
    IncidentPolicy,
    IncidentStart,
    IncidentSummary,
    NoteInput,
    PageInput,
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
from domain.models.handoff import HandoffInput
from domain.models.runbook import Decision, RenderedStep, RunbookRequest
from incidentflow.client import Incidents
from workflows.handoff import HandoffWorkflow
from workflows.incident import IncidentWorkflow

HISTORIES = Path(__file__).parent / "histories"
FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLE_CONFIG = Path(__file__).parent.parent / "config/example.yaml"
VERSION = "baseline"  # the first release's set; later releases add theirs beside it
MIN = timedelta(minutes=1)
SCENARIO_TIMEOUT = 60  # seconds of real time (each takes about one)
Scenario = Callable[[WorkflowEnvironment, Incidents], Awaitable[list[str]]]


async def start(env: WorkflowEnvironment, inc: Incidents, iid: str, declare: DeclareInput,
                policy: IncidentPolicy | None = None) -> None:
    await env.client.start_workflow(IncidentWorkflow.run, IncidentStart(
        declare=declare, policy=policy or inc.config.incident_policy()), id=iid, task_queue=inc.settings.task_queue)


async def escalating(inc: Incidents, iid: str) -> None:
    """Until the incident's escalation has started (a command sent with the declaration comes first)."""
    while not (await inc.get(iid)).escalation_active:
        await asyncio.sleep(0.05)


async def lifecycle(env: WorkflowEnvironment, inc: Incidents) -> list[str]:
    """Every phase, roles, severity, the reminders of the process, and the channel kept current."""
    iid = "incident-recorded-lifecycle"
    await start(env, inc, iid, DeclareInput(title="Checkout failing", severity=Severity.SEV2, service="checkout",
                                            declared_by="pat"))
    await escalating(inc, iid)
    await inc.acknowledge(iid, AckInput(by="alice"))  # stops the escalation; the pager hears it
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
    """Alerts drive the phase (monitoring, flapping reopens), then a reopen and a stand-down."""
    iid = "incident-recorded-alerts"
    await start(env, inc, iid, DeclareInput(title="Search latency", severity=Severity.SEV3, service="search",
                                            declared_by="am", commander="dan"))
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
    """A busy incident continues-as-new; the next run carries the state and the timers over."""
    iid = "incident-recorded-continued"
    await start(env, inc, iid, DeclareInput(title="Noisy", severity=Severity.SEV2, declared_by="pat"),
                inc.config.incident_policy().model_copy(update={"continue_as_new_after_events": 100}))  # ~50 by the ack
    await escalating(inc, iid)
    # Acknowledged, and its escalation over, before it continues-as-new: the time-skipping test server
    # stops skipping time for good once a child completes after the run that started it continued.
    await inc.acknowledge(iid, AckInput(by="carol"))
    child = env.client.get_workflow_handle(f"{iid}-escalation-1")
    while (await child.describe()).status != WorkflowExecutionStatus.COMPLETED:
        await asyncio.sleep(0.05)
    for i in range(25):  # about 100 events more: it continues once the channel has caught up
        await inc.add_note(iid, NoteInput(text=f"note {i}", by="scribe"))
        if i % 5 == 4:
            await inc.post_status_update(iid, StatusUpdateInput(text=f"update {i}", by="carol"))
    while (await inc.get(iid)).runs < 2:
        await asyncio.sleep(0.05)
    await inc.stand_down(iid, StandDownInput(by="pat", reason="done recording"))
    await env.client.get_workflow_handle(iid).result()
    return [iid]


async def escalation(env: WorkflowEnvironment, inc: Incidents) -> list[str]:
    """A SEV1 escalation through its levels, a manual jump, a manual page, then the acknowledgement."""
    iid = "incident-recorded-escalation"
    await start(env, inc, iid, DeclareInput(title="Payments down", severity=Severity.SEV1, service="checkout",
                                            declared_by="pat"))
    await env.sleep(6 * MIN)  # L1 paged at once, L2 after 5 min
    await inc.escalate(iid, EscalateInput(level=1, by="carol"))
    await inc.page(iid, PageInput(person="carol", by="dan", note="database expert"))
    await inc.acknowledge(iid, AckInput(by="alice"))
    while (await inc.get(iid)).escalation_active:
        await asyncio.sleep(0.05)
    await inc.resolve(iid, ResolveInput(by="alice", summary="failed over"))
    await inc.set_phase(iid, PhaseInput(phase=Phase.closed, by="alice"))
    await env.client.get_workflow_handle(iid).result()
    return [iid]


async def runbook(env: WorkflowEnvironment, inc: Incidents) -> list[str]:
    """A runbook run with an approval gate, a durable wait and notifications (no cluster needed)."""
    iid = "incident-recorded-runbook"
    await start(env, inc, iid, DeclareInput(title="Queue backlog", severity=Severity.SEV2, service="orders",
                                            declared_by="pat", commander="dan", page=False))

    def step(index: int, kind: str, title: str, **args: object) -> RenderedStep:
        return RenderedStep(index=index, name=f"{index}-{kind}", kind=kind, title=title, destructive=False,
                            diagnostic=kind != "approval", args=dict(args))
    request = RunbookRequest(runbook="drain-queue", title="Drain the queue", by="dan", steps=[
        step(0, "notify", "Notify: draining", text="Draining the orders queue"),
        step(1, "approval", "Approval: pause consumers?", prompt="Pause consumers?"),
        step(2, "wait", "Wait 1s", duration_s=1.0),
        step(3, "notify", "Notify: done", text="Queue drained")])
    run_id = (await inc.start_runbook(iid, request)).ref or ""
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


async def alert_group(env: WorkflowEnvironment, inc: Incidents) -> list[str]:
    """Alertmanager notifications: the group opens the incident, forwards, hears the resolve, ends."""
    def batch(fixture: str) -> AlertBatch:
        payload = AlertmanagerPayload.model_validate(json.loads((FIXTURES / fixture).read_text()))
        return ingest.from_alertmanager(payload, inc.config.routing.router(), datetime.now(UTC))
    firing = batch("alertmanager-firing.json")
    group_id = ingest.group_workflow_id(firing.group_key)
    await inc.ingest(firing)
    while not (group := await inc.alert_group(group_id)) or not group.incident_id:
        await asyncio.sleep(0.05)
    iid = group.incident_id
    # Paging starts once the run has waited for the channel; a resolve before that pages nobody (right, but then the
    # recorded history lacks its escalation, as it did twice under a full suite's load).
    while (await inc.get(iid)).escalations < 1:
        await asyncio.sleep(0.05)
    await inc.ingest(batch("alertmanager-firing-two.json"))
    await inc.ingest(batch("alertmanager-resolved.json"))
    while (await inc.get(iid)).phase != Phase.monitoring:
        await asyncio.sleep(0.05)
    await inc.resolve(iid, ResolveInput(by="alice", summary="restarted the pods"))
    while (await inc.alert_group(group_id) or group).incident_phase != Phase.resolved:
        await asyncio.sleep(0.05)
    await env.sleep(31 * MIN)  # past the reopen window: the group run ends
    while (await env.client.get_workflow_handle(group_id).describe()).status != WorkflowExecutionStatus.COMPLETED:
        await asyncio.sleep(0.05)
    await inc.set_phase(iid, PhaseInput(phase=Phase.closed, by="alice"))
    await env.client.get_workflow_handle(iid).result()
    return [group_id, iid]


async def handoff(env: WorkflowEnvironment, inc: Incidents) -> list[str]:
    """The on-call handoff note a Schedule starts (here started by hand)."""
    wid = "handoff-recorded"
    await env.client.execute_workflow(HandoffWorkflow.run, HandoffInput(schedule="checkout-oncall"), id=wid,
                                      task_queue=inc.settings.task_queue)
    return [wid]


async def learning(env: WorkflowEnvironment, inc: Incidents) -> list[str]:
    """A SEV1 resolves: its postmortem is drafted, filled, published with one action item (then done)."""
    from domain.actions.models import DoneInput
    from domain.postmortem.models import PostmortemPublishInput, PostmortemSetInput
    from tests.helpers import add_action_row

    iid = "incident-recorded-learning"
    await start(env, inc, iid, DeclareInput(title="Checkout errors", severity=Severity.SEV1, service="checkout",
                                            declared_by="alice", page=False))
    await inc.acknowledge(iid, AckInput(by="alice"))
    await inc.resolve(iid, ResolveInput(by="alice", summary="rolled back"))
    pm = await inc._first_draft(iid, wait=30)
    assert pm.sink is not None
    await inc.set_postmortem(iid, PostmortemSetInput(by="alice", root_cause="a timeout of 2 s on the fraud check"))
    doc = Path(pm.sink.ref)  # the directory sink's file
    due = (datetime.now(UTC) + timedelta(days=14)).date()
    doc.write_text(add_action_row(doc.read_text(), f"| Alert on fraud check latency | bob | {due:%Y-%m-%d} | P1 |"))
    published = await inc.publish_postmortem(iid, PostmortemPublishInput(by="alice"))
    await inc.action_done(published.items[0], DoneInput(by="bob"))
    await env.client.get_workflow_handle(published.items[0]).result()
    return [iid, f"postmortem-{iid}", *published.items]


SCENARIOS: list[Scenario] = [lifecycle, alerts_reopen_standdown, continued, escalation, runbook, alert_group,
                             handoff, learning]


async def histories_of(env: WorkflowEnvironment, inc: Incidents, workflow_id: str) -> dict[str, WorkflowHistory]:
    """Every run of the workflow (earlier runs of a continued-as-new chain as `.runN`) and, for an
    incident, its escalation and runbook children; by file stem."""
    runs = [await env.client.get_workflow_handle(workflow_id).fetch_history()]
    while previous := runs[0].events[0].workflow_execution_started_event_attributes.continued_execution_run_id:
        runs.insert(0, await env.client.get_workflow_handle(workflow_id, run_id=previous).fetch_history())
    out = {f"{workflow_id}.run{n}": history for n, history in enumerate(runs[:-1], 1)}
    out[workflow_id] = runs[-1]
    if runs[-1].events[0].workflow_execution_started_event_attributes.workflow_type.name == "IncidentWorkflow":
        state = await inc.get(workflow_id)
        children = [f"{workflow_id}-escalation-{n}" for n in range(1, state.escalations + 1)
                    if state.escalation is None]  # code level 3 escalates inside the incident: no child
        for child in children + [run.run_id for run in state.runbooks]:
            out[child] = await env.client.get_workflow_handle(child).fetch_history()
    return out


async def record(env: WorkflowEnvironment, inc: Incidents,
                 scenarios: list[Scenario] | None = None) -> dict[str, WorkflowHistory]:
    """Run every scenario (or those given); returns the histories by file stem."""
    out: dict[str, WorkflowHistory] = {}
    for scenario in scenarios or SCENARIOS:
        try:
            ids = await asyncio.wait_for(scenario(env, inc), SCENARIO_TIMEOUT)
        except TimeoutError:
            raise AssertionError(f"scenario {scenario.__name__} did not finish in {SCENARIO_TIMEOUT} s") from None
        for workflow_id in ids:
            out.update(await histories_of(env, inc, workflow_id))
    return out


def recording_config() -> IncidentflowConfig:
    return load_config(EXAMPLE_CONFIG)


class RecordedIncidents:
    """The worker's incident directory on the time-skipping server (which cannot list workflows)."""

    async def list(self, *, limit: int = 100) -> list[IncidentSummary]:
        return [IncidentSummary(id="incident-recorded-escalation", title="Payments down", severity=Severity.SEV1,
                                phase=Phase.investigating, service="checkout", commander="alice", acknowledged=True,
                                declared_at=datetime.now(UTC) - timedelta(hours=2), running=True)][:limit]


@asynccontextmanager
async def recording_worker(env: WorkflowEnvironment) -> AsyncIterator[Incidents]:
    """A worker as the recordings need it: the example config, chat against the fake Slack (with the
    config's people as members), the log pager; yields the door to drive it."""
    from tests.conftest import running_worker
    from tests.fakes.slack import FakeSlack

    config = recording_config()
    with FakeSlack() as slack:
        for person in ("alice", "bob", "carol", "dan"):
            slack.add_user(name=person, email=f"{person}@example.com")
        async with running_worker(env.client, config=lambda: config, directory=RecordedIncidents(),
                                  slack_bot_token=slack.bot_token, slack_api_url=slack.base_url,
                                  data_dir=tempfile.mkdtemp(prefix="incidentflow-recording-")) as (settings, _):
            yield Incidents(env.client, settings, config)


async def _main(only: str | None = None, version: str = VERSION) -> None:
    from temporalio.contrib.pydantic import pydantic_data_converter

    from tests.conftest import binary, register_search_attributes

    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"), data_converter=pydantic_data_converter)
    try:
        await register_search_attributes(env)
        async with recording_worker(env) as inc:
            histories = await record(env, inc, [s for s in SCENARIOS if only in (None, s.__name__)])
    finally:
        await env.shutdown()
    HISTORIES.mkdir(exist_ok=True)
    for stem, history in sorted(histories.items()):
        (HISTORIES / f"{stem}.{version}.json").write_text(history.to_json())
        print(f"wrote {stem}.{version}.json ({len(history.events)} events)")


if __name__ == "__main__":  # python -m tests.record_histories [SCENARIO VERSION]: one scenario, a new release
    import sys

    asyncio.run(_main(*sys.argv[1:3]) if len(sys.argv) > 2 else _main())
