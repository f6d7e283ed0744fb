"""A report's figures (pure pydantic models). Durations are `timedelta` in Python and seconds in JSON
(`Report.as_json()`); rates are fractions (0.05 is 5 %). `None` means "no data": never a made-up zero."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NO_SERVICE = "(no service)"
NO_TEAM = "unassigned"


class _Out(BaseModel):
    model_config = ConfigDict(ser_json_timedelta="float")


class Stats(_Out):
    """A distribution of durations: how many, p50, p90 (nearest rank) and the mean."""

    count: int = 0
    p50: timedelta | None = None
    p90: timedelta | None = None
    mean: timedelta | None = None


class ServiceMTBF(_Out):
    service: str
    incidents: int  # counted ones (stood-down incidents excluded)
    between: Stats  # the intervals between consecutive incident starts: incidents - 1 of them


class RuleQuality(_Out):
    rule: str
    incidents: int
    stood_down: int
    false_positive_rate: float | None
    paged_unacknowledged: int
    notifications: int


class AlertQuality(_Out):
    declared: int
    stood_down: int
    false_positive_rate: float | None  # stood down / declared, every source
    alert_declared: int
    alert_stood_down: int
    alert_false_positive_rate: float | None  # the same among incidents an alert opened
    paged_unacknowledged: int  # paged someone and nobody ever acknowledged
    paged_unacknowledged_ids: list[str] = Field(default_factory=list)  # the first 50, oldest first
    rules: list[RuleQuality] = Field(default_factory=list)  # most incidents first
    noisiest: list[RuleQuality] = Field(default_factory=list)  # most notifications first, at most 10


class FollowThrough(_Out):
    team: str | None = None  # None: every team
    total: int = 0
    open: int = 0
    overdue: int = 0  # open and due before today (UTC)
    done: int = 0
    done_on_time: int = 0  # closed on or before the due date (UTC dates)
    done_late: int = 0
    dropped: int = 0
    on_time_rate: float | None = None  # done on time / done with a closing date


class TargetResult(_Out):
    metric: str  # mttd | mtta | mttm | mttr | mtbf | false_positive_rate
    label: str
    scope: str | None = None  # the service, for MTBF
    statistic: str  # mean | p50 | p90 | rate
    comparison: Literal["below", "above"]
    unit: Literal["seconds", "ratio"]
    target: float
    value: float | None
    status: Literal["met", "missed", "no_data"]


class Week(_Out):
    week: str  # ISO week, e.g. 2026-W49
    start: date  # its Monday
    incidents: int = 0
    stood_down: int = 0
    mtta_p50: timedelta | None = None
    mtta_p90: timedelta | None = None
    mttr_p50: timedelta | None = None
    mttr_p90: timedelta | None = None


class Report(_Out):
    since: datetime | None
    until: datetime  # exclusive
    service: str | None = None
    severity: str | None = None
    generated_at: datetime
    incidents: int  # declared within [since, until), stood-down ones included
    stood_down: int
    unresolved: int  # neither resolved nor stood down yet: not in MTTR
    mttd: Stats
    mtta: Stats
    mttm: Stats
    mttr: Stats
    mtbf: Stats  # every service's intervals together
    mtbf_by_service: list[ServiceMTBF]
    by_severity: dict[str, int]
    by_service: dict[str, int]  # most incidents first
    by_source: dict[str, int]
    weeks: list[Week]
    alert_quality: AlertQuality
    follow_through: FollowThrough
    follow_through_by_team: list[FollowThrough]
    targets: list[TargetResult]

    def as_json(self) -> dict[str, Any]:
        """Plain JSON values: durations in seconds, times in ISO 8601."""
        return self.model_dump(mode="json")


CSV_HEADER = ("metric", "group", "statistic", "value", "unit")
Cell = str | int | float | None


def _cell(value: Cell | timedelta) -> Cell:
    """Seconds for durations; text that a spreadsheet would run as a formula gets a leading quote."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _stats_rows(metric: str, group: str, stats: Stats) -> list[tuple[Any, ...]]:
    return [(metric, group, "count", stats.count, "incidents")] + [
        (metric, group, name, getattr(stats, name), "seconds") for name in ("p50", "p90", "mean")]


def _rows(report: Report) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = [("incidents", "", "count", report.incidents, "incidents"),
                                   ("incidents", "stood_down", "count", report.stood_down, "incidents"),
                                   ("incidents", "unresolved", "count", report.unresolved, "incidents")]
    for name, counts in (("severity", report.by_severity), ("service", report.by_service),
                         ("source", report.by_source)):
        rows += [("incidents", f"{name}:{key}", "count", n, "incidents") for key, n in counts.items()]
    for metric in ("mttd", "mtta", "mttm", "mttr", "mtbf"):
        rows += _stats_rows(metric, "", getattr(report, metric))
    for s in report.mtbf_by_service:
        rows += _stats_rows("mtbf", f"service:{s.service}", s.between)
    for w in report.weeks:
        g = f"week:{w.week}"
        rows += [("incidents", g, "count", w.incidents, "incidents"),
                 ("incidents", f"{g}:stood_down", "count", w.stood_down, "incidents"),
                 ("mtta", g, "p50", w.mtta_p50, "seconds"), ("mtta", g, "p90", w.mtta_p90, "seconds"),
                 ("mttr", g, "p50", w.mttr_p50, "seconds"), ("mttr", g, "p90", w.mttr_p90, "seconds")]
    q = report.alert_quality
    rows += [("false_positive_rate", "", "ratio", q.false_positive_rate, "ratio"),
             ("false_positive_rate", "source:alert", "ratio", q.alert_false_positive_rate, "ratio"),
             ("paged_unacknowledged", "", "count", q.paged_unacknowledged, "incidents")]
    for r in q.rules:
        g = f"rule:{r.rule}"
        rows += [("alert_rule_incidents", g, "count", r.incidents, "incidents"),
                 ("alert_rule_stood_down", g, "count", r.stood_down, "incidents"),
                 ("alert_rule_false_positive_rate", g, "ratio", r.false_positive_rate, "ratio"),
                 ("alert_rule_paged_unacknowledged", g, "count", r.paged_unacknowledged, "incidents"),
                 ("alert_rule_notifications", g, "count", r.notifications, "notifications")]
    for f in [report.follow_through, *report.follow_through_by_team]:
        g = "" if f.team is None else f"team:{f.team}"
        rows += [("action_items", g, name, getattr(f, name), "items")
                 for name in ("total", "open", "overdue", "done", "done_on_time", "done_late", "dropped")]
        rows.append(("action_items", g, "on_time_rate", f.on_time_rate, "ratio"))
    for t in report.targets:
        g = t.metric if t.scope is None else f"{t.metric}:service:{t.scope}"
        rows += [("target", g, f"{t.statistic} {t.comparison}", t.target, t.unit),
                 ("target", g, "value", t.value, t.unit), ("target", g, "status", t.status, "")]
    return rows


def report_csv(report: Report) -> str:
    """One figure per row: metric, group (e.g. severity:SEV1, service:checkout, week:2026-W49, team:sre),
    statistic, value (durations in seconds, rates as fractions, empty for no data), unit."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(tuple(_cell(c) for c in row) for row in _rows(report))
    return out.getvalue()
