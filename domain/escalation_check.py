"""Escalation levels that reach nobody new: a config smell no field validation can see.

A level exists to widen the circle. When, at some moment, it resolves only to people an earlier level of
the same policy already pages (the primary and the secondary layer both held by dan), or to nobody at
all, its `wait` passes with the same person paged twice and nobody else woken. Pure: callers pass the
instant to start from; on-call only changes at handoffs and override bounds, so those are the moments
checked.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from domain.models.oncall import EscalationLevel, EscalationPolicy, Schedule
from domain.oncall import next_handoffs, resolve_targets


def moments(schedules: list[Schedule], start: datetime, days: int) -> list[datetime]:
    """`start` and every instant in the following `days` at which someone's on-call layer changes hands."""
    end = start + timedelta(days=days)
    found = {start}
    for schedule in schedules:
        shortest = min(layer.rotation.period_days for layer in schedule.layers)
        count = len(schedule.layers) * (math.ceil(days / shortest) + 1) + 2 * len(schedule.overrides)
        found |= {t for t, *_ in next_handoffs(schedule, start, count) if t < end}
    return sorted(found)


def levels_adding_nobody(schedules: list[Schedule], policies: list[EscalationPolicy], start: datetime,
                         days: int = 366) -> list[str]:
    """One line per policy level that, at some moment in `days` from `start`, pages nobody that the
    earlier levels do not already page; empty when every level always reaches someone new."""
    problems: dict[tuple[str, str, int], str] = {}
    checked = moments(schedules, start, days)
    for policy in policies:
        for variant, levels in _variants(policy):
            for at in checked:
                for number, who in _idle(levels, schedules, at):
                    key = (policy.name, variant, number)
                    if key not in problems:
                        problems[key] = (f"escalation policy {policy.name!r}{variant} level {number} pages nobody "
                                         f"new at {at:%Y-%m-%d %H:%M} UTC: {who}")
    return list(problems.values())


def _variants(policy: EscalationPolicy) -> list[tuple[str, list[EscalationLevel]]]:
    return [("", policy.levels), *((f" {sev.value}", levels) for sev, levels in policy.by_severity.items())]


def _idle(levels: list[EscalationLevel], schedules: list[Schedule], at: datetime) -> list[tuple[int, str]]:
    """(level number, why) for each level that adds nobody at `at`."""
    paged: set[tuple[str, str]] = set()
    idle: list[tuple[int, str]] = []
    for number, level in enumerate(levels, 1):
        reached = {(r.kind, r.id) for r in resolve_targets(level.targets, schedules, at)}
        if not reached:
            idle.append((number, "it resolves to nobody"))
        elif reached <= paged:
            names = ", ".join(sorted(i for _, i in reached))
            idle.append((number, f"only {names}, already paged by an earlier level"))
        paged |= reached
    return idle
