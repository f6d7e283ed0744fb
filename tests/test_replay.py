"""Determinism: recorded histories must replay on the current code, so running incidents never break.

`tests/histories/` holds the set recorded at the baseline and one set per release after it
(`python -m tests.record_histories`); every file replays on every run. A change to running logic that
fails here goes behind `workflow.patched(...)` (see README, "Changing workflow code").
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from domain.models import IncidentStart, IncidentState
from tests.record_histories import HISTORIES, record, recording_worker
from workflows import WORKFLOWS
from workflows.incident import IncidentWorkflow

COMMITTED = sorted(HISTORIES.glob("*.json"))
BASELINE = HISTORIES / "incident-recorded-lifecycle.baseline.json"


def load(path: Path) -> WorkflowHistory:
    workflow_id = path.name.split(".")[0]  # <workflow id>[.runN].<version>.json
    return WorkflowHistory.from_json(workflow_id, path.read_text())


def workflow_type(history: WorkflowHistory) -> str:
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name


def activity_types(history: WorkflowHistory) -> set[str]:
    return {e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
            if e.HasField("activity_task_scheduled_event_attributes")}


def replayer(*workflows: type) -> Replayer:
    return Replayer(workflows=list(workflows or WORKFLOWS), data_converter=pydantic_data_converter)


def test_the_baseline_covers_every_workflow() -> None:
    baseline = [load(p) for p in COMMITTED if p.name.endswith(".baseline.json")]
    assert {workflow_type(h) for h in baseline} == {"IncidentWorkflow", "EscalationWorkflow", "RunbookWorkflow",
                                                    "AlertGroupWorkflow", "HandoffWorkflow"}, \
        "tests/histories/ holds the baseline of every workflow (python -m tests.record_histories)"
    activities = set().union(*(activity_types(h) for h in baseline))
    assert {"open_chat", "sync_chat", "page", "sync_pagers", "send_notification", "compose_handoff"} <= activities
    assert any(".run1." in p.name for p in COMMITTED), "a continued-as-new incident"
    assert not any(p.name.split(".")[-2] in {f"v{n}" for n in range(1, 8)} for p in COMMITTED), \
        "the histories from before the baseline are gone with their patches"


@pytest.mark.parametrize("path", COMMITTED, ids=[p.stem for p in COMMITTED])
async def test_committed_history_replays(path: Path) -> None:
    await replayer().replay_workflow(load(path))


async def test_fresh_histories_replay(ts_env: WorkflowEnvironment) -> None:
    async with recording_worker(ts_env) as inc:
        histories = await record(ts_env, inc)
    for history in histories.values():
        result = await replayer().replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, f"{history.workflow_id}: {result.replay_failure}"
    assert {workflow_type(h) for h in histories.values()} == {"IncidentWorkflow", "EscalationWorkflow",
                                                              "RunbookWorkflow", "AlertGroupWorkflow",
                                                              "HandoffWorkflow"}
    # as many workflows as the baseline holds (how often an incident continues-as-new may vary)
    baseline = {p.name.split(".")[0] for p in COMMITTED if p.name.endswith(".baseline.json")}
    assert len({stem.split(".")[0] for stem in histories}) == len(baseline)


@workflow.defn(name="IncidentWorkflow", sandboxed=False)  # a test double: no sandbox re-imports
class ChangedWithoutPatch(IncidentWorkflow):
    """What a careless change looks like: a new timer before the old logic, not guarded by patched()."""

    @workflow.run
    async def run(self, start: IncidentStart) -> IncidentState:
        await workflow.sleep(1)
        return await super().run(start)


@workflow.defn(name="IncidentWorkflow", sandboxed=False)
class ChangedWithPatch(IncidentWorkflow):
    """The same change done right: new runs take it, recorded ones replay as they ran."""

    @workflow.run
    async def run(self, start: IncidentStart) -> IncidentState:
        if workflow.patched("example-new-timer"):
            await workflow.sleep(1)
        return await super().run(start)


async def test_an_unpatched_change_is_caught() -> None:
    with pytest.raises(Exception, match="[Nn]ondeterminism|TMPRL1100"):
        await replayer(ChangedWithoutPatch).replay_workflow(load(BASELINE))


async def test_a_patched_change_replays_the_baseline() -> None:
    await replayer(ChangedWithPatch).replay_workflow(load(BASELINE))
