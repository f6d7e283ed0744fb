"""Temporal Schedules that start HandoffWorkflow at every rotation's handoff time (one per layer)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleRange,
    ScheduleSpec,
)

from domain.config import IncidentflowConfig, Settings
from domain.models.handoff import HandoffInput
from domain.models.oncall import WEEKDAYS, Rotation
from workflows.handoff import HandoffWorkflow


def spec_for(rotation: Rotation) -> ScheduleSpec:
    """Handoffs at local wall-clock time in the rotation's timezone (Temporal follows DST for calendars)."""
    hour, minute = (int(p) for p in rotation.handoff_time.split(":"))
    if rotation.type == "custom" and (rotation.length_days or 1) > 1:
        # every N days is an interval (UTC-based); the calendar form cannot express "every 3rd day"
        return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(days=rotation.length_days or 1))])
    calendar = ScheduleCalendarSpec(hour=[ScheduleRange(hour)], minute=[ScheduleRange(minute)],
                                    second=[ScheduleRange(0)])
    if rotation.type == "weekly":  # Temporal counts days of the week from Sunday = 0
        calendar = ScheduleCalendarSpec(hour=calendar.hour, minute=calendar.minute, second=calendar.second,
                                        day_of_week=[ScheduleRange((WEEKDAYS.index(rotation.handoff_day) + 1) % 7)])
    return ScheduleSpec(calendars=[calendar], time_zone_name=rotation.timezone)


def handoff_schedules(settings: Settings, config: IncidentflowConfig) -> dict[str, Schedule]:
    """One Schedule per schedule layer, by schedule id (`handoff-<schedule>-<layer>`)."""
    wanted: dict[str, Schedule] = {}
    for schedule in config.schedules:
        for layer in schedule.layers:
            schedule_id = f"handoff-{schedule.name}-{layer.name}"
            wanted[schedule_id] = Schedule(
                action=ScheduleActionStartWorkflow(HandoffWorkflow.run, HandoffInput(schedule=schedule.name),
                                                   id=schedule_id, task_queue=settings.task_queue),
                spec=spec_for(layer.rotation))
    return wanted
