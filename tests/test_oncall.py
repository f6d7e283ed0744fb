"""On-call schedules and escalation policies: rotations across DST, overrides, targets, escalation plans.

Expected instants are worked out by hand in the comments (UK: GMT=UTC+0 / BST=UTC+1, clocks forward
2026-03-29 01:00 UTC, back 2026-10-25 01:00 UTC; US Eastern: EST=UTC-5 / EDT=UTC-4, forward 2026-03-08
07:00 UTC, back 2026-11-01 06:00 UTC).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.models.common import Severity
from domain.models.oncall import (
    EscalationPolicy,
    Override,
    ResolvedTarget,
    Rotation,
    Schedule,
    Target,
    default_escalation_policy,
)
from domain.oncall import (
    check_references,
    escalation_plan,
    levels_for,
    next_handoffs,
    on_call,
    resolve_targets,
    who_is_on_call,
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def sched(name: str = "ops", overrides: list[dict[str, Any]] | None = None, **layers: dict[str, Any]) -> Schedule:
    return Schedule.model_validate({"name": name, "overrides": overrides or [],
                                    "layers": [{"name": k, "rotation": v} for k, v in layers.items()]})


def holder(s: Schedule, at: datetime, layer: str = "primary") -> str | None:
    return on_call(s, layer, at)


# ---------------------------------------------------------------- rotations in UTC

def test_weekly_defaults_hand_off_monday_0900_utc() -> None:
    s = sched(primary={"participants": ["alice", "bob", "carol"]})  # anchor Mon 2026-01-05
    assert holder(s, utc(2026, 1, 5, 9)) == "alice"
    assert holder(s, utc(2026, 1, 12, 8, 59, 59)) == "alice"
    assert holder(s, utc(2026, 1, 12, 9)) == "bob"
    assert holder(s, utc(2026, 1, 18, 23)) == "bob"      # Sunday night: still bob
    assert holder(s, utc(2026, 1, 19, 9)) == "carol"
    assert holder(s, utc(2026, 1, 26, 9)) == "alice"     # wraps around
    assert holder(s, utc(2026, 1, 5, 8, 59)) == "carol"  # before the anchor: the previous shift
    assert holder(s, utc(2025, 12, 22, 9)) == "bob"      # three weeks back: k=-2 -> index 1
    # an aware `at` in another zone is the same instant
    assert holder(s, datetime(2026, 1, 12, 10, 0, tzinfo=ZoneInfo("Europe/Berlin"))) == "bob"


def test_weekly_on_another_day_anchors_on_the_first_such_day() -> None:
    s = sched(primary={"participants": ["a", "b"], "handoff_day": "friday", "handoff_time": "17:30"})
    # start Mon 2026-01-05 -> first handoff Fri 2026-01-09 17:30 UTC to "a"
    assert holder(s, utc(2026, 1, 9, 17, 29)) == "b"
    assert holder(s, utc(2026, 1, 9, 17, 30)) == "a"
    assert holder(s, utc(2026, 1, 16, 17, 30)) == "b"


def test_daily_rotation() -> None:
    s = sched(primary={"type": "daily", "participants": ["a", "b", "c"], "start": "2026-02-01",
                       "handoff_time": "08:00"})
    assert [holder(s, utc(2026, 2, d, 12)) for d in range(1, 6)] == ["a", "b", "c", "a", "b"]
    assert holder(s, utc(2026, 2, 2, 7, 59)) == "a"
    assert holder(s, utc(2026, 2, 2, 8, 0)) == "b"
    assert holder(s, utc(2026, 1, 31, 12)) == "c"  # backwards


def test_custom_three_day_rotation() -> None:
    s = sched(primary={"type": "custom", "length_days": 3, "participants": ["a", "b", "c"],
                       "start": "2026-01-01"})
    # shifts start Jan 1 (a), Jan 4 (b), Jan 7 (c), Jan 10 (a); backwards Dec 29 (c), Dec 26 (b)
    assert holder(s, utc(2026, 1, 3, 23)) == "a"
    assert holder(s, utc(2026, 1, 4, 8, 59)) == "a"
    assert holder(s, utc(2026, 1, 4, 9)) == "b"
    assert holder(s, utc(2026, 1, 9, 12)) == "c"
    assert holder(s, utc(2026, 1, 10, 9)) == "a"
    assert holder(s, utc(2025, 12, 31, 12)) == "c"
    assert holder(s, utc(2025, 12, 28, 12)) == "b"


# ---------------------------------------------------------------- across daylight saving

LONDON = {"participants": ["alice", "bob"], "timezone": "Europe/London"}  # weekly Mon 09:00 local


def test_london_weekly_spring_forward() -> None:
    s = sched(primary=LONDON)
    # Mon 2026-03-23 (GMT): handoff 09:00 UTC, shift 11 -> bob
    assert holder(s, utc(2026, 3, 23, 8, 59)) == "alice"
    assert holder(s, utc(2026, 3, 23, 9, 0)) == "bob"
    # Mon 2026-03-30 (BST): 09:00 local = 08:00 UTC, shift 12 -> alice
    assert holder(s, utc(2026, 3, 30, 7, 59)) == "bob"
    assert holder(s, utc(2026, 3, 30, 8, 0)) == "alice"


def test_london_weekly_fall_back() -> None:
    s = sched(primary=LONDON)
    # Mon 2026-10-19 (BST): 08:00 UTC, shift 41 -> bob; Mon 2026-10-26 (GMT): 09:00 UTC, shift 42 -> alice
    assert holder(s, utc(2026, 10, 19, 7, 59)) == "alice"
    assert holder(s, utc(2026, 10, 19, 8, 0)) == "bob"
    assert holder(s, utc(2026, 10, 26, 8, 30)) == "bob"
    assert holder(s, utc(2026, 10, 26, 9, 0)) == "alice"


def test_london_daily_on_the_change_days() -> None:
    s = sched(primary={"type": "daily", "participants": ["a", "b", "c"], "timezone": "Europe/London",
                       "start": "2026-03-27"})
    assert holder(s, utc(2026, 3, 28, 8, 59)) == "a"  # Sat (GMT) handoff 09:00 UTC
    assert holder(s, utc(2026, 3, 28, 9, 0)) == "b"
    assert holder(s, utc(2026, 3, 29, 7, 59)) == "b"  # Sun: BST since 01:00 UTC, handoff 08:00 UTC
    assert holder(s, utc(2026, 3, 29, 8, 0)) == "c"


def test_new_york_across_both_changes() -> None:
    weekly = sched(primary={"participants": ["x", "y"], "timezone": "America/New_York"})
    # Mon 2026-03-02 (EST) 14:00 UTC shift 8 -> x; Mon 2026-03-09 (EDT) 13:00 UTC shift 9 -> y
    assert holder(weekly, utc(2026, 3, 2, 13, 59)) == "y"
    assert holder(weekly, utc(2026, 3, 2, 14, 0)) == "x"
    assert holder(weekly, utc(2026, 3, 9, 12, 59)) == "x"
    assert holder(weekly, utc(2026, 3, 9, 13, 0)) == "y"
    # Mon 2026-10-26 (EDT) 13:00 UTC shift 42 -> x; Mon 2026-11-02 (EST) 14:00 UTC shift 43 -> y
    assert holder(weekly, utc(2026, 10, 26, 13, 0)) == "x"
    assert holder(weekly, utc(2026, 11, 2, 13, 30)) == "x"
    assert holder(weekly, utc(2026, 11, 2, 14, 0)) == "y"
    daily = sched(primary={"type": "daily", "participants": ["x", "y"], "timezone": "America/New_York",
                           "start": "2026-03-07"})
    assert holder(daily, utc(2026, 3, 7, 14, 0)) == "x"   # Sat EST
    assert holder(daily, utc(2026, 3, 8, 12, 59)) == "x"  # Sun EDT: handoff 13:00 UTC
    assert holder(daily, utc(2026, 3, 8, 13, 0)) == "y"


def test_handoff_in_the_skipped_hour_happens_when_the_clocks_jump() -> None:
    s = sched(primary={"type": "daily", "participants": ["a", "b"], "timezone": "Europe/London",
                       "start": "2026-03-28", "handoff_time": "01:30"})
    assert holder(s, utc(2026, 3, 28, 1, 30)) == "a"    # GMT 01:30 = 01:30 UTC
    # 2026-03-29 01:30 local does not exist; the clock goes 00:59:59 GMT -> 02:00 BST at 01:00 UTC
    assert holder(s, utc(2026, 3, 29, 0, 59, 59)) == "a"
    assert holder(s, utc(2026, 3, 29, 1, 0)) == "b"
    assert holder(s, utc(2026, 3, 30, 0, 29)) == "b"    # BST 01:30 = 00:30 UTC
    assert holder(s, utc(2026, 3, 30, 0, 30)) == "a"
    assert next_handoffs(s, utc(2026, 3, 28, 12), 1) == [(utc(2026, 3, 29, 1, 0), "primary", "a", "b")]


def test_handoff_in_the_repeated_hour_happens_the_first_time() -> None:
    s = sched(primary={"type": "daily", "participants": ["a", "b"], "timezone": "Europe/London",
                       "start": "2026-10-24", "handoff_time": "01:30"})
    # 2026-10-25 01:30 happens at 00:30 UTC (BST) and 01:30 UTC (GMT): the first one counts
    assert holder(s, utc(2026, 10, 25, 0, 29)) == "a"
    assert holder(s, utc(2026, 10, 25, 0, 30)) == "b"
    assert holder(s, utc(2026, 10, 25, 1, 45)) == "b"   # the second 01:30 is no handoff
    assert holder(s, utc(2026, 10, 26, 1, 29)) == "b"   # GMT 01:30 = 01:30 UTC
    assert holder(s, utc(2026, 10, 26, 1, 30)) == "a"


@settings(max_examples=60, deadline=None)
@given(tz=st.sampled_from(["UTC", "Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"]),
       kind=st.sampled_from(["daily", "weekly", "custom"]),
       hhmm=st.sampled_from(["00:00", "01:30", "02:15", "09:00", "23:59"]),
       offset=st.integers(min_value=-800, max_value=800))
def test_every_handoff_is_at_the_local_time_and_swaps_holders(tz: str, kind: str, hhmm: str, offset: int) -> None:
    rotation: dict[str, Any] = {"type": kind, "participants": ["a", "b", "c"], "timezone": tz, "handoff_time": hhmm}
    if kind == "custom":
        rotation["length_days"] = 2
    s = sched(primary=rotation)
    after = utc(2026, 1, 5) + timedelta(days=offset)
    order = {"a": "b", "b": "c", "c": "a"}
    previous = after
    for t, layer, out, inc in next_handoffs(s, after, 4):
        assert t > previous and t.tzinfo == UTC and layer == "primary"
        assert out is not None and inc == order[out]
        assert holder(s, t - timedelta(seconds=1)) == out and holder(s, t) == inc
        local = t.astimezone(ZoneInfo(tz))
        # on the local wall clock, at the handoff time, or (DST gap) the end of the gap just after it
        if local.strftime("%H:%M") != hhmm:
            wall = datetime.combine(local.date(), datetime.strptime(hhmm, "%H:%M").time())
            assert local.replace(tzinfo=None) > wall > (t - timedelta(seconds=1)).astimezone(ZoneInfo(tz)).replace(tzinfo=None)
        previous = t


# ---------------------------------------------------------------- overrides and layers

TWO_LAYERS: dict[str, Any] = {"primary": {"participants": ["a", "b"]},
                              "secondary": {"participants": ["c", "d"], "handoff_time": "12:00"}}


def test_secondary_layer_and_who_is_on_call() -> None:
    s = sched(**TWO_LAYERS)
    other = sched("db", primary={"type": "daily", "participants": ["e", "f"], "start": "2026-01-01"})
    at = utc(2026, 1, 12, 10)  # primary handed off 09:00 to b; secondary hands off at 12:00, still c
    assert who_is_on_call([s, other], at) == {"ops": {"primary": "b", "secondary": "c"}, "db": {"primary": "f"}}
    assert who_is_on_call([s, other], utc(2026, 1, 12, 12), "ops") == {"ops": {"primary": "b", "secondary": "d"}}
    with pytest.raises(KeyError):
        who_is_on_call([s], at, "nope")
    with pytest.raises(KeyError):
        on_call(s, "tertiary", at)
    with pytest.raises(ValueError, match="timezone-aware"):
        on_call(s, "primary", datetime(2026, 1, 12, 10))


def test_overrides_cover_partially_overlap_and_stay_on_their_layer() -> None:
    s = sched(overrides=[
        {"person": "zoe", "start": "2026-01-13T12:00:00Z", "end": "2026-01-14T12:00:00Z"},
        {"person": "yan", "start": "2026-01-14T00:00:00Z", "end": "2026-01-14T06:00:00Z"},  # later wins
        {"person": "xia", "layer": "secondary", "start": "2026-01-13T00:00:00Z", "end": "2026-01-20T00:00:00Z"},
    ], **TWO_LAYERS)
    assert holder(s, utc(2026, 1, 13, 11, 59)) == "b"           # before: the rotation
    assert holder(s, utc(2026, 1, 13, 12)) == "zoe"             # start inclusive
    assert holder(s, utc(2026, 1, 14, 0)) == "yan"              # overlap: latest-defined wins
    assert holder(s, utc(2026, 1, 14, 6)) == "zoe"              # yan ended, zoe still covers
    assert holder(s, utc(2026, 1, 14, 12)) == "b"               # end exclusive
    assert holder(s, utc(2026, 1, 15), "secondary") == "xia"     # layer-specific
    assert holder(s, utc(2026, 1, 20), "secondary") == "c"       # Jan 19 12:00 handoff: shift 2 -> c
    assert next_handoffs(s, utc(2026, 1, 13), 6) == [
        (utc(2026, 1, 13, 12), "primary", "b", "zoe"),
        (utc(2026, 1, 14, 0), "primary", "zoe", "yan"),
        (utc(2026, 1, 14, 6), "primary", "yan", "zoe"),
        (utc(2026, 1, 14, 12), "primary", "zoe", "b"),
        (utc(2026, 1, 19, 9), "primary", "b", "a"),
        (utc(2026, 1, 20), "secondary", "xia", "c"),  # the Jan 19 12:00 handoff is hidden by xia
    ]


def test_naive_override_times_are_local_to_the_layer() -> None:
    s = sched(overrides=[{"person": "zoe", "start": "2026-07-01 09:00", "end": "2026-07-01 17:00"}],
              primary={"participants": ["a"], "timezone": "Europe/London"})
    assert holder(s, utc(2026, 7, 1, 7, 59)) == "a"   # 09:00 BST = 08:00 UTC
    assert holder(s, utc(2026, 7, 1, 8, 0)) == "zoe"
    assert holder(s, utc(2026, 7, 1, 16, 0)) == "a"
    # a one-person rotation only changes at override edges
    assert next_handoffs(s, utc(2026, 6, 1), 5) == [(utc(2026, 7, 1, 8), "primary", "a", "zoe"),
                                                    (utc(2026, 7, 1, 16), "primary", "zoe", "a")]


def test_next_handoffs_across_layers_and_dst() -> None:
    s = sched(primary=LONDON, secondary={"participants": ["c", "d"], "timezone": "Europe/London",
                                         "handoff_time": "10:00"})
    assert next_handoffs(s, utc(2026, 3, 23), 4) == [
        (utc(2026, 3, 23, 9), "primary", "alice", "bob"),
        (utc(2026, 3, 23, 10), "secondary", "c", "d"),
        (utc(2026, 3, 30, 8), "primary", "bob", "alice"),
        (utc(2026, 3, 30, 9), "secondary", "d", "c"),
    ]
    assert next_handoffs(s, utc(2026, 3, 23, 9), 1) == [(utc(2026, 3, 23, 10), "secondary", "c", "d")]  # strictly after


# ---------------------------------------------------------------- validation

@pytest.mark.parametrize("rotation, message", [
    ({"participants": []}, "at least 1"),
    ({"participants": ["a"], "type": "custom"}, "needs length_days"),
    ({"participants": ["a"], "type": "weekly", "length_days": 7}, "only for custom"),
    ({"participants": ["a"], "timezone": "Mars/Olympus"}, "unknown timezone"),
    ({"participants": ["a"], "handoff_time": "25:00"}, "HH:MM"),
    ({"participants": ["a"], "handoff_time": 9}, "HH:MM"),
    ({"participants": ["a"], "handoff_day": "funday"}, "monday"),
])
def test_rotation_validation(rotation: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Rotation.model_validate(rotation)


def test_schedule_target_and_policy_validation() -> None:
    assert Rotation.model_validate(yaml.safe_load("{participants: [a], handoff_time: 10:30}")).handoff_time == "10:30"
    with pytest.raises(ValidationError, match="duplicate layer"):
        Schedule.model_validate({"name": "s", "layers": [{"name": "p", "rotation": {"participants": ["a"]}}] * 2})
    with pytest.raises(ValidationError, match="unknown layer 'primary'"):
        sched(overrides=[{"person": "z", "start": "2026-01-01T00:00Z", "end": "2026-01-02T00:00Z"}],
              main={"participants": ["a"]})
    with pytest.raises(ValidationError, match="end must be after start"):
        Override(person="z", start=utc(2026, 1, 2), end=utc(2026, 1, 1))
    for bad in ({}, {"person": "a", "channel": "c"}, {"person": "a", "layer": "primary"}):
        with pytest.raises(ValidationError, match="exactly one|only for schedule"):
            Target.model_validate(bad)
    assert Target(schedule="ops").describe() == "primary of ops"
    assert Target(schedule="ops", layer="secondary").describe() == "secondary of ops"
    with pytest.raises(ValidationError):
        EscalationPolicy.model_validate({"name": "p", "levels": [{"targets": [{"person": "a"}]}], "repeat": 11})
    with pytest.raises(ValidationError, match="positive"):
        EscalationPolicy.model_validate({"name": "p", "levels": [{"targets": [{"person": "a"}], "wait": 0}]})
    with pytest.raises(ValidationError, match="unknown severity"):
        EscalationPolicy.model_validate({"name": "p", "levels": [{"targets": [{"person": "a"}]}],
                                         "by_severity": {"SEV9": [{"targets": [{"person": "a"}]}]}})


# ---------------------------------------------------------------- targets and escalation

def test_resolve_targets_dedups_and_skips_unresolvable() -> None:
    s = sched(**TWO_LAYERS)
    targets = [Target(schedule="ops"), Target(person="b"), Target(channel="incidents"),
               Target(schedule="ops", layer="secondary"), Target(channel="incidents"),
               Target(schedule="ghost"), Target(schedule="ops", layer="tertiary")]
    assert resolve_targets(targets, [s], utc(2026, 1, 12, 10)) == [
        ResolvedTarget(kind="person", id="b", via="primary of ops"),
        ResolvedTarget(kind="channel", id="incidents", via="channel incidents"),
        ResolvedTarget(kind="person", id="c", via="secondary of ops"),
    ]


def four_levels(**extra: Any) -> EscalationPolicy:
    policy = default_escalation_policy("ops", "lead", "mgr", "vp")
    return policy.model_copy(update={"repeat": 1, "fallback": [Target(channel="eng-leads")], **extra})


def test_default_policy_matches_the_domain_tiers() -> None:
    p = default_escalation_policy("ops", "lead", "mgr", "vp")
    assert [(lv.name, lv.targets[0].describe(), lv.wait) for lv in p.levels] == [
        ("on-call engineer", "primary of ops", timedelta(minutes=15)),
        ("team lead", "person lead", timedelta(minutes=30)),
        ("engineering manager", "person mgr", timedelta(hours=1)),
        ("VP engineering", "person vp", timedelta(hours=2)),
    ]
    assert [lv.name for lv in default_escalation_policy(None, "lead", None, "vp").levels] == ["team lead", "VP engineering"]
    with pytest.raises(ValueError):
        default_escalation_policy(None, None, None, None)


def test_escalation_plan_repeats_then_falls_back_resolving_each_step_at_its_time() -> None:
    s = sched(primary={"participants": ["a", "b"]})  # a until Mon 2026-01-12 09:00 UTC, then b
    plan = escalation_plan(four_levels(), Severity.SEV2, [s], utc(2026, 1, 12, 8, 50), None)
    # one round = 15m + 30m + 1h + 2h = 3h45m
    assert [(p.at, p.level, p.round, [t.id for t in p.targets]) for p in plan] == [
        (utc(2026, 1, 12, 8, 50), 1, 1, ["a"]),
        (utc(2026, 1, 12, 9, 5), 2, 1, ["lead"]),
        (utc(2026, 1, 12, 9, 35), 3, 1, ["mgr"]),
        (utc(2026, 1, 12, 10, 35), 4, 1, ["vp"]),
        (utc(2026, 1, 12, 12, 35), 1, 2, ["b"]),  # the rotation handed off mid-escalation
        (utc(2026, 1, 12, 12, 50), 2, 2, ["lead"]),
        (utc(2026, 1, 12, 13, 20), 3, 2, ["mgr"]),
        (utc(2026, 1, 12, 14, 20), 4, 2, ["vp"]),
        (utc(2026, 1, 12, 16, 20), 0, 2, ["eng-leads"]),
    ]
    assert plan[0].note == "L1 on-call engineer, round 1/2"
    assert plan[-1].note.startswith("fallback") and plan[-1].targets[0].kind == "channel"


def test_escalation_plan_stops_at_the_ack() -> None:
    s = sched(primary={"participants": ["a", "b"]})
    start = utc(2026, 1, 12, 8, 50)
    plan = escalation_plan(four_levels(), "SEV2", [s], start, timedelta(hours=4))  # ack at 12:50
    assert [p.at for p in plan] == [utc(2026, 1, 12, 8, 50), utc(2026, 1, 12, 9, 5), utc(2026, 1, 12, 9, 35),
                                    utc(2026, 1, 12, 10, 35), utc(2026, 1, 12, 12, 35)]  # 12:50 ties: ack wins
    assert [p.level for p in escalation_plan(four_levels(), "SEV2", [s], start, timedelta(minutes=10))] == [1]
    assert escalation_plan(four_levels(), "SEV2", [s], start, timedelta(0)) == []


def test_by_severity_variation() -> None:
    sev1 = yaml.safe_load("""
    sev1:
      - {name: all hands, wait: 5m, targets: [{schedule: ops}, {schedule: ops, layer: secondary}]}
      - {wait: 10m, targets: [{person: vp}]}
    """)
    policy = four_levels(by_severity=EscalationPolicy.model_validate(
        {"name": "x", "levels": [{"targets": [{"person": "a"}]}], "by_severity": sev1}).by_severity)
    assert [lv.name for lv in levels_for(policy, "SEV1")] == ["all hands", None]
    assert levels_for(policy, Severity.SEV3) == policy.levels
    assert levels_for(policy, None) == policy.levels
    s = sched(**TWO_LAYERS)
    plan = escalation_plan(policy, 1, [s], utc(2026, 1, 12, 10), None)
    # SEV1 ("1"): 10:00 primary b + secondary c (hands off at 12:00); 10:05 vp; round 2 from 10:15; fallback 10:30
    assert [(p.at, p.level, p.round, [t.id for t in p.targets]) for p in plan] == [
        (utc(2026, 1, 12, 10), 1, 1, ["b", "c"]),
        (utc(2026, 1, 12, 10, 5), 2, 1, ["vp"]),
        (utc(2026, 1, 12, 10, 15), 1, 2, ["b", "c"]),
        (utc(2026, 1, 12, 10, 20), 2, 2, ["vp"]),
        (utc(2026, 1, 12, 10, 30), 0, 2, ["eng-leads"]),
    ]


def test_plan_notes_a_target_that_resolves_to_nobody() -> None:
    policy = EscalationPolicy.model_validate({"name": "p", "levels": [{"targets": [{"schedule": "gone"}]}]})
    [step] = escalation_plan(policy, None, [], utc(2026, 1, 1), None)
    assert step.targets == [] and "nobody resolved for primary of gone" in step.note


# ---------------------------------------------------------------- references and the YAML shape

EXAMPLE = """
people:
  - {id: alice, name: Alice Chen}
  - {id: bob, name: Bob Okafor}
  - {id: carol, name: Carol Diaz}
  - {id: dan, name: Dan Weber}
