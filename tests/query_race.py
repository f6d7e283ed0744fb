"""The smallest workflow that shows the query race workers/query_guard.py guards against, and (run as
`python -m tests.query_race TARGET QUEUE ACTS GUARD`) the first worker of that test, killed with SIGKILL."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner

from workers.query_guard import QueryGuardRunner

GATE = asyncio.Event()


@activity.defn
async def slow() -> str:
    await GATE.wait()
    return "done"


@activity.defn
async def after_result() -> str:
    return "a"


@activity.defn
async def after_signal() -> str:
    return "b"


@workflow.defn
class RaceWorkflow:
    """Two coroutines, like an incident's chat and archive pumps: one acts on an activity result, the other
    on a signal."""

    def __init__(self) -> None:
        self.poked = False

    @workflow.run
    async def run(self, acts: str) -> None:
        async def on_signal() -> None:
            await workflow.wait_condition(lambda: self.poked)
            await workflow.execute_activity(after_signal, task_queue=acts, start_to_close_timeout=timedelta(seconds=30))

        other = asyncio.ensure_future(on_signal())
        await workflow.execute_activity(slow, task_queue=acts, start_to_close_timeout=timedelta(seconds=60))
        await workflow.execute_activity(after_result, task_queue=acts, start_to_close_timeout=timedelta(seconds=30))
        await other

    @workflow.signal
    def poke(self) -> None:
        self.poked = True

    @workflow.query
    def poked_yet(self) -> bool:
        return self.poked


def runner(guard: bool) -> WorkflowRunner:
    return QueryGuardRunner(UnsandboxedWorkflowRunner()) if guard else UnsandboxedWorkflowRunner()


async def first_worker(target: str, queue: str, guard: bool) -> None:
    client = await Client.connect(target)
    # A sticky queue that outlives the worker by 5 s: the task for the activity's result waits there.
    await Worker(client, task_queue=queue, workflows=[RaceWorkflow], workflow_runner=runner(guard),
                 sticky_queue_schedule_to_start_timeout=timedelta(seconds=5)).run()


if __name__ == "__main__":
    asyncio.run(first_worker(sys.argv[1], sys.argv[2], sys.argv[4] == "guard"))


INTERRUPTED: list[str] = []  # what freed StuckWorkflow's thread


@workflow.defn(sandboxed=False)
class StuckWorkflow:
    """Blocks its thread past the SDK's 2 s deadlock timeout. The worker frees a deadlocked thread by raising in it,
    which needs the instance's thread id: the guard's wrapper must pass it on."""

    @workflow.run
    async def run(self) -> None:
        import time

        try:
            for _ in range(60):  # 6 s, unless interrupted
                time.sleep(0.1)  # noqa: TID251 - the point of this workflow
        except BaseException as exc:
            INTERRUPTED.append(type(exc).__name__)
            raise


@activity.defn
async def echo(text: str) -> str:
    return text + "!"


@workflow.defn
class EchoWorkflow:
    """One activity, in the sandbox: which payload-context questions reach the instance (test_query_guard)."""

    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(echo, text, start_to_close_timeout=timedelta(seconds=30))
