"""Heartbeats for activities whose one call can take long (a vendor's answer): while they work, they tell Temporal
the attempt is alive, so a SIGKILLed worker's attempt is retried on another worker within the activity's heartbeat
timeout (workflows/options.py: PAGE, TRACKER), not after its whole start-to-close timeout."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator

from temporalio import activity

HEARTBEAT_EVERY = 2.0  # seconds between heartbeats; the heartbeat timeouts that rely on them are 10 s
_BEATING: contextvars.ContextVar[bool] = contextvars.ContextVar("heartbeating", default=False)


@contextlib.asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    """Heartbeat every HEARTBEAT_EVERY while the block runs, however long one call inside takes. The first goes after
    HEARTBEAT_EVERY, so work done sooner (the usual page) costs no heartbeat call. Nested uses and uses outside an
    activity do nothing."""
    if _BEATING.get() or not activity.in_activity():
        yield
        return
    token = _BEATING.set(True)

    async def beat() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY)
            activity.heartbeat()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        _BEATING.reset(token)
        with contextlib.suppress(asyncio.CancelledError):
            await task
