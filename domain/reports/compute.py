"""A report from archive rows: pure, deterministic (the same rows in any order give the same report) and
cheap (plain loops and sorts, no model per row: 100,000 incidents take a fraction of a second).

Which incidents count: those declared within [since, until) (`until` defaults to now) that match the
service and severity filters (`limit` does not apply to reports). All of them count in the volumes and in
the false-positive rate; stood-down incidents (false alarms) are left out of every duration (MTTD, MTTA,
MTTM, MTTR, MTBF), which measure the response to real incidents. Every duration starts or ends at the
declaration (`declared_at`, "opened"):

- MTTD, time to detect: the first alert's start (`detected_at`, Alertmanager's startsAt) -> declared.
  Only incidents an alert opened have one.
- MTTA, time to acknowledge: declared -> first acknowledgement.
- MTTM, time to mitigate: declared -> first move to monitoring.
- MTTR, time to resolve: declared -> resolved (not "recover" or "repair": the clock starts at the
  declaration and stops when the incident is marked resolved). Unresolved incidents are not in it; the
  report counts them (`unresolved`).
- MTBF, time between failures, per service: the intervals between consecutive declarations of that
  service's incidents within the window (n incidents give n - 1 intervals); incidents without a service
  have none. `mtbf` pools every service's intervals.

Each is given as count, p50, p90 (nearest rank, see `stats`) and mean. A negative interval counts as 0."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import attrgetter

from domain.archive.models import SOURCES, ActionItemRow, ArchiveQuery, IncidentRow
from domain.models.common import Severity
from domain.reports.config import ReportTargets
from domain.reports.models import NO_SERVICE, Report, ServiceMTBF, Stats, Week, report_csv
from domain.reports.quality import alert_quality, follow_through
from domain.reports.stats import ZERO, nearest_rank, stats
from domain.reports.targets import evaluate

__all__ = ["compute", "report_csv", "select"]  # report_csv lives with the models; the doors import it here
WEEK = timedelta(days=7)
_TICK = timedelta(microseconds=1)


def compute(incidents: Sequence[IncidentRow], actions: Sequence[ActionItemRow], query: ArchiveQuery,
            targets: ReportTargets, now: datetime) -> Report:
    """The report of `query`'s window (see the module docstring for what counts). Action items count when
    their incident does; "overdue" and "today" are UTC dates of `now`."""
    until = query.until or now
    rows = select(incidents, query, until)
    t = _timings(rows, query.since, until)
    mtbf, by_service = _mtbf(rows)
    kept = {r.id for r in rows}
    everyone, teams = follow_through([a for a in actions if a.incident_id in kept], now.astimezone(UTC).date())
    quality = alert_quality(rows)
    figures = {"mttd": stats(t.detect), "mtta": stats(t.ack), "mttm": stats(t.mitigate), "mttr": stats(t.resolve)}
    return Report(
        since=query.since, until=until, service=query.service, severity=_severity(query), generated_at=now,
        incidents=len(rows), stood_down=t.stood_down, unresolved=t.unresolved,
        mttd=figures["mttd"], mtta=figures["mtta"], mttm=figures["mttm"], mttr=figures["mttr"],
        mtbf=mtbf, mtbf_by_service=by_service,
        by_severity=_counts(Counter(map(attrgetter("severity"), rows)), [s.value for s in Severity]),
        by_service=_by_count(Counter(r.service or NO_SERVICE for r in rows)),
        by_source=_counts(Counter(map(attrgetter("source"), rows)), list(SOURCES)),
        weeks=[w.model() for w in t.weeks], alert_quality=quality, follow_through=everyone,
        follow_through_by_team=teams,
        targets=evaluate(targets, figures, by_service, quality.alert_false_positive_rate))


def _severity(query: ArchiveQuery) -> str | None:
    return Severity.parse(query.severity).value if query.severity else None


def select(incidents: Sequence[IncidentRow], query: ArchiveQuery, until: datetime) -> list[IncidentRow]:
    """The incidents a report counts, oldest declaration first (ties by id: the order never depends on the
    order the store returned them in)."""
    since, service, severity = query.since, query.service, _severity(query)
    rows = [r for r in incidents
            if r.declared_at < until and (since is None or r.declared_at >= since)
            and (service is None or r.service == service) and (severity is None or r.severity == severity)]
    rows.sort(key=attrgetter("id"))
    rows.sort(key=attrgetter("declared_at"))  # stable: ties stay in id order
    return rows


@dataclass(slots=True)
class _Week:
    start: date
    incidents: int = 0
    stood_down: int = 0
    ack: list[timedelta] = field(default_factory=list)
    resolve: list[timedelta] = field(default_factory=list)

    def model(self) -> Week:
        self.ack.sort()
        self.resolve.sort()
        return Week(week=iso_week(self.start), start=self.start, incidents=self.incidents,
                    stood_down=self.stood_down, mtta_p50=nearest_rank(self.ack, 50),
                    mtta_p90=nearest_rank(self.ack, 90), mttr_p50=nearest_rank(self.resolve, 50),
                    mttr_p90=nearest_rank(self.resolve, 90))


@dataclass(slots=True)
class _Timings:
    detect: list[timedelta] = field(default_factory=list)
    ack: list[timedelta] = field(default_factory=list)
    mitigate: list[timedelta] = field(default_factory=list)
    resolve: list[timedelta] = field(default_factory=list)
    stood_down: int = 0
    unresolved: int = 0
    weeks: list[_Week] = field(default_factory=list)


def _timings(rows: Sequence[IncidentRow], since: datetime | None, until: datetime) -> _Timings:
    """One pass over `rows` (oldest first): every duration, and the weekly buckets. An interval that comes
    out negative counts as zero. Weeks are ISO weeks (UTC), from the week of `since` (or of the first
    incident) to the week of the window's last instant, empty ones included; an incident belongs to the
    week of its declaration, and a week's MTTA and MTTR are over its incidents, stood-down ones excluded."""
    out = _Timings()
    if since is None and not rows:
        return out
    start, last = monday(since or rows[0].declared_at), monday(until - _TICK)
    out.weeks = [_Week(start + n * WEEK) for n in range((last - start).days // 7 + 1)]
    if not out.weeks:  # since >= until: an empty window, so no rows either
        return out
    index, week = 0, out.weeks[0]
    boundary = datetime.combine(start + WEEK, datetime.min.time(), UTC)
    for r in rows:
        declared = r.declared_at
        while declared >= boundary:  # rows are in order: move on to the row's week
            index, boundary = index + 1, boundary + WEEK
            week = out.weeks[index]
        week.incidents += 1
        if r.stood_down:
            week.stood_down += 1
            out.stood_down += 1
            continue
        if r.detected_at is not None:
            out.detect.append(max(declared - r.detected_at, ZERO))
        if r.acknowledged_at is not None:
            ack = max(r.acknowledged_at - declared, ZERO)
            out.ack.append(ack)
            week.ack.append(ack)
        if r.mitigated_at is not None:
            out.mitigate.append(max(r.mitigated_at - declared, ZERO))
        if r.resolved_at is None:
            out.unresolved += 1
        else:
            resolve = max(r.resolved_at - declared, ZERO)
            out.resolve.append(resolve)
            week.resolve.append(resolve)
    return out


def _mtbf(rows: Sequence[IncidentRow]) -> tuple[Stats, list[ServiceMTBF]]:
    """`rows` oldest first: per service, the intervals between consecutive declarations (not stood down)."""
    starts: dict[str, list[datetime]] = {}
    for r in rows:
        if r.service is not None and not r.stood_down:
            times = starts.get(r.service)
            if times is None:
                times = starts[r.service] = []
            times.append(r.declared_at)
    pooled: list[timedelta] = []
    services = []
    for service in sorted(starts):
        times = starts[service]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        pooled += gaps
        services.append(ServiceMTBF(service=service, incidents=len(times), between=stats(gaps)))
    return stats(pooled), services


def _counts(counts: Counter[str], first: list[str]) -> dict[str, int]:
    """The `first` keys always (zeros included, in that order), then any other, by name."""
    return {k: counts.get(k, 0) for k in first} | {k: counts[k] for k in sorted(counts) if k not in first}


def _by_count(counts: Counter[str]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def monday(t: datetime) -> date:
    day = t.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())


def iso_week(start: date) -> str:
    year, week, _ = start.isocalendar()
    return f"{year}-W{week:02d}"
