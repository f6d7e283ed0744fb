"""Report figures against values worked out by hand (issue 15). Every timing below is chosen so a person can
check each figure with a pencil; the comments show the working."""

from __future__ import annotations

import csv
import io
import random
import time
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from domain.archive.models import ActionItemRow, ArchiveQuery, IncidentRow
from domain.reports.compute import compute, report_csv
from domain.reports.config import ReportsConfig, ReportTargets
from domain.reports.models import NO_SERVICE, Report, Stats
from domain.reports.stats import nearest_rank, stats

M = timedelta(minutes=1)
D = timedelta(days=1)
SINCE = datetime(2026, 11, 23, tzinfo=UTC)  # Monday of ISO week 48
UNTIL = datetime(2026, 12, 7, tzinfo=UTC)  # Monday of week 50: the window is weeks 48 and 49
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
QUERY = ArchiveQuery(since=SINCE, until=UNTIL)


def inc(iid: str, at: datetime, service: str | None, severity: str, source: str, *, detect: timedelta | None = None,
        ack: timedelta | None = None, mitigate: timedelta | None = None, resolve: timedelta | None = None,
        stood_down: bool = False, rule: str | None = None, notifications: int = 0, pages: int = 0) -> IncidentRow:
    """An incident declared at `at`; the other times are offsets from it (detect: before it)."""
    return IncidentRow(
        id=iid, service=service, severity=severity, source=source, declared_at=at,
        detected_at=at - detect if detect is not None else None,
        acknowledged_at=at + ack if ack is not None else None,
        mitigated_at=at + mitigate if mitigate is not None else None,
        resolved_at=at + resolve if resolve is not None else None,
        stood_down=stood_down, alert_rule=rule, alert_notifications=notifications, pages=pages)


