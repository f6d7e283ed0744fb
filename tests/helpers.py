"""Small helpers shared by the Temporal-backed tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

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


def events(state: IncidentState, kind: EventKind) -> list[TimelineEvent]:
    return [e for e in state.timeline if e.kind == kind]
