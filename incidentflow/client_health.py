"""Is a worker polling our task queue right now? (`/readyz`, through `incidentflow.client.worker_polling`)

The task queue's poller list is not enough: Temporal keeps a worker in it for minutes after the worker
died (`/readyz` once said `worker: true` 80 s after a SIGKILL). So when the list names a poller, a
`PingWorkflow` proves it: only a live worker completes it. A positive answer is reused for `FRESH`
seconds, and concurrent probes share one ping, so a busy probe costs at most one tiny workflow per
`FRESH` seconds; a negative answer is never reused.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from workflows.ping import PingWorkflow

FRESH = 2.0  # seconds a worker's pong is trusted
PING_TIMEOUT = 2.0  # seconds a worker has to complete the ping (the readiness probe gives us 3)

_Key = tuple[int, str, str]
_pongs: dict[_Key, float] = {}  # (client, namespace, task queue) → loop time of the last pong
_pings: dict[_Key, asyncio.Future[bool]] = {}


async def worker_polling(client: Client, namespace: str, task_queue: str, timeout: float = PING_TIMEOUT) -> bool:
    """True when a worker polls the task queue now: it completed a ping within `timeout` seconds."""
    key = (id(client), namespace, task_queue)
    loop = asyncio.get_running_loop()
    if loop.time() - _pongs.get(key, float("-inf")) < FRESH:
        return True
    ping = _pings.get(key)
    if ping is None:
        ping = _pings[key] = asyncio.ensure_future(_ping(client, namespace, task_queue, timeout))
        ping.add_done_callback(lambda _: _pings.pop(key, None))
    alive = await asyncio.shield(ping)
    if alive:
        _pongs[key] = loop.time()
    return alive


async def _ping(client: Client, namespace: str, task_queue: str, timeout: float) -> bool:
    resp = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=namespace, task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW), timeout=timedelta(seconds=timeout))
    if not resp.pollers:  # nobody has polled for minutes: no need to ask
        return False
    handle = await client.start_workflow(
        PingWorkflow.run, id=f"incidentflow-ping-{uuid.uuid4().hex}", task_queue=task_queue,
        execution_timeout=timedelta(seconds=10), rpc_timeout=timedelta(seconds=timeout),
        static_summary=f"Readiness ping of task queue {task_queue}"[:200])
    try:
        await asyncio.wait_for(handle.result(), timeout)
    except TimeoutError:
        return False
    return True
