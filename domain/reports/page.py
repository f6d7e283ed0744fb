"""The reports page (GET /reports): the figures as tables and the charts inline, one self-contained HTML
document that reads the same without JavaScript. Long lists are cut on the page (the exports keep all)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from domain.reports.charts import Charts
from domain.reports.models import FollowThrough, Report, Stats, TargetResult
from domain.reports.page_template import PAGE, STYLE

_ENV = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
_PAGE = _ENV.from_string(PAGE)
ROWS_SHOWN = 25
UNACKNOWLEDGED_SHOWN = 10
NO_DATA = "no data"

FIGURES = [  # key, label, name, what it measures (short), definition (the footer)
    ("mttd", "MTTD", "Mean time to detect", "first alert's start to declared",
     "From the start of the first alert (its startsAt) to the declaration; incidents an alert opened only."),
    ("mtta", "MTTA", "Mean time to acknowledge", "declared to first acknowledgement",
     "From the declaration to the first acknowledgement."),
    ("mttm", "MTTM", "Mean time to mitigate", "declared to monitoring",
     "From the declaration to the first move to monitoring (mitigated, being watched)."),
    ("mttr", "MTTR", "Mean time to resolve", "declared to resolved",
     "From the declaration to resolved: time to resolve, not to recover or repair. Unresolved incidents are "
     "not in it."),
    ("mtbf", "MTBF", "Mean time between failures", "between a service's incidents",
     "Between consecutive declarations of the same service's incidents within the window, every service "
     "together here and per service below."),
]
_FALSE_POSITIVE = ("False-positive rate", "Stood-down incidents divided by declared incidents; the target is "
                   "checked against incidents an alert opened.")


def when(t: datetime) -> Markup:
    utc = t.astimezone(UTC)
    return Markup('<time datetime="{}">{}</time>').format(utc.isoformat().replace("+00:00", "Z"),
                                                            f"{utc:%b %d, %Y %H:%M} UTC")


def duration(value: timedelta | float | None) -> str:
    """4 min 30 s, 2 h 5 min, 4 d 12 h: two units at most, seconds rounded."""
    if value is None:
        return NO_DATA
    total = round(value.total_seconds() if isinstance(value, timedelta) else value)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
    while len(parts) > 1 and parts[0][0] == 0:
        parts.pop(0)
    first, second = parts[0], parts[1] if len(parts) > 1 else (0, "")
    return f"{first[0]} {first[1]}" + (f" {second[0]} {second[1]}" if second[0] else "")


def percent(value: float | None) -> str:
    return NO_DATA if value is None else f"{round(value * 100, 1):g} %"


def _cells(stats: Stats) -> list[dict[str, Any]]:
    return [{"text": duration(v), "raw": None if v is None else v.total_seconds()}
            for v in (stats.p50, stats.p90, stats.mean)]


def _target(t: TargetResult) -> dict[str, Any]:
    label = {"false_positive_rate": "False-positive rate, alert-opened incidents"}.get(t.metric, t.label)
    figure = label + (f" of {t.scope}" if t.scope else "") + ("" if t.unit == "ratio" else f" ({t.statistic})")
    show = percent if t.unit == "ratio" else duration
    result = {"met": "✓ Met", "missed": "✗ Missed", "no_data": "– No data"}[t.status]
    return {"metric": t.metric, "scope": t.scope, "figure": figure, "status": t.status, "result": result,
            "target": f"{t.comparison} {show(t.target)}", "value": show(t.value), "raw": t.value}


def _targets(results: Sequence[TargetResult]) -> list[dict[str, Any]]:
    """One row per target; MTBF's per-service results become one row (the table by service has each)."""
    rows = [_target(t) for t in results if not (t.metric == "mtbf" and t.scope)]
    per_service = [t for t in results if t.metric == "mtbf" and t.scope]
    if per_service:
        missed = [t for t in per_service if t.status == "missed"]
        lowest = min(per_service, key=lambda t: (t.value or 0.0, t.scope or ""))
        row = _target(lowest) | {"figure": f"MTBF per service ({lowest.statistic})",
                                 "value": f"lowest {duration(lowest.value)} ({lowest.scope})", "scope": None}
        row["status"] = "missed" if missed else "met"
        row["result"] = (f"✗ Missed by {len(missed)} of {len(per_service)} services" if missed
                         else f"✓ Met by all {len(per_service)} services")
        rows.insert(len([r for r in rows if r["metric"] != "false_positive_rate"]), row)
    return rows


