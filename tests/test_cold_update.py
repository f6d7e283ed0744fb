"""A Temporal SDK defect that can make an incident's history unreplayable, pinned with the smallest workflow that
shows it (tests/cold_update.py), on the real dev server. Open upstream: temporalio/sdk-rust#1146 (sdk-core's
`find_end_index_of_next_wft_seq` merges a workflow task that issued no commands into the next one when that one
was scheduled with no event of its own, as an update's is; "Workflow Task Chunking: v2", sdk-rust#1509, is the fix
in review) and temporalio/sdk-python#1591 (the nondeterminism it causes with updates). incidentflow's own
workflows are safe from it since the wake order (workflows/wake_order.py, tests/test_wake_order.py).

A worker without the run in its cache (restarted, or it evicted the run) applies the signal of the earlier,
command-less task and the update in one activation. A replay applies them in two. Coroutines that wait on
conditions are woken in the order they last started waiting, and the earlier task moved one of them to the end
of that order, so the two runs issue the same commands in different orders: TMPRL1100 on every later replay.
The fault suite met it on an incident (an `assign_role` update after an `alerts` signal that changed nothing;
bench/evidence/incident-nondeterminism-2026-12-08-cold-update.json; bench/README.md, "Issue 16, seventh
session"). When this test fails, the SDK has fixed it: delete it and say so in bench/README.md."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from tests.cold_update import ColdUpdateWorkflow, cold_sync


async def _drive(handle: WorkflowHandle[ColdUpdateWorkflow, None]) -> None:
    await asyncio.sleep(0.3)
    await handle.signal(ColdUpdateWorkflow.bump)  # the pump's activity; it waits again after the loop
    await asyncio.sleep(0.5)
    await handle.signal(ColdUpdateWorkflow.poke)  # the loop waits again, now after the pump; no commands
    await asyncio.sleep(0.5)
    assert await handle.execute_update(ColdUpdateWorkflow.change) == "changed"


async def _replays(env: WorkflowEnvironment, cache: int) -> str | None:
    client, queue = env.client, f"cold-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[ColdUpdateWorkflow], activities=[cold_sync],
                      max_cached_workflows=cache):
        handle = await client.start_workflow(ColdUpdateWorkflow.run, id=f"cold-{uuid.uuid4()}", task_queue=queue)
        await _drive(handle)
        history = await handle.fetch_history()
        await handle.terminate("test finished")
    result = await Replayer(workflows=[ColdUpdateWorkflow]).replay_workflow(history, raise_on_replay_failure=False)
    return None if result.replay_failure is None else str(result.replay_failure)


async def test_a_warm_worker_writes_a_history_that_replays(dev_env: WorkflowEnvironment) -> None:
    assert await _replays(dev_env, cache=100) is None


async def test_a_cold_worker_handling_an_update_writes_a_history_no_replay_accepts(
        dev_env: WorkflowEnvironment) -> None:
    failure = await _replays(dev_env, cache=0)  # every task on a cold worker, as after a restart
    assert failure is not None and "TMPRL1100" in failure, failure
