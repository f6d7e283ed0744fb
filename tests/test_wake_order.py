"""workflows/wake_order.py with workers/single_batch.py: a worker without a workflow cache writes histories that
replay, in the two shapes of the SDK defect tests/test_cold_update.py pins (a command-less task merged with an
update's). RankedWorkflow (tests/cold_update.py) is that test's workflow with its coroutines woken in a rank.
Real dev server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from tests.cold_update import RankedWorkflow, cold_sync, cold_wait
from workers import single_batch

Drive = Callable[[WorkflowHandle[RankedWorkflow, None]], Awaitable[None]]


async def _poke_then_change(handle: WorkflowHandle[RankedWorkflow, None]) -> None:
    """The loop wakes in a task that issues nothing, then an update wakes both coroutines."""
    await asyncio.sleep(0.3)
    await handle.signal(RankedWorkflow.bump)
    await asyncio.sleep(0.5)
    await handle.signal(RankedWorkflow.poke)
    await asyncio.sleep(0.5)
    assert await handle.execute_update(RankedWorkflow.change) == "changed"


async def _work_then_change(handle: WorkflowHandle[RankedWorkflow, None]) -> None:
    """The loop's activity result arrives in a task that issues nothing, after another that issued nothing, then
    an update wakes both coroutines."""
    await asyncio.sleep(0.3)
    await handle.signal(RankedWorkflow.start_work)  # the loop's activity takes 0.6 s
    await asyncio.sleep(0.2)
    await handle.signal(RankedWorkflow.poke)  # the loop is busy: no commands
    await asyncio.sleep(1.0)  # the result: the loop goes round once more for the poke, finds nothing, waits
    assert await handle.execute_update(RankedWorkflow.change) == "changed"


async def _replay_failure(env: WorkflowEnvironment, drive: Drive, batch: bool) -> str | None:
    client, queue = env.client, f"ranked-{uuid.uuid4().hex[:8]}"
    worker = Worker(client, task_queue=queue, workflows=[RankedWorkflow], activities=[cold_sync, cold_wait],
                    max_cached_workflows=0)  # every task on a cold worker, as after a restart
    if batch:
        assert single_batch.enable(worker)
    async with worker:
        handle = await client.start_workflow(RankedWorkflow.run, id=f"ranked-{uuid.uuid4()}", task_queue=queue)
        await drive(handle)
        await handle.signal(RankedWorkflow.finish)
        try:
            await asyncio.wait_for(handle.result(), 5)
        except TimeoutError:  # its next task failed on the worker's own replay: retried, never done
            await handle.terminate("does not replay")
        history = await handle.fetch_history()
    result = await Replayer(workflows=[RankedWorkflow]).replay_workflow(history, raise_on_replay_failure=False)
    return None if result.replay_failure is None else str(result.replay_failure)


async def test_ranked_coroutines_replay_after_a_task_that_woke_one_for_nothing(dev_env: WorkflowEnvironment) -> None:
    assert await _replay_failure(dev_env, _poke_then_change, batch=True) is None


async def test_ranked_coroutines_replay_after_a_task_that_held_an_activity_result(
        dev_env: WorkflowEnvironment) -> None:
    assert await _replay_failure(dev_env, _work_then_change, batch=True) is None


async def test_without_single_batch_an_activity_result_comes_after_the_update(dev_env: WorkflowEnvironment) -> None:
    """Why the worker turns the flag on: grouped by kind, the merged activation runs the update's round before the
    loop has its activity result, so the pump's command comes first; replayed, the loop's does."""
    failure = await _replay_failure(dev_env, _work_then_change, batch=False)
    assert failure is not None and "TMPRL1100" in failure, failure
