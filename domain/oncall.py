"""Who is on call, and who gets paged when: pure functions over the on-call config models.

No I/O and no clock: every function takes the instant (`at`, `after`, `start`) as a tz-aware datetime.
Handoffs happen at the rotation's local wall-clock time, so they move in UTC across DST changes; see
`domain.models.oncall` for the rule for times in a DST gap or fold.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from domain.models.common import Severity
from domain.models.oncall import (
    EscalationLevel,
    EscalationPolicy,
    PlanStep,
    ResolvedTarget,
    Rotation,
    Schedule,
    Target,
    localize,
)

__all__ = [
    "check_references", "escalation_plan", "handoff_at", "levels_for", "next_handoffs", "on_call",
    "resolve_targets", "rotation_holder", "who_is_on_call",
]

_EPS = timedelta(microseconds=1)


def _utc(at: datetime, what: str = "at") -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime")
    return at.astimezone(UTC)


def handoff_at(rotation: Rotation, k: int) -> datetime:
    """UTC instant of the rotation's k-th handoff (k=0 on the anchor date; negative k before it)."""
    day = rotation.anchor + timedelta(days=k * rotation.period_days)
    return localize(datetime.combine(day, rotation.handoff), rotation.tz)


def _shift(rotation: Rotation, at: datetime) -> int:
    """The k with handoff_at(k) <= at < handoff_at(k + 1)."""
    at = _utc(at)
    days = (at.astimezone(rotation.tz).date() - rotation.anchor).days
    k = days // rotation.period_days  # floor: extends the rotation backwards consistently
    while handoff_at(rotation, k) > at:
        k -= 1
    while handoff_at(rotation, k + 1) <= at:
        k += 1
    return k


def rotation_holder(rotation: Rotation, at: datetime) -> str:
    """Who the rotation alone (no overrides) puts on call at `at`."""
    return rotation.participants[_shift(rotation, at) % len(rotation.participants)]


def on_call(schedule: Schedule, layer: str, at: datetime) -> str | None:
    """Who holds `layer` of `schedule` at `at`: the last-listed override covering `at`, else the rotation.

    Raises KeyError for a layer the schedule does not have. (None is reserved for "nobody"; rotations
    always have a participant, so today a known layer always resolves to a person.)
    """
    rotation = schedule.layer(layer).rotation
    at = _utc(at)
    for override in reversed(schedule.overrides):
        if override.layer == layer:
            start, end = override.interval(rotation.tz)
            if start <= at < end:
                return override.person
    return rotation_holder(rotation, at)


def who_is_on_call(schedules: list[Schedule], at: datetime,
                   schedule: str | None = None) -> dict[str, dict[str, str | None]]:
    """schedule name -> layer name -> person, for every schedule (or just `schedule`; KeyError if unknown)."""
    chosen = [s for s in schedules if schedule is None or s.name == schedule]
    if schedule is not None and not chosen:
        raise KeyError(f"unknown schedule {schedule!r}")
    return {s.name: {layer.name: on_call(s, layer.name, at) for layer in s.layers} for s in chosen}


def _changes(schedule: Schedule, layer: str, after: datetime) -> Iterator[datetime]:
    """Instants after `after` at which the holder of `layer` may change, ascending."""
    rotation = schedule.layer(layer).rotation
    bounds = sorted({t for o in schedule.overrides if o.layer == layer
                     for t in o.interval(rotation.tz) if t > after})
    first = _shift(rotation, after) + 1
    # Unbounded unless the rotation is one person: past the last override, any len(participants)
    # consecutive handoffs include a change, so the caller's search for `count` changes ends.
    ks: Iterable[int] = itertools.count(first) if len(set(rotation.participants)) > 1 else ()
    yield from heapq.merge((handoff_at(rotation, k) for k in ks), bounds)


def next_handoffs(schedule: Schedule, after: datetime,
                  count: int) -> list[tuple[datetime, str, str | None, str | None]]:
    """The next `count` changes of who holds a layer, strictly after `after`, across all layers:
    (UTC instant, layer, outgoing, incoming), by time then layer order. Rotation handoffs and override
    starts/ends both count; a handoff that leaves the same person on call (an override spanning it,
    a single-person rotation) is not a change and is left out."""
    after = _utc(after, "after")
    found: list[tuple[datetime, int, str, str | None, str | None]] = []
    for index, layer in enumerate(schedule.layers):
        seen: set[datetime] = set()
        mine = 0
        for t in _changes(schedule, layer.name, after):
            if mine >= count:
                break
            if t in seen:
                continue
            seen.add(t)
            outgoing, incoming = on_call(schedule, layer.name, t - _EPS), on_call(schedule, layer.name, t)
            if outgoing != incoming:
                found.append((t, index, layer.name, outgoing, incoming))
                mine += 1
    found.sort(key=lambda f: (f[0], f[1]))
    return [(t, name, out, inc) for t, _, name, out, inc in found[:count]]