def _follow(f: FollowThrough) -> dict[str, Any]:
    return {"team": f.team, "cells": [f.total, f.open, f.overdue, f.done_on_time, f.done_late, f.dropped,
                                      percent(f.on_time_rate)]}


def _counts(id_: str, caption: str, head: str, counts: dict[str, int]) -> dict[str, Any]:
    rows = list(counts.items())
    return {"id": id_, "caption": caption, "head": head, "rows": rows[:ROWS_SHOWN],
            "more": max(0, len(rows) - ROWS_SHOWN)}


def _window(report: Report) -> dict[str, Any]:
    filters = [f"service {report.service}"] if report.service else []
    filters += [f"severity {report.severity}"] if report.severity else []
    since = when(report.since) if report.since else "the first archived incident"
    return {"since": since, "until": when(report.until), "filters": filters}


def _quality(report: Report) -> dict[str, str]:
    q = report.alert_quality
    ids: Sequence[str] = q.paged_unacknowledged_ids[:UNACKNOWLEDGED_SHOWN]
    unacked = str(q.paged_unacknowledged) + (f": {', '.join(ids)}" if ids else "") + (
        "…" if q.paged_unacknowledged > len(ids) else "")
    return {"alert_rate": f"{percent(q.alert_false_positive_rate)} ({q.alert_stood_down} of {q.alert_declared})",
            "all_rate": f"{percent(q.false_positive_rate)} ({q.stood_down} of {q.declared})", "unacked": unacked}


def render_reports_page(report: Report, charts: Charts, title: str, generated_at: datetime) -> str:
    figures = [{"key": key, "label": label, "name": name, "what": what, "count": getattr(report, key).count,
                "cells": _cells(getattr(report, key))} for key, label, name, what, _ in FIGURES]
    weeks = [{"week": w.week, "incidents": w.incidents, "stood_down": w.stood_down,
              "cells": [duration(v) for v in (w.mtta_p50, w.mtta_p90, w.mttr_p50, w.mttr_p90)]}
             for w in report.weeks]
    mtbf = sorted(report.mtbf_by_service, key=lambda s: (-s.incidents, s.service))
    met = {t.scope: _target(t) for t in report.targets if t.metric == "mtbf" and t.scope}
    goal = next((t for t in report.targets if t.metric == "mtbf"), None)
    rules = [{**r.model_dump(), "rate": percent(r.false_positive_rate)} for r in report.alert_quality.rules]
    definitions = [{"label": label, "name": name, "definition": text} for _, label, name, _, text in FIGURES]
    definitions.append({"label": "FP", "name": _FALSE_POSITIVE[0], "definition": _FALSE_POSITIVE[1]})
    return _PAGE.render(
        title=title, style=Markup(STYLE), window=_window(report), generated=when(generated_at),
        targets=_targets(report.targets),
        totals={"incidents": report.incidents, "stood_down": report.stood_down, "unresolved": report.unresolved},
        figures=figures, weeks=weeks,
        charts={"weekly": Markup(charts.weekly), "severity": Markup(charts.severity),
                "noisiest": Markup(charts.noisiest)},
        mtbf=[{"service": s.service, "incidents": s.incidents, "count": s.between.count,
               "cells": _cells(s.between), "target": met.get(s.service)} for s in mtbf[:ROWS_SHOWN]],
        mtbf_more=max(0, len(mtbf) - ROWS_SHOWN),
        mtbf_target=f"({goal.statistic} {goal.comparison} {duration(goal.target)})" if goal else "",
        counts=[_counts("by-severity", "By severity", "Severity", report.by_severity),
                _counts("by-source", "By source (how it was declared)", "Source", report.by_source),
                _counts("by-service", "By service, most first", "Service", report.by_service)],
        quality=_quality(report), rules=rules[:ROWS_SHOWN], rules_more=max(0, len(rules) - ROWS_SHOWN),
        teams=[_follow(f) for f in report.follow_through_by_team], everyone=_follow(report.follow_through),
        today=f"{report.generated_at.astimezone(UTC):%b %d, %Y}", definitions=definitions)
