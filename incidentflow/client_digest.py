"""The weekly review of open and overdue action items: its Temporal Schedule (`action_items.digest` in the
config: day, time, time zone) and running it now. A mixin of `incidentflow.client.Incidents` (via ActionItems)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.action_items import DigestSent
from domain.postmortem.config import WEEKDAYS
from incidentflow.client_base import Door
from workflows.action_digest import ActionDigestWorkflow

DIGEST_SCHEDULE = "action-items-digest"


def digest_schedule(settings: Any, config: Any) -> Schedule:
    """The weekly review: `action_items.digest` day and time, in its time zone (Temporal follows DST)."""
    d = config.action_items.digest
    calendar = ScheduleCalendarSpec(
        hour=[ScheduleRange(d.time.hour)], minute=[ScheduleRange(d.time.minute)], second=[ScheduleRange(0)],
        day_of_week=[ScheduleRange((WEEKDAYS.index(d.day) + 1) % 7)])  # Temporal: Sunday = 0
    return Schedule(action=ScheduleActionStartWorkflow(ActionDigestWorkflow.run, id=DIGEST_SCHEDULE,
                                                       task_queue=settings.task_queue),
                    spec=ScheduleSpec(calendars=[calendar], time_zone_name=d.timezone))


class Digests(Door):
    async def setup_digest(self) -> str | None:
        """Create, update or (when disabled) delete the digest's Schedule; its id, or None. Idempotent."""
        handle = self.client.get_schedule_handle(DIGEST_SCHEDULE)
        if not self.config.action_items.digest.enabled:
            try:
                await handle.delete()
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
            return None
        wanted = digest_schedule(self.settings, self.config)
        try:
            await self.client.create_schedule(DIGEST_SCHEDULE, wanted)
        except ScheduleAlreadyRunningError:
            async def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=wanted)
            await handle.update(replace)
        return DIGEST_SCHEDULE

    async def run_digest(self) -> DigestSent:
        """Send the review now (what the schedule does each week)."""
        return await self.client.execute_workflow(
            ActionDigestWorkflow.run, id=f"{DIGEST_SCHEDULE}-manual-{datetime.now(UTC):%Y%m%d%H%M%S%f}",
            task_queue=self.settings.task_queue)
