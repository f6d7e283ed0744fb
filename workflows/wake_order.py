"""One wake order for a workflow's coroutines, so an activation issues the same commands however its jobs were
batched (IncidentWorkflow from code level 4; StatusPageWorkflow behind the `wake-order` patch).

A worker without the run in its cache (restarted, or it evicted the run) applies a workflow task that issued no
commands together with the next task's update, in one activation; a replay applies them in two
(temporalio/sdk-rust#1146; tests/test_cold_update.py). `workflow.wait_condition` wakes coroutines in the order they
last started waiting, and the earlier task changes that order, so the two ran the coroutines in different orders
and issued their commands in different orders: TMPRL1100 on every later replay (bench/evidence/
incident-nondeterminism-2026-12-08-cold-update.json).

Here every long-lived coroutine (the run loop, the chat and archive pumps, the escalation messenger, the inline
escalation) waits through one condition and is woken in a fixed rank, lowest first. A coroutine that resumes from
anything else (an activity's result, a signal sent, a child started) also waits for its turn in the next round
(`settle`) before it acts, so what it does next is ordered by rank too, not by where its result sat among the
jobs. With the worker applying an activation's jobs before it runs any coroutine (`workers/single_batch.py`,
the SDK's single-batch flag), the rounds an activation runs are the same whether a command-less task came with it
or not.

Handlers (signals, updates) run in the order of their jobs and act on results at once. A handler that waits on a
condition waits here too, after every ranked coroutine, in the order handlers began waiting: a handler's wait left
to `workflow.wait_condition` woke before or after the ranked ones depending on when this waited last, which is
the same defect (the status page's first publish, waiting for its config on a cold worker, showed it).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow

T = TypeVar("T")

# The rank of the coroutine running now (set at the top of each long-lived coroutine; asyncio copies it into the
# tasks that coroutine starts). Handlers run outside every rank.
RANK: contextvars.ContextVar[int | None] = contextvars.ContextVar("incidentflow_wake_rank", default=None)


class _Waiter:
    __slots__ = ("fn", "timer", "woken")

    def __init__(self, fn: Callable[[], bool], timer: asyncio.Future[None] | None) -> None:
        self.fn, self.timer = fn, timer
        self.woken: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def timed_out(self) -> bool:
        return self.timer is not None and self.timer.done()

    def ready(self) -> bool:
        return not self.woken.done() and (self.fn() or self.timed_out())


class WakeOrder:
    """Off (`on` False), every wait is `workflow.wait_condition` and `settle` only awaits: runs from before it
    replay as they were recorded."""

    def __init__(self) -> None:
        self.on = False
        self._waiting: dict[tuple[int, int], _Waiter] = {}  # (0, rank) or (1, handler's turn to wait): wake order
        self._handlers = 0
        self._dispatcher: asyncio.Future[None] | None = None

    @staticmethod
    def enter(rank: int) -> None:
        """Called first by a long-lived coroutine: its waits and settles take this rank."""
        RANK.set(rank)

    async def until(self, fn: Callable[[], bool], *, timeout: timedelta | None = None,
                    timeout_summary: str | None = None) -> None:
        """`workflow.wait_condition`, woken in the caller's rank, or after every rank for a handler (TimeoutError when
        the timeout passes first)."""
        if not self.on:
            await workflow.wait_condition(fn, timeout=timeout, timeout_summary=timeout_summary)
            return
        rank = RANK.get()
        if rank is None:
            self._handlers += 1
        key = (0, rank) if rank is not None else (1, self._handlers)
        timer = None
        if timeout is not None and not fn():  # met already: no timer to start and cancel (the turn still counts)
            timer = asyncio.ensure_future(workflow.sleep(timeout, summary=timeout_summary))
        try:
            met = await self._wait(key, fn, timer)
        finally:
            if timer is not None and not timer.done():
                timer.cancel()
        if not met:
            raise TimeoutError(timeout_summary or "timed out")

    async def settle(self, awaitable: Awaitable[T]) -> T:
        """Await a command's outcome, then the caller's turn, before the caller acts on it (a failure too)."""
        try:
            result = await awaitable
        except Exception:  # not a cancellation or an eviction (BaseExceptions): those end the coroutine now
            await self.turn()
            raise
        await self.turn()
        return result

    async def turn(self) -> None:
        """Wait for the caller's turn in the next round (nothing when off or outside every rank)."""
        rank = RANK.get()
        if self.on and rank is not None:
            await self._wait((0, rank), _always, None)

    async def _wait(self, key: tuple[int, int], fn: Callable[[], bool], timer: asyncio.Future[None] | None) -> bool:
        if key in self._waiting:
            raise RuntimeError(f"two coroutines wait at wake rank {key[1]}")
        waiter = _Waiter(fn, timer)
        self._waiting[key] = waiter
        if self._dispatcher is None:
            self._dispatcher = asyncio.ensure_future(self._dispatch())
        try:
            return await waiter.woken
        finally:
            if self._waiting.get(key) is waiter:
                del self._waiting[key]

    def _any_ready(self) -> bool:
        return any(w.ready() for w in self._waiting.values())

    async def _dispatch(self) -> None:
        """Each round wakes every coroutine whose condition holds (or whose timeout passed), lowest rank first, then
        the handlers. They run after this one, in the order they were woken."""
        while True:
            await workflow.wait_condition(self._any_ready)
            for key in sorted(self._waiting):
                waiter = self._waiting[key]
                if waiter.woken.done():
                    continue
                met = waiter.fn()  # once a round: some conditions cost (the chat pump's compares summaries)
                if met or waiter.timed_out():
                    del self._waiting[key]
                    waiter.woken.set_result(met)


def _always() -> bool:
    return True
