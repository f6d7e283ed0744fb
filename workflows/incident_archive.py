"""The incident's archive record (a mixin of IncidentWorkflow): written at every milestone (declared,
acknowledged, severity and phase changes) so reports see open incidents too, and whole (state, timeline and all)
when it resolves, closes or is stood down, so nothing a user could read disappears with Temporal's retention.

A coroutine beside the run loop writes it (like the chat pump), so a slow database never delays the incident's
timers, search attributes or channel; the run waits for the last write before it ends."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.archive import ArchiveActivities
    from domain.archive.build import archived_from
    from domain.models.common import EventKind, Phase
    from workflows import options
    from workflows.incident_core import ARCHIVE, SYSTEM, IncidentCore, why
    from workflows.wake_order import WakeOrder

# archive (0.3): the incident writes its archive record at milestones. Histories from before it never did.
PATCH_ARCHIVE = "archive"
WHOLE = (Phase.resolved, Phase.postmortem, Phase.closed, Phase.stood_down)


class IncidentArchive(IncidentCore):
    _archive_task: asyncio.Future[None] | None = None
    _archive_stop: bool = False

    def _start_archiving(self) -> None:
        if self._patched(PATCH_ARCHIVE):
            self._archive_task = asyncio.ensure_future(self._archive_pump())

    async def _archive_pump(self) -> None:
        WakeOrder.enter(ARCHIVE)
        while True:
            await self._order.until(lambda: self._archive_due or self._archive_stop)
            if not self._archive_due:
                return
            self._archive_due = False
            await self._write_archive()

    async def _archive_drain(self) -> None:
        """The last write (the whole record, as it ended) is done before the run returns."""
        if self._archive_task is None:
            return
        self._archive_stop = True
        await self._order.settle(self._archive_task)

    async def _write_archive(self) -> None:
        s = self.s
        source = workflow.memo_value("source", None, type_hint=str)
        record = archived_from(s, source, workflow.now(), whole=s.phase in WHOLE)
        try:
            await self._order.settle(workflow.execute_activity_method(ArchiveActivities.archive_incident, record,
                                                   summary=f"Archive ({s.phase.value})", **options.ARCHIVE))
        except ActivityError as exc:
            self._event(EventKind.warning, SYSTEM, f"Not archived ({s.phase.value}): {why(exc)}")
            self._archive_due = False  # the warning is no milestone: the next one writes again
