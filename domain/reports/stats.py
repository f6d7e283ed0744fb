"""Percentiles and means a person can check by hand.

Percentile: nearest rank. Sort the n values ascending; the p-th percentile is the value at rank
ceil(p/100 * n) (ranks start at 1). So p50 of [1, 2, 3, 4] is 2, p90 of ten values is the 9th, and of one
value is that value. It is always one of the observed values, never an interpolation.
Mean: the sum divided by n, rounded to the microsecond."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TypeVar

from domain.reports.models import Stats

T = TypeVar("T", timedelta, float)
ZERO = timedelta(0)


def nearest_rank(ordered: Sequence[T], p: int) -> T | None:
    """The p-th percentile (0 < p <= 100) of values already sorted ascending; None when there are none."""
    if not ordered:
        return None
    rank = max(1, -(-p * len(ordered) // 100))  # ceil(p * n / 100), in integers: no float rounding
    return ordered[rank - 1]


def stats(values: list[timedelta]) -> Stats:
    """count, p50, p90 and mean of `values` (sorted in place)."""
    if not values:
        return Stats()
    values.sort()
    return Stats(count=len(values), p50=nearest_rank(values, 50), p90=nearest_rank(values, 90),
                 mean=sum(values, ZERO) / len(values))


def seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None
