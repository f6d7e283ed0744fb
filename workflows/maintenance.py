"""MaintenanceWorkflow: the durable timers of one scheduled maintenance window.

Reminders before it, components under maintenance at its start, back at its end (which an extension moves);
each step is reported to the StatusPageWorkflow, which owns the page. Cancelled or completed early by a
person: the StatusPageWorkflow applies that step (a cancelled update; its components
still under maintenance back to operational) and
tells this workflow, which then ends without reporting anything more."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.statuspage.messages import (
        MAINTENANCE_DUE,
        MaintenanceChange,
        MaintenanceStart,
        MaintenanceStepInput,
    )
    from domain.statuspage.models import MaintenanceStatus, utc


@workflow.defn(name="MaintenanceWorkflow")
class MaintenanceWorkflow:
    @workflow.init
    def __init__(self, start: MaintenanceStart) -> None:
        self.id = start.maintenance.id
        self.page_id = start.page_id
        self.begin = start.maintenance.scheduled_for
        self.end = start.maintenance.scheduled_until
        self.cancelled = False
        self.moved = False
        self.reminded: list[int] = []

    @workflow.run
    async def run(self, start: MaintenanceStart) -> str:
        scheduled_at = workflow.now()
        for minutes in sorted(start.remind_before, reverse=True):
            if self.begin - timedelta(minutes=minutes) <= scheduled_at:
                continue  # already that close when announced: the announcement says it
            if await self._sleep_until(self._before(minutes)):
                return "cancelled"
            if workflow.now() < self.begin:  # the page records the reminder, and mails its subscribers
                self.reminded.append(minutes)
                left = self.begin - workflow.now()
                when = f"{left.total_seconds() / 3600:.0f} h" if left >= timedelta(hours=2) else \
                    f"{left.total_seconds() / 60:.0f} min"
                await self._report(MaintenanceStatus.scheduled,
                                   f"Reminder: this maintenance starts in {when}, at {utc(self.begin):%Y-%m-%d %H:%M} UTC.")
        if await self._sleep_until(lambda: self.begin):
            return "cancelled"
        await self._report(MaintenanceStatus.in_progress, "The scheduled maintenance has started.")
        if await self._sleep_until(lambda: self.end):  # an extension moves it
            return "ended early"
        await self._report(MaintenanceStatus.completed, "The scheduled maintenance is complete.")
        return "completed"

    @workflow.signal
    def change(self, change: MaintenanceChange) -> None:
        if change.cancel:
            self.cancelled = True
        if change.until is not None:
            self.end = change.until
        self.moved = True

    @workflow.query
    def window(self) -> tuple[datetime, datetime, bool]:
        return self.begin, self.end, self.cancelled

    def _before(self, minutes: int) -> Callable[[], datetime]:
        return lambda: self.begin - timedelta(minutes=minutes)

    async def _sleep_until(self, at: Callable[[], datetime]) -> bool:
        """Wait until `at()`, which a change may move; True when cancelled meanwhile."""
        while not self.cancelled:
            left = at() - workflow.now()
            if left <= timedelta(0):
                return False
            self.moved = False
            try:
                await workflow.wait_condition(lambda: self.cancelled or self.moved, timeout=left,
                                              timeout_summary=f"maintenance {self.id}")
            except TimeoutError:
                pass  # due, unless it moved meanwhile: the loop checks again
        return True

    async def _report(self, status: MaintenanceStatus, body: str) -> None:
        page = workflow.get_external_workflow_handle(self.page_id)
        await page.signal(MAINTENANCE_DUE, MaintenanceStepInput(maintenance_id=self.id, status=status, body=body))
