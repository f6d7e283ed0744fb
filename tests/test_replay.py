"""Determinism: recorded histories must replay on the current code, so running incidents never break."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from domain.models import IncidentStart, IncidentState
from incidentflow.client import Incidents
from tests.conftest import running_worker
from tests.record_histories import HISTORIES, record
from workflows import WORKFLOWS
from workflows.incident import IncidentWorkflow

COMMITTED = sorted(HISTORIES.glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    workflow_id = path.name.split(".")[0]  # <workflow id>[.run1].<version>.json
    return WorkflowHistory.from_json(workflow_id, path.read_text())


def replayer(*workflows: type) -> Replayer:
    return Replayer(workflows=list(workflows or WORKFLOWS), data_converter=pydantic_data_converter)


def test_histories_are_committed() -> None:
    versions = {p.name.split(".")[-2] for p in COMMITTED}
    assert len(COMMITTED) >= 12 and {"v1", "v2", "v3", "v4", "v5", "v6", "v7"} <= versions, \
        "tests/histories/ holds the recorded incidents of every version (python -m tests.record_histories)"


@pytest.mark.parametrize("path", COMMITTED, ids=[p.stem for p in COMMITTED])
async def test_committed_history_replays(path: Path) -> None:
    await replayer().replay_workflow(load(path))


async def test_fresh_histories_replay(ts_env: WorkflowEnvironment) -> None:
    async with running_worker(ts_env.client) as (settings, _):
        histories = await record(ts_env, Incidents(ts_env.client, settings))
    assert len(histories) == 6  # 4 incident runs (one continued-as-new), 1 with a runbook, and that run
    for history in histories.values():
        result = await replayer().replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, f"{history.workflow_id}: {result.replay_failure}"


@workflow.defn(name="IncidentWorkflow", sandboxed=False)  # a test double: no sandbox re-imports
class ChangedWithoutPatch(IncidentWorkflow):
    """What a careless change looks like: a new timer before the old logic, not guarded by patched()."""

    @workflow.run
    async def run(self, start: IncidentStart) -> IncidentState:
        await workflow.sleep(1)
        return await super().run(start)


async def test_an_unpatched_change_is_caught() -> None:
    with pytest.raises(Exception, match="[Nn]ondeterminism|TMPRL1100"):
        await replayer(ChangedWithoutPatch).replay_workflow(load(HISTORIES / "incident-recorded-lifecycle.v1.json"))
