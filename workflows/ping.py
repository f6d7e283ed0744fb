"""PingWorkflow: proof that a worker is polling the task queue right now (the API's `/readyz`).

The task queue's poller list keeps a worker for minutes after it died; a workflow that only a live worker
can complete does not. It does nothing, leaves nothing behind (it completes at once) and is never
continued or replayed by anything else.
"""

from __future__ import annotations

from temporalio import workflow


@workflow.defn(name="PingWorkflow")
class PingWorkflow:
    @workflow.run
    async def run(self) -> str:
        return "pong"
