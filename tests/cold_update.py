"""The smallest workflow that shows a Temporal SDK defect incidentflow's incidents meet (tests/test_cold_update.py):
two coroutines that each issue a command when an update changes the state, as an incident's run loop (search
attributes) and chat pump (`sync_chat`) do."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def cold_sync(n: int) -> int:
    return n


@workflow.defn
class ColdUpdateWorkflow:
    def __init__(self) -> None:
        self.wake = False
        self.version = self.sent = self.changes = 0
        self.done = False

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
