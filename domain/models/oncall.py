"""On-call schedules and escalation policies: the YAML config models (validated, no behaviour).

Wall-clock rule (used for handoffs and for naive override times): a local date + time becomes the
*first instant at which the local clock reads that time or later*. So a time inside a spring-forward gap
(01:30 Europe/London on 2026-03-29) happens at the end of the gap (02:00 BST = 01:00 UTC), and an
ambiguous time in the fall-back hour (01:30 on 2026-10-25) happens at its first occurrence (BST).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from domain.models.base import Duration, SeverityKey, _Strict

NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[str, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`, or ValueError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {name!r}: use an IANA name such as Europe/London or UTC") from None


def localize(wall: datetime, tz: tzinfo) -> datetime:
    """Naive local `wall` time in `tz` -> the aware UTC instant, by the module's wall-clock rule."""
    first = wall.replace(tzinfo=tz, fold=0)
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall:
        return first.astimezone(UTC)  # exists (fold=0 is the first of two, if ambiguous)
    # In a gap: the clock jumps between the fold=1 reading (earlier) and the fold=0 reading (later).
    ends = sorted(int(wall.replace(tzinfo=tz, fold=f).timestamp()) for f in (0, 1))
    lo, hi = ends[0] - 1, ends[1] + 1
    while hi - lo > 1:  # first whole second whose local clock reads >= wall
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)

class Rotation(_Strict):
    """Participants take turns; each shift starts at `handoff_time` local time in `timezone`.

    daily: every day; weekly: every 7 days on `handoff_day`; custom: every `length_days` days.
    The first shift (participants[0]) starts on `start` (weekly: the first `handoff_day` on or after
    `start`); the rotation extends forwards and backwards from there.
    """

    type: Literal["daily", "weekly", "custom"] = "weekly"
    length_days: int | None = Field(None, ge=1, le=366)
    participants: list[str] = Field(..., min_length=1)
    handoff_time: str = "09:00"
    handoff_day: Weekday = "monday"
    timezone: str = "UTC"
    start: date = date(2026, 1, 5)

    @field_validator("handoff_time", mode="before")
    @classmethod
    def _hhmm(cls, v: Any) -> str:
        # YAML 1.1 reads an unquoted 10:30 as the base-60 integer 630; 09:00 stays a string.
        if isinstance(v, int) and not isinstance(v, bool) and 60 <= v < 24 * 60:
            v = f"{v // 60:02d}:{v % 60:02d}"
        elif isinstance(v, time):
            v = v.strftime("%H:%M")
        match = _HHMM.match(str(v).strip())
        if not match:
            raise ValueError(f"invalid handoff_time {v!r}: use HH:MM (24-hour), e.g. '09:00'")
        return f"{int(match.group(1)):02d}:{match.group(2)}"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        zone(v)
        return v

    @model_validator(mode="after")
    def _length(self) -> Rotation:
        if self.type == "custom" and self.length_days is None:
            raise ValueError("a custom rotation needs length_days")
        if self.type != "custom" and self.length_days is not None:
            raise ValueError(f"length_days is only for custom rotations (a {self.type} rotation has a fixed length)")
        return self

    @property
    def period_days(self) -> int:
        return {"daily": 1, "weekly": 7}.get(self.type) or self.length_days or 1

    @property
    def anchor(self) -> date:
        """Local date of the first handoff (participants[0] starts then)."""
        if self.type != "weekly":
            return self.start
        return self.start + timedelta(days=(WEEKDAYS.index(self.handoff_day) - self.start.weekday()) % 7)

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)

    @property
    def handoff(self) -> time:
        hours, minutes = self.handoff_time.split(":")
        return time(int(hours), int(minutes))


class Override(_Strict):
    """`person` holds `layer` (default "primary") from `start` (inclusive) to `end` (exclusive).

    Naive datetimes are local time in that layer's rotation timezone (wall-clock rule above); give an
    offset (2026-03-01T09:00:00Z, +01:00) to pin an exact instant. A later-listed override wins overlaps.
    """

    person: str
    start: datetime
    end: datetime
    layer: str = "primary"
    reason: str | None = None

    @model_validator(mode="after")
    def _order(self) -> Override:
        if (self.start.tzinfo is None) == (self.end.tzinfo is None) and self.end <= self.start:
            raise ValueError("override end must be after start")
        return self

    def interval(self, tz: tzinfo) -> tuple[datetime, datetime]:
        """[start, end) as UTC instants, naive times read in `tz`."""
        def at(v: datetime) -> datetime:
            return localize(v, tz) if v.tzinfo is None else v.astimezone(UTC)
        return at(self.start), at(self.end)