schedules:
  - name: checkout-oncall
    layers:
      - name: primary
        rotation: {type: weekly, participants: [alice, bob], handoff_day: monday, handoff_time: "09:00",
                   timezone: Europe/London, start: 2026-01-05}
      - name: secondary
        rotation: {type: custom, length_days: 14, participants: [carol, dan], handoff_time: 10:30}
    overrides:
      - {person: carol, start: "2026-04-03 18:00", end: "2026-04-06 09:00", reason: alice at a wedding}
escalation_policies:
  - name: checkout
    levels:
      - {name: on-call engineer, wait: 15m, targets: [{schedule: checkout-oncall, layer: primary}]}
      - {name: team lead, wait: 30m, targets: [{schedule: checkout-oncall, layer: secondary}, {person: carol}]}
      - {name: engineering manager, wait: 1h, targets: [{person: dan}]}
      - {name: VP engineering, wait: 2h, targets: [{person: dan}, {channel: incidents}]}
    repeat: 1
    fallback: [{channel: eng-leadership}]
    by_severity:
      SEV1:
        - {wait: 5m, targets: [{schedule: checkout-oncall}, {schedule: checkout-oncall, layer: secondary}]}
        - {wait: 15m, targets: [{person: dan}, {channel: incidents}]}
services:
  - {name: checkout, escalation_policy: checkout}