def t(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


INCIDENTS = [
    inc("H", t(11, 22, 23, 59), "checkout", "SEV1", "alert", ack=M),  # before the window
    inc("J", t(11, 23), "payments", "SEV4", "alert", detect=0 * M, ack=5 * M, resolve=30 * M,
        rule="LatencyHigh", notifications=1, pages=1),  # exactly at `since`: in
    inc("A", t(11, 24, 10), "checkout", "SEV1", "alert", detect=2 * M, ack=3 * M, mitigate=20 * M,
        resolve=40 * M, rule="HighErrorRate", notifications=12, pages=2),
    inc("B", t(11, 26, 10), "checkout", "SEV2", "alert", detect=4 * M, ack=6 * M, mitigate=10 * M,
        resolve=25 * M, rule="HighErrorRate", notifications=5, pages=1),
    inc("C", t(11, 27, 8), "checkout", "SEV2", "alert", detect=1 * M, stood_down=True,
        rule="HighErrorRate", notifications=30, pages=1),  # a false alarm that paged, never acknowledged
    inc("D", t(11, 30, 9), "search", "SEV3", "cli", ack=1 * M, resolve=60 * M),
    inc("E", t(12, 2, 9), "search", "SEV3", "slack", ack=10 * M, mitigate=30 * M, resolve=120 * M),
    inc("F", t(12, 3, 10), "checkout", "SEV1", "alert", detect=10 * M, ack=2 * M, mitigate=15 * M,
        rule="DiskFull", notifications=3, pages=3),  # still open
    inc("G", t(12, 4, 12), None, "SEV3", "api", stood_down=True),
    inc("I", UNTIL, "checkout", "SEV1", "alert", ack=M),  # exactly at `until`: out
]


def item(aid: str, incident: str, team: str | None, status: str, due: date,
         closed: datetime | None = None) -> ActionItemRow:
    return ActionItemRow(aid=aid, incident_id=incident, owner="o", team=team, status=status, due=due,
                         created_at=t(11, 28), closed_at=closed)


ACTIONS = [
    item("a1", "A", "sre", "open", date(2026, 12, 10)),
    item("a2", "A", "sre", "open", date(2026, 12, 6)),  # due yesterday: overdue
    item("a3", "B", "payments", "done", date(2026, 12, 1),  # 01:30 at +02:00 is Dec 1, 23:30 UTC: on time
         datetime(2026, 12, 2, 1, 30, tzinfo=timezone(timedelta(hours=2)))),
    item("a4", "B", "payments", "done", date(2026, 12, 1), t(12, 2, 0, 10)),  # late
    item("a5", "E", None, "dropped", date(2026, 12, 5)),
    item("a6", "E", None, "open", date(2026, 12, 7)),  # due today: not overdue yet
    item("a7", "H", "sre", "open", date(2026, 11, 1)),  # its incident is outside the window
    item("a8", "C", "sre", "done", date(2026, 12, 1)),  # done, no closing date: neither on time nor late
]


@pytest.fixture(scope="module")
def report() -> Report:
    return compute(INCIDENTS, ACTIONS, QUERY, ReportTargets(), NOW)


def test_volumes_and_which_incidents_count(report: Report) -> None:
    # J, A, B, C (week 48) and D, E, F, G (week 49): H is before `since`, I at `until` (exclusive)
    assert (report.incidents, report.stood_down, report.unresolved) == (8, 2, 1)  # C, G stood down; F open
    assert report.since == SINCE and report.until == UNTIL and report.generated_at == NOW
    assert report.by_severity == {"SEV1": 2, "SEV2": 2, "SEV3": 3, "SEV4": 1}
    assert list(report.by_service.items()) == [("checkout", 4), ("search", 2), (NO_SERVICE, 1), ("payments", 1)]
    assert report.by_source == {"alert": 5, "cli": 1, "slack": 1, "api": 1, "demo": 0, "other": 0}


def test_durations_p50_p90_mean_by_hand(report: Report) -> None:
    # MTTD over J A B F (C is stood down, D E G have no alert): [0, 2, 4, 10] min
    # p50 = rank ceil(.5*4)=2 -> 2; p90 = rank ceil(.9*4)=4 -> 10; mean 16/4 = 4
    assert report.mttd == Stats(count=4, p50=2 * M, p90=10 * M, mean=4 * M)
    # MTTA over J A B D E F: [1, 2, 3, 5, 6, 10]: p50 rank 3 -> 3; p90 rank ceil(5.4)=6 -> 10; mean 27/6
    assert report.mtta == Stats(count=6, p50=3 * M, p90=10 * M, mean=timedelta(minutes=4, seconds=30))
    # MTTM over A B E F: [10, 15, 20, 30]: p50 rank 2 -> 15; p90 rank 4 -> 30; mean 75/4 = 18.75
    assert report.mttm == Stats(count=4, p50=15 * M, p90=30 * M, mean=timedelta(minutes=18, seconds=45))
    # MTTR over J A B D E (F unresolved): [25, 30, 40, 60, 120]: p50 rank 3 -> 40; p90 rank 5 -> 120; mean 55
    assert report.mttr == Stats(count=5, p50=40 * M, p90=120 * M, mean=55 * M)


def test_mtbf_per_service_excludes_stood_down(report: Report) -> None:
    # checkout: A Nov 24 10:00, B Nov 26 10:00, F Dec 3 10:00 (C stood down) -> 2 d, 7 d
    # search: D Nov 30 09:00, E Dec 2 09:00 -> 2 d; payments: J alone -> no interval
    by = {s.service: s for s in report.mtbf_by_service}
    assert list(by) == ["checkout", "payments", "search"]
    assert by["checkout"].incidents == 3
    assert by["checkout"].between == Stats(count=2, p50=2 * D, p90=7 * D, mean=timedelta(days=4.5))
    assert by["search"].between == Stats(count=1, p50=2 * D, p90=2 * D, mean=2 * D)
    assert by["payments"].incidents == 1 and by["payments"].between == Stats()
    # pooled [2, 2, 7] d: p50 rank 2 -> 2; p90 rank 3 -> 7; mean 11/3 d = 316,800 s
    assert report.mtbf == Stats(count=3, p50=2 * D, p90=7 * D, mean=timedelta(seconds=316_800))


def test_alert_quality_by_hand(report: Report) -> None:
    q = report.alert_quality
    assert (q.declared, q.stood_down, q.false_positive_rate) == (8, 2, 0.25)  # C, G of 8
    assert (q.alert_declared, q.alert_stood_down, q.alert_false_positive_rate) == (5, 1, 0.2)  # C of J A B C F
    assert (q.paged_unacknowledged, q.paged_unacknowledged_ids) == (1, ["C"])  # G never paged
    rules = [(r.rule, r.incidents, r.stood_down, r.false_positive_rate, r.paged_unacknowledged, r.notifications)
             for r in q.rules]
    assert rules == [("HighErrorRate", 3, 1, pytest.approx(1 / 3), 1, 47),  # 12 + 5 + 30
                     ("DiskFull", 1, 0, 0.0, 0, 3), ("LatencyHigh", 1, 0, 0.0, 0, 1)]
    assert [(r.rule, r.notifications) for r in q.noisiest] == [("HighErrorRate", 47), ("DiskFull", 3),
                                                               ("LatencyHigh", 1)]


def test_follow_through_on_time_late_overdue_by_team(report: Report) -> None:
    f = report.follow_through
    assert f.team is None
    # a7 belongs to H, outside the window
    assert (f.total, f.open, f.overdue, f.done, f.done_on_time, f.done_late, f.dropped) == (7, 3, 1, 3, 1, 1, 1)
    assert f.on_time_rate == 0.5
    teams = {x.team: (x.total, x.open, x.overdue, x.done, x.done_on_time, x.done_late, x.dropped, x.on_time_rate)
             for x in report.follow_through_by_team}
    assert list(teams) == ["payments", "sre", "unassigned"]
    assert teams["payments"] == (2, 0, 0, 2, 1, 1, 0, 0.5)
    assert teams["sre"] == (3, 2, 1, 1, 0, 0, 0, None)
    assert teams["unassigned"] == (2, 1, 0, 0, 0, 0, 1, None)


def test_weekly_series(report: Report) -> None:
    w48, w49 = report.weeks
    assert (w48.week, w48.start, w49.week, w49.start) == ("2026-W48", date(2026, 11, 23), "2026-W49",
                                                          date(2026, 11, 30))
    # W48: J A B C; MTTA [3, 5, 6] -> p50 5, p90 6; MTTR [25, 30, 40] -> p50 30, p90 40
    assert (w48.incidents, w48.stood_down) == (4, 1)
    assert (w48.mtta_p50, w48.mtta_p90, w48.mttr_p50, w48.mttr_p90) == (5 * M, 6 * M, 30 * M, 40 * M)
    # W49: D E F G; MTTA [1, 2, 10] -> 2, 10; MTTR [60, 120] -> p50 rank 1 -> 60, p90 rank 2 -> 120
    assert (w49.incidents, w49.stood_down) == (4, 1)
    assert (w49.mtta_p50, w49.mtta_p90, w49.mttr_p50, w49.mttr_p90) == (2 * M, 10 * M, 60 * M, 120 * M)


def test_weeks_without_incidents_are_listed_with_zeros() -> None:
    r = compute(INCIDENTS, [], ArchiveQuery(since=t(11, 9), until=UNTIL), ReportTargets(), NOW)
    assert [w.week for w in r.weeks] == ["2026-W46", "2026-W47", "2026-W48", "2026-W49"]
    assert r.weeks[0].incidents == 0 and r.weeks[0].mtta_p50 is None
    assert r.weeks[1].incidents == 1  # H, Sunday Nov 22 23:59


def test_default_targets_compare_the_mean_strictly(report: Report) -> None:
    got = [(x.metric, x.scope, x.statistic, x.comparison, x.target, x.value, x.status) for x in report.targets]
    assert got == [
        ("mttd", None, "mean", "below", 300.0, 240.0, "met"),  # 4 min < 5 min
        ("mtta", None, "mean", "below", 300.0, 270.0, "met"),  # 4 min 30 s < 5 min
        ("mttr", None, "mean", "below", 1800.0, 3300.0, "missed"),  # 55 min, not < 30 min
        ("mtbf", "checkout", "mean", "above", 604800.0, 388800.0, "missed"),  # 4.5 d, not > 7 d
        ("mtbf", "search", "mean", "above", 604800.0, 172800.0, "missed"),  # payments has no interval
        ("false_positive_rate", None, "rate", "below", 0.05, 0.2, "missed"),  # alert-opened: 1 of 5
    ]


def test_targets_are_configurable_and_can_be_turned_off() -> None:
    config = ReportsConfig.model_validate({"targets": {
        "mttd": "4m", "mtta": None, "mttm": "15m", "mttr": "1h", "mtbf": "1d", "false_positive_rate": "25%",
        "statistic": "p50"}})
    r = compute(INCIDENTS, [], QUERY, config.targets, NOW)
    got = {(x.metric, x.scope): (x.value, x.status) for x in r.targets}
    assert got == {
        ("mttd", None): (120.0, "met"),  # p50 2 min < 4 min
        ("mttm", None): (900.0, "missed"),  # p50 15 min is not < 15 min
        ("mttr", None): (2400.0, "met"),  # p50 40 min < 1 h
        ("mtbf", "checkout"): (172800.0, "met"), ("mtbf", "search"): (172800.0, "met"),  # 2 d > 1 d
        ("false_positive_rate", None): (0.2, "met"),  # 20 % < 25 %
    }
    mean_4m = compute(INCIDENTS, [], QUERY, ReportTargets(mttd=4 * M), NOW).targets[0]
    assert (mean_4m.value, mean_4m.status) == (240.0, "missed")  # exactly on the target is not below it


def test_targets_config_validation() -> None:
    assert ReportsConfig().targets == ReportTargets(mttd=5 * M, mtta=5 * M, mttm=None, mttr=30 * M, mtbf=7 * D,
                                                    false_positive_rate=0.05, statistic="mean")
    assert ReportTargets.model_validate({"false_positive_rate": 0.1}).false_positive_rate == 0.1
    for bad, field in [({"mttr": "soon"}, "mttr"), ({"false_positive_rate": "150%"}, "false_positive_rate"),
                       ({"statistic": "p99"}, "statistic"), ({"mtbff": "7d"}, "mtbff")]:
        with pytest.raises(ValidationError) as e:
            ReportTargets.model_validate(bad)
        assert field in str(e.value)


def test_filters_by_service_and_severity() -> None:
    r = compute(INCIDENTS, ACTIONS, ArchiveQuery(since=SINCE, until=UNTIL, service="checkout"), ReportTargets(), NOW)
    assert r.incidents == 4 and r.by_service == {"checkout": 4} and r.service == "checkout"
    assert r.follow_through.total == 5  # a1 a2 (A), a3 a4 (B), a8 (C)
    r = compute(INCIDENTS, ACTIONS, ArchiveQuery(since=SINCE, until=UNTIL, severity="sev1"), ReportTargets(), NOW)
    assert (r.incidents, r.severity, r.by_severity["SEV1"]) == (2, "SEV1", 2)  # A, F
    everything = compute(INCIDENTS, [], ArchiveQuery(), ReportTargets(), NOW)  # no since; until = now
    assert everything.incidents == 10 and everything.since is None and everything.until == NOW


def test_no_data_is_none_never_zero() -> None:
    r = compute([], [], QUERY, ReportTargets(), NOW)
    assert r.incidents == 0 and r.mtta == Stats(count=0, p50=None, p90=None, mean=None)
    assert r.alert_quality.false_positive_rate is None and r.follow_through.on_time_rate is None
    assert [w.incidents for w in r.weeks] == [0, 0]
    assert {x.status for x in r.targets} == {"no_data"}
    assert [x.metric for x in r.targets] == ["mttd", "mtta", "mttr", "mtbf", "false_positive_rate"]
    assert compute([], [], ArchiveQuery(), ReportTargets(), NOW).weeks == []
    backwards = compute(INCIDENTS, ACTIONS, ArchiveQuery(since=UNTIL, until=SINCE), ReportTargets(), NOW)
    assert backwards.incidents == 0 and backwards.weeks == []


def test_one_incident_and_ties() -> None:
    one = compute([inc("x", t(12, 1), "api", "SEV2", "cli", ack=7 * M)], [], QUERY, ReportTargets(), NOW)
    assert one.mtta == Stats(count=1, p50=7 * M, p90=7 * M, mean=7 * M)
    assert one.mtbf == Stats() and one.mtbf_by_service[0].incidents == 1
    # [5, 5, 5, 10]: p50 rank 2 -> 5, p90 rank 4 -> 10, mean 6.25
    assert stats([5 * M, 10 * M, 5 * M, 5 * M]) == Stats(count=4, p50=5 * M, p90=10 * M,
                                                           mean=timedelta(minutes=6, seconds=15))
    # two incidents of one service declared at the same instant: a zero interval, not an error
    same = [inc("y", t(12, 1), "api", "SEV2", "cli"), inc("x", t(12, 1), "api", "SEV2", "cli")]
    assert compute(same, [], QUERY, ReportTargets(), NOW).mtbf == Stats(count=1, p50=0 * M, p90=0 * M,
                                                                           mean=0 * M)
    # an acknowledgement recorded before the declaration (clock skew) counts as zero
    skew = compute([inc("z", t(12, 1), "api", "SEV2", "cli", ack=-2 * M)], [], QUERY, ReportTargets(), NOW)
    assert skew.mtta.p50 == timedelta(0)


def test_nearest_rank_by_hand() -> None:
    ten = list(range(1, 11))
    assert [nearest_rank(ten, p) for p in (10, 50, 90, 100)] == [1, 5, 9, 10]
    assert nearest_rank([1, 2, 3, 4], 50) == 2 and nearest_rank([], 50) is None


def test_same_rows_in_any_order_give_the_same_report(report: Report) -> None:
    rng = random.Random(15)
    for _ in range(5):
        incidents, actions = INCIDENTS[:], ACTIONS[:]
        rng.shuffle(incidents)
        rng.shuffle(actions)
        assert compute(incidents, actions, QUERY, ReportTargets(), NOW).as_json() == report.as_json()


def test_json_has_plain_seconds(report: Report) -> None:
    data = report.as_json()
    assert data["mtta"] == {"count": 6, "p50": 180.0, "p90": 600.0, "mean": 270.0}
    assert data["mtbf"]["mean"] == 316800.0 and data["weeks"][1]["mttr_p90"] == 7200.0
    assert data["until"] == "2026-12-07T00:00:00Z" and data["weeks"][0]["start"] == "2026-11-23"
    assert data["follow_through"]["on_time_rate"] == 0.5 and data["mttd"]["count"] == 4
    assert Report.model_validate_json(report.model_dump_json()) == report  # seconds read back


def test_csv_one_figure_per_row(report: Report) -> None:
    rows = list(csv.DictReader(io.StringIO(report_csv(report))))
    got = {(r["metric"], r["group"], r["statistic"]): (r["value"], r["unit"]) for r in rows}
    assert len(got) == len(rows)  # one row per figure, no duplicates
    assert got[("mttr", "", "p90")] == ("7200.0", "seconds")
    assert got[("mtta", "", "mean")] == ("270.0", "seconds")
    assert got[("incidents", "severity:SEV3", "count")] == ("3", "incidents")
    assert got[("mtbf", "service:checkout", "p50")] == ("172800.0", "seconds")
    assert got[("mtbf", "service:payments", "p50")] == ("", "seconds")  # no data: empty
    assert got[("mtta", "week:2026-W49", "p90")] == ("600.0", "seconds")
    assert got[("false_positive_rate", "source:alert", "ratio")] == ("0.2", "ratio")
    assert got[("alert_rule_notifications", "rule:HighErrorRate", "count")] == ("47", "notifications")
    assert got[("action_items", "team:payments", "done_late")] == ("1", "items")
    assert got[("target", "mttr", "status")] == ("missed", "")
    assert got[("target", "mtbf:service:search", "value")] == ("172800.0", "seconds")


def test_csv_defuses_spreadsheet_formulas() -> None:
    rows = [inc("x", t(12, 1), "=HYPERLINK(\"http://evil\")", "SEV2", "alert", rule="@SUM(A1)", notifications=1)]
    text = report_csv(compute(rows, [], QUERY, ReportTargets(), NOW))
    assert "service:=HYPERLINK" in text  # mid-cell: harmless
    cells = [c for row in csv.reader(io.StringIO(text)) for c in row]
    assert not any(c.startswith(("=", "@", "+")) for c in cells)


def test_a_hundred_thousand_incidents_compute_quickly() -> None:
    rng = random.Random(1)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [inc(f"i{n}", start + timedelta(seconds=rng.randrange(300 * 86400)), f"svc{n % 40}",
                f"SEV{n % 4 + 1}", "alert" if n % 3 else "cli", detect=rng.randrange(600) * timedelta(seconds=1),
                ack=rng.randrange(1800) * timedelta(seconds=1), resolve=rng.randrange(7200) * timedelta(seconds=1),
                stood_down=n % 17 == 0, rule=f"rule{n % 60}", notifications=n % 7, pages=n % 2)
            for n in range(100_000)]
    actions = [item(f"a{n}", f"i{n}", f"team{n % 5}", ("open", "done", "dropped")[n % 3], date(2026, 6, 1),
                    t(6, 2)) for n in range(0, 100_000, 5)]
    began = time.perf_counter()
    r = compute(rows, actions, ArchiveQuery(), ReportTargets(), NOW)
    elapsed = time.perf_counter() - began
    assert r.incidents == 100_000 and len(r.weeks) >= 43
    assert elapsed < 5, f"{elapsed:.2f} s"  # about 0.3 s here; the bound only catches a quadratic slip