def resolve_targets(targets: Iterable[Target], schedules: list[Schedule], at: datetime) -> list[ResolvedTarget]:
    """People and channels to notify at `at`, first occurrence kept. A schedule target resolves to
    whoever holds the layer; an unknown schedule or layer, or a layer with nobody, resolves to nothing
    (`check_references` reports the former; callers log the gap)."""
    by_name = {s.name: s for s in schedules}
    out: list[ResolvedTarget] = []
    seen: set[tuple[str, str]] = set()
    for target in targets:
        resolved: ResolvedTarget | None = None
        if target.schedule:
            sched = by_name.get(target.schedule)
            layer = target.layer or "primary"
            if sched is not None and any(x.name == layer for x in sched.layers):
                person = on_call(sched, layer, at)
                if person:
                    resolved = ResolvedTarget(kind="person", id=person, via=target.describe())
        elif target.person:
            resolved = ResolvedTarget(kind="person", id=target.person, via=target.describe())
        elif target.channel:
            resolved = ResolvedTarget(kind="channel", id=target.channel, via=target.describe())
        if resolved is not None and (resolved.kind, resolved.id) not in seen:
            seen.add((resolved.kind, resolved.id))
            out.append(resolved)
    return out


def levels_for(policy: EscalationPolicy, severity: Severity | str | int | None) -> list[EscalationLevel]:
    """The policy's levels for `severity`: its by_severity variation if any, else the default levels."""
    if severity is None:
        return policy.levels
    sev = severity if isinstance(severity, Severity) else Severity.parse(severity)
    return policy.by_severity.get(sev) or policy.levels


def escalation_plan(policy: EscalationPolicy, severity: Severity | str | int | None, schedules: list[Schedule],
                    start: datetime, ack_after: timedelta | None = None) -> list[PlanStep]:
    """Who gets paged when, if nobody acknowledges (or until `ack_after` past `start`).

    Level 1 is paged at `start`, each next level `wait` after the previous one; after the last level's
    wait the next round starts at level 1, for 1 + repeat rounds; then the fallback targets (level 0).
    Targets are resolved at each step's own time. An acknowledgement at exactly a step's time stops
    that step (ack wins the tie).
    """
    start = _utc(start, "start")
    stop = start + ack_after if ack_after is not None else None
    levels = levels_for(policy, severity)
    rounds = 1 + policy.repeat
    steps: list[PlanStep] = []
    t = start

    def add(level: int, rnd: int, targets: list[Target], label: str) -> bool:
        if stop is not None and t >= stop:
            return False
        resolved = resolve_targets(targets, schedules, t)
        missing = [x.describe() for x in targets if x.schedule and not resolve_targets([x], schedules, t)]
        note = label + (f"; nobody resolved for {', '.join(missing)}" if missing else "")
        steps.append(PlanStep(at=t, level=level, round=rnd, targets=resolved, note=note))
        return True

    for rnd in range(1, rounds + 1):
        for number, level in enumerate(levels, 1):
            label = f"L{number}" + (f" {level.name}" if level.name else "") + f", round {rnd}/{rounds}"
            if not add(number, rnd, level.targets, label):
                return steps
            t += level.wait
    if policy.fallback:
        add(0, rounds, policy.fallback, f"fallback: {rounds} round(s) without acknowledgement")
    return steps


def _dupes(names: list[str]) -> list[str]:
    return sorted({n for n in names if names.count(n) > 1})


def check_references(schedules: list[Schedule], policies: list[EscalationPolicy],
                     people_ids: set[str]) -> list[str]:
    """Problems `incidentflow config check` should report: unknown people, schedules and layers,
    duplicate names. Empty when everything refers to something that exists."""
    problems = [f"duplicate schedule name {n!r}" for n in _dupes([s.name for s in schedules])]
    problems += [f"duplicate escalation policy name {n!r}" for n in _dupes([p.name for p in policies])]
    layers = {s.name: [x.name for x in s.layers] for s in schedules}
    for s in schedules:
        problems += [f"schedule {s.name!r}: duplicate layer name {n!r}" for n in _dupes(layers[s.name])]
        for layer in s.layers:
            for person in dict.fromkeys(layer.rotation.participants):
                if person not in people_ids:
                    problems.append(f"schedule {s.name!r} layer {layer.name!r}: unknown person {person!r} in rotation")
        for i, o in enumerate(s.overrides, 1):
            if o.person not in people_ids:
                problems.append(f"schedule {s.name!r} override {i}: unknown person {o.person!r}")
            if o.layer not in layers[s.name]:
                problems.append(f"schedule {s.name!r} override {i}: unknown layer {o.layer!r}")

    def targets(where: str, items: list[Target]) -> None:
        for i, t in enumerate(items, 1):
            at = f"{where} target {i}"
            if t.person and t.person not in people_ids:
                problems.append(f"{at}: unknown person {t.person!r}")
            elif t.schedule and t.schedule not in layers:
                problems.append(f"{at}: unknown schedule {t.schedule!r}")
            elif t.schedule and t.layer not in layers[t.schedule]:
                problems.append(f"{at}: schedule {t.schedule!r} has no layer {t.layer!r} "
                                f"(layers: {', '.join(layers[t.schedule])})")

    for p in policies:
        for n, level in enumerate(p.levels, 1):
            targets(f"escalation policy {p.name!r} level {n}", level.targets)
        for sev, variant in p.by_severity.items():
            for n, level in enumerate(variant, 1):
                targets(f"escalation policy {p.name!r} {sev.value} level {n}", level.targets)
        targets(f"escalation policy {p.name!r} fallback", p.fallback)
    return problems