class Layer(_Strict):
    name: str = Field(..., pattern=NAME, max_length=63)
    rotation: Rotation


class Schedule(_Strict):
    name: str = Field(..., pattern=NAME, max_length=63)
    description: str = ""
    layers: list[Layer] = Field(..., min_length=1)
    overrides: list[Override] = Field(default_factory=list)

    @model_validator(mode="after")
    def _layers(self) -> Schedule:
        names = [layer.name for layer in self.layers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate layer names: {', '.join(dupes)}")
        for i, o in enumerate(self.overrides):
            if o.layer not in names:
                raise ValueError(f"overrides[{i}]: unknown layer {o.layer!r} (layers: {', '.join(names)})")
            start, end = o.interval(self.layer(o.layer).rotation.tz)
            if end <= start:
                raise ValueError(f"overrides[{i}]: end must be after start")
        return self

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"schedule {self.name!r} has no layer {name!r}")


class Target(_Strict):
    """Exactly one of: a schedule layer (`schedule` + `layer`, default primary), a `person`, a `channel`."""

    schedule: str | None = None
    layer: str | None = None
    person: str | None = None
    channel: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Target:
        kinds = [k for k in ("schedule", "person", "channel") if getattr(self, k)]
        if len(kinds) != 1:
            raise ValueError("a target is exactly one of {schedule: NAME, layer: LAYER}, {person: ID}, {channel: NAME}")
        if self.layer is not None and not self.schedule:
            raise ValueError("layer is only for schedule targets")
        if self.schedule and self.layer is None:
            self.layer = "primary"
        return self

    def describe(self) -> str:
        if self.schedule:
            return f"{self.layer} of {self.schedule}"
        if self.person:
            return f"person {self.person}"
        return f"channel {self.channel}"


class EscalationLevel(_Strict):
    name: str | None = None
    targets: list[Target] = Field(..., min_length=1)
    wait: Duration = timedelta(minutes=15)  # before the next level (or round) is paged

    @field_validator("wait")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError("wait must be positive")
        return v


class EscalationPolicy(_Strict):
    """Levels are paged in order, each `wait` after the previous; the whole list runs 1 + `repeat`
    times; then `fallback` is notified. `by_severity` replaces the levels for the severities it names."""

    name: str = Field(..., pattern=NAME, max_length=63)
    description: str = ""
    levels: list[EscalationLevel] = Field(..., min_length=1)
    repeat: int = Field(0, ge=0, le=10)
    fallback: list[Target] = Field(default_factory=list)
    by_severity: dict[SeverityKey, list[EscalationLevel]] = Field(default_factory=dict)

    @field_validator("by_severity")
    @classmethod
    def _non_empty(cls, v: dict[Any, list[EscalationLevel]]) -> dict[Any, list[EscalationLevel]]:
        for sev, levels in v.items():
            if not levels:
                raise ValueError(f"by_severity {getattr(sev, 'value', sev)}: needs at least one level")
        return v


class ResolvedTarget(_Strict):
    kind: Literal["person", "channel"]
    id: str
    via: str  # e.g. "primary of checkout-oncall", "person alice", "channel incidents"


class PlanStep(_Strict):
    at: datetime  # UTC
    level: int  # 1-based; 0 = the fallback step
    round: int  # 1-based; 1 + policy.repeat rounds in all
    targets: list[ResolvedTarget]
    note: str = ""


def default_escalation_policy(schedule: str | None, team_lead: str | None, manager: str | None,
                              vp: str | None, name: str = "default") -> EscalationPolicy:
    """DOMAIN tiers: on-call engineer (15m) -> team lead (30m) -> eng manager (1h) -> VP eng (2h).

    Tiers given as None are left out; at least one is needed.
    """
    tiers: list[tuple[str, Target | None, timedelta]] = [
        ("on-call engineer", Target(schedule=schedule, layer="primary") if schedule else None, timedelta(minutes=15)),
        ("team lead", Target(person=team_lead) if team_lead else None, timedelta(minutes=30)),
        ("engineering manager", Target(person=manager) if manager else None, timedelta(hours=1)),
        ("VP engineering", Target(person=vp) if vp else None, timedelta(hours=2)),
    ]
    levels = [EscalationLevel(name=n, targets=[t], wait=w) for n, t, w in tiers if t is not None]
    if not levels:
        raise ValueError("a default escalation policy needs a schedule or at least one person")
    return EscalationPolicy(name=name, levels=levels)
