"""The smallest workflow that shows a Temporal SDK defect incidentflow's incidents meet (tests/test_cold_update.py):
two coroutines that each issue a command when an update changes the state, as an incident's run loop (search
attributes) and chat pump (`sync_chat`) do. RankedWorkflow is the same with the incident's cure
(workflows/wake_order.py; tests/test_wake_order.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow

from workflows.wake_order import WakeOrder


@activity.defn
async def cold_sync(n: int) -> int:
    return n


@activity.defn
async def cold_wait(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


class _Pokes:
    """State and handlers both workflows share: `version` drives the pump, `wake` the loop, `changes` the upsert."""

    def __init__(self) -> None:
        self.wake = False
        self.version = self.sent = self.changes = 0
        self.done = False

    @workflow.signal
    def bump(self) -> None:  # the pump syncs; the loop does not wake
        self.version += 1

    @workflow.signal
    def poke(self) -> None:  # the loop wakes and issues nothing: a workflow task with no commands
        self.wake = True

    @workflow.update
    def change(self) -> str:  # both wake: the loop upserts, the pump syncs
        self.version += 1
        self.changes += 1
        self.wake = True
        return "changed"

    @change.validator
    def _check_change(self) -> None:
        pass

    @workflow.signal
    def finish(self) -> None:
        self.done = self.wake = True


@workflow.defn
class ColdUpdateWorkflow(_Pokes):

    @workflow.run
    async def run(self) -> None:
        async def pump() -> None:  # like the chat pump: one activity per change of `version`
            while True:
                await workflow.wait_condition(lambda: self.sent != self.version or self.done)
                if self.done:
                    return
                version = self.version
                await workflow.execute_activity(cold_sync, version, start_to_close_timeout=timedelta(seconds=10))
                self.sent = version

        pumping = asyncio.ensure_future(pump())
        shown = 0
        while not self.done:  # like the run loop: wakes on every signal, upserts only when an update changed things
            self.wake = False
            if self.changes != shown:
                shown = self.changes
                workflow.upsert_memo({"changes": shown})
            await workflow.wait_condition(lambda: self.wake)
        await pumping


@workflow.defn
class RankedWorkflow(_Pokes):
    """ColdUpdateWorkflow's two coroutines waiting through workflows.wake_order: the loop at rank 0, the pump at 1.
    `start_work` has the loop run a slow activity; a `poke` meanwhile is a command-less task (the loop is busy), and
    so is the one with the activity's result (the loop finds nothing to do): that one holds an activity result."""

    def __init__(self) -> None:
        super().__init__()
        self.order = WakeOrder()
        self.order.on = True
        self.work = False

    @workflow.run
    async def run(self) -> None:
        WakeOrder.enter(0)
        pumping = asyncio.ensure_future(self.pump())
        shown = 0
        while not self.done:
            self.wake = False
            if self.work:
                self.work = False
                await self.order.settle(workflow.execute_activity(cold_wait, 0.6,
                                                                  start_to_close_timeout=timedelta(seconds=10)))
            if self.changes != shown:
                shown = self.changes
                workflow.upsert_memo({"changes": shown})
            if not self.wake:
                await self.order.until(lambda: self.wake)
        await pumping

    async def pump(self) -> None:
        WakeOrder.enter(1)
        while True:
            await self.order.until(lambda: self.sent != self.version or self.done)
            if self.done:
                return
            version = self.version
            await self.order.settle(workflow.execute_activity(cold_sync, version,
                                                              start_to_close_timeout=timedelta(seconds=10)))
            self.sent = version

    @workflow.signal
    def start_work(self) -> None:
        self.work = self.wake = True
