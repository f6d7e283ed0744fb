"""Small helpers shared by the Temporal-backed tests."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from domain.models import EventKind, IncidentState, TimelineEvent

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], check: Callable[[T], bool],
                     timeout: float = 30.0, interval: float = 0.1) -> T:
    """Poll until `check(value)` holds (visibility and real-time timers are eventually consistent)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await probe()
        if check(value):
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s; last value: {value!r}"[:2000])
        await asyncio.sleep(interval)


async def settled(client: Any, workflow_id: str, polls: int = 4, interval: float = 0.25,
                  timeout: float = 30.0) -> None:
    """Wait, without queries, until a workflow's current run and its history length hold still for `polls`
    polls in a row. The time-skipping server never answers a query sent to a run as it continues-as-new, and
    holds its time still for it: a test whose incident continues-as-new queries only once it has settled."""
    handle = client.get_workflow_handle(workflow_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last, same = None, 0
    while same < polls:
        d = await handle.describe()
        now = (d.run_id, d.raw_description.workflow_execution_info.history_length)
        same = same + 1 if now == last else 1
        last = now
        if loop.time() > deadline:
            raise AssertionError(f"{workflow_id} did not settle within {timeout} s; last {now}")
        await asyncio.sleep(interval)


def events(state: IncidentState, kind: EventKind) -> list[TimelineEvent]:
    return [e for e in state.timeline if e.kind == kind]


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def uvicorn_serving(app: Any, port: int | None = None) -> AsyncIterator[int]:
    """Serve an ASGI app with the dev stack's uvicorn server on a loopback port; yields the port."""
    import uvicorn

    from incidentflow.stack import _Server

    port = port or free_port()
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "API did not start"
        await asyncio.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


def add_action_row(document: str, row: str) -> str:
    """What a person does in a postmortem: a row in the first table (Fix) of its action items."""
    start = document.index("<!-- incidentflow:actions -->")
    separator = document.index("|---", start)
    end = document.index("\n", separator) + 1
    return document[:end] + row.rstrip("\n") + "\n" + document[end:]
