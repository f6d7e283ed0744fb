"""Histograms of time to acknowledge and time to resolve, by severity and service, from the archive (which
holds every incident): Prometheus sees the whole history, not only what this process saw since it started.
The rows are read off the event loop at most every `every` seconds; a scrape in between uses the last read."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from prometheus_client.core import HistogramMetricFamily

from domain.archive.models import IncidentRow

BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0, 259200.0, math.inf)


class ArchiveTimings:
    def __init__(self, every: float = 30.0) -> None:
        self._rows: Sequence[IncidentRow] = ()
        self._read_at: float | None = None
        self._every = every
        self.up = 0.0  # 1 when the last read of the archive worked

    async def refresh(self, load: Callable[[], Awaitable[Sequence[IncidentRow]]]) -> None:
        if self._read_at is not None and time.monotonic() - self._read_at < self._every:
            return
        self._read_at = time.monotonic()
        try:
            self._rows = await load()
            self.up = 1.0
        except Exception:  # noqa: BLE001 - an unreadable archive: keep the last figures, say so in the gauge
            self.up = 0.0

    def collect(self) -> Iterator[Any]:
        for name, help_text, start, end in (
                ("incidentflow_time_to_acknowledge_seconds", "Declared to first acknowledgement, archived incidents",
                 "declared_at", "acknowledged_at"),
                ("incidentflow_time_to_resolve_seconds", "Declared to resolved, archived incidents",
                 "declared_at", "resolved_at")):
            family = HistogramMetricFamily(name, help_text, labels=["severity", "service"])
            groups: dict[tuple[str, str], list[float]] = {}
            for row in self._rows:
                a, b = getattr(row, start), getattr(row, end)
                if a is not None and b is not None and not row.stood_down:
                    groups.setdefault((row.severity, row.service or ""), []).append(max(0.0, (b - a).total_seconds()))
            for labels, values in sorted(groups.items()):
                family.add_metric(list(labels), buckets=_buckets(values), sum_value=sum(values))
            yield family


def _buckets(values: list[float]) -> list[tuple[str, float]]:
    values = sorted(values)
    out, i = [], 0
    for le in BUCKETS:
        while i < len(values) and values[i] <= le:
            i += 1
        out.append(("+Inf" if math.isinf(le) else f"{le:g}", float(i)))
    return out
