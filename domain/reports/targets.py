"""Targets as met, missed or no data. The durations compare the configured statistic (mean by default)
strictly, as our users state them: MTTD < 5 min, MTTA < 5 min, MTTR < 30 min are met below the target,
MTBF > 7 days above it (per service), the false-positive rate < 5 % below it (alert-opened incidents)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Literal

from domain.reports.config import ReportTargets
from domain.reports.models import ServiceMTBF, Stats, TargetResult
from domain.reports.stats import seconds

LABELS = {"mttd": "MTTD", "mtta": "MTTA", "mttm": "MTTM", "mttr": "MTTR", "mtbf": "MTBF",
          "false_positive_rate": "False-positive rate"}


def _result(metric: str, statistic: str, comparison: Literal["below", "above"], target: float,
            value: float | None, scope: str | None = None) -> TargetResult:
    if value is None:
        status: Literal["met", "missed", "no_data"] = "no_data"
    else:
        met = value < target if comparison == "below" else value > target
        status = "met" if met else "missed"
    unit: Literal["seconds", "ratio"] = "ratio" if metric == "false_positive_rate" else "seconds"
    return TargetResult(metric=metric, label=LABELS[metric], scope=scope, statistic=statistic,
                        comparison=comparison, unit=unit, target=target, value=value, status=status)


def _pick(stats: Stats, statistic: str) -> timedelta | None:
    value: timedelta | None = getattr(stats, statistic)
    return value


def evaluate(targets: ReportTargets, figures: Mapping[str, Stats], by_service: Sequence[ServiceMTBF],
             false_positive_rate: float | None) -> list[TargetResult]:
    """One result per configured target, in a fixed order; MTBF one per service (no data: one result)."""
    st = targets.statistic
    out = []
    for metric in ("mttd", "mtta", "mttm", "mttr"):
        limit: timedelta | None = getattr(targets, metric)
        if limit is not None:
            out.append(_result(metric, st, "below", limit.total_seconds(), seconds(_pick(figures[metric], st))))
    if targets.mtbf is not None:
        floor = targets.mtbf.total_seconds()
        measured = [s for s in by_service if s.between.count]
        out += [_result("mtbf", st, "above", floor, seconds(_pick(s.between, st)), s.service) for s in measured]
        if not measured:
            out.append(_result("mtbf", st, "above", floor, None))
    if targets.false_positive_rate is not None:
        out.append(_result("false_positive_rate", "rate", "below", targets.false_positive_rate,
                           false_positive_rate))
    return out