"""


def load_example(text: str = EXAMPLE) -> tuple[list[Schedule], list[EscalationPolicy], set[str]]:
    data = yaml.safe_load(text)
    return ([Schedule.model_validate(s) for s in data["schedules"]],
            [EscalationPolicy.model_validate(p) for p in data["escalation_policies"]],
            {p["id"] for p in data["people"]})


def test_example_yaml_validates_and_resolves() -> None:
    schedules, policies, people = load_example()
    assert check_references(schedules, policies, people) == []
    [s] = schedules
    assert s.layers[1].rotation.handoff_time == "10:30" and s.layers[1].rotation.start == date(2026, 1, 5)
    # Sat 2026-04-04: primary shift 12 (alice) overridden by carol; secondary (14 days from Mon 2026-01-05
    # 10:30 UTC) shift 6 started Mar 30 -> carol
    assert who_is_on_call(schedules, utc(2026, 4, 4, 12)) == {"checkout-oncall": {"primary": "carol",
                                                                                  "secondary": "carol"}}
    assert holder(s, utc(2026, 4, 6, 7, 59)) == "carol"  # override ends 09:00 BST = 08:00 UTC ...
    assert holder(s, utc(2026, 4, 6, 8, 0)) == "bob"     # ... with the Apr 6 handoff (shift 13 -> bob)


def test_check_references_names_every_problem() -> None:
    schedules, policies, _ = load_example()
    text = EXAMPLE.replace("participants: [alice, bob]", "participants: [alice, zed]")
    text = text.replace("{person: carol, start", "{person: yves, start")
    text = text.replace("layer: secondary}, {person: carol}", "layer: tertiary}, {person: wendy}")
    text = text.replace("fallback: [{channel: eng-leadership}]", "fallback: [{schedule: payments-oncall}]")
    bad_schedules, bad_policies, people = load_example(text)
    problems = check_references(bad_schedules + schedules, bad_policies + policies, people)
    assert problems == [
        "duplicate schedule name 'checkout-oncall'",
        "duplicate escalation policy name 'checkout'",
        "schedule 'checkout-oncall' layer 'primary': unknown person 'zed' in rotation",
        "schedule 'checkout-oncall' override 1: unknown person 'yves'",
        "escalation policy 'checkout' level 2 target 1: schedule 'checkout-oncall' has no layer 'tertiary' "
        "(layers: primary, secondary)",
        "escalation policy 'checkout' level 2 target 2: unknown person 'wendy'",
        "escalation policy 'checkout' fallback target 1: unknown schedule 'payments-oncall'",
    ]
