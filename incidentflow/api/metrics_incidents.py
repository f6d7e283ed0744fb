"""`incidentflow_incidents_declared_total{source}`: every incident opened, whoever opened it.

Incidents are opened by this API, by Slack, by the CLI (another process) and, for alerts, by the
AlertGroupWorkflow inside a worker: no single process sees them all, but Temporal does. So at each scrape
the API reads the incidents declared since its last look from Temporal visibility (`IncidentDeclaredAt`)
and counts each one once, under the source recorded in its memo. A counter of this process, it starts at
0 (incidents declared before the process started are not counted), never goes down (Temporal's retention
deleting old incidents changes nothing), and every API replica reports the same cluster-wide count:
aggregate replicas with `max`, not `sum`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter, Gauge
from temporalio.client import Client

from workflows import search_attributes as sa

log = logging.getLogger("incidentflow.metrics")

# Known sources, exported at 0 from the start so the first incident of each shows as an increase.
SOURCES = ("api", "slack", "cli", "alertmanager", "grafana", "generic", "alert", "unknown")
OVERLAP = timedelta(minutes=10)  # look this far behind the last look: visibility lags, clocks differ
_LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
LIMIT = 10_000  # rows read per scrape at most (a storm of incidents is counted over the next scrapes)


@dataclass(frozen=True)
class Opened:
    id: str
    declared_at: datetime
    source: str


def source_of(memo_source: object, parent_id: str | None) -> str:
    """The label for one incident: the source its opener recorded, else what its parent says."""
    if isinstance(memo_source, str) and _LABEL.match(memo_source):
        return memo_source
    if memo_source is not None:
        return "unknown"  # never let a stored value make up a new label (cardinality)
    return "alert" if parent_id and parent_id.startswith("alertgroup-") else "unknown"


async def opened_since(client: Client, since: datetime) -> list[Opened]:
    """Incidents whose declaration time is at or after `since` (every run; callers dedup by id)."""
    query = f"WorkflowType = 'IncidentWorkflow' AND {sa.DECLARED_AT.name} >= '{since.astimezone(UTC).isoformat()}'"
    found: list[Opened] = []
    async for wf in client.list_workflows(query, limit=LIMIT):
        declared_at = wf.typed_search_attributes.get(sa.DECLARED_AT)
        if declared_at is not None:
            found.append(Opened(wf.id, declared_at, source_of(await wf.memo_value("source", None), wf.parent_id)))
    return found


class IncidentsOpened:
    """Counts each incident once, from overlapping looks at visibility."""

    def __init__(self, counter: Counter, up: Gauge, started: datetime) -> None:
        self.counter, self.up = counter, up
        self.floor = started  # nothing declared before this process started is counted
        self.window = started  # the next look starts here
        self.seen: dict[str, datetime] = {}  # ids counted whose declaration is inside the window
        self._lock = asyncio.Lock()
        for source in SOURCES:
            counter.labels(source)

    def count(self, rows: Iterable[Opened], now: datetime) -> int:
        """Count the rows not counted before; returns how many were new."""
        new = 0
        for row in rows:
            if row.id in self.seen or row.declared_at < self.floor:
                continue
            self.seen[row.id] = row.declared_at
            self.counter.labels(row.source).inc()
            new += 1
        self.window = max(self.floor, now - OVERLAP)
        self.seen = {i: at for i, at in self.seen.items() if at >= self.window}
        return new

    async def refresh(self, client: Callable[[], Awaitable[Client]], timeout: float = 2.0) -> None:
        """One look at visibility (bounded); on failure the counts stay as they were and `up` says 0."""
        async with self._lock:
            now = datetime.now(UTC)
            try:
                rows = await asyncio.wait_for(self._look(client), timeout)
            except Exception as exc:  # Temporal down or slow, or a server without visibility: keep the counts
                log.info("incident count not refreshed: %s", exc)
                self.up.set(0)
                return
            self.count(rows, now)
            self.up.set(1)

    async def _look(self, client: Callable[[], Awaitable[Client]]) -> list[Opened]:
        return await opened_since(await client(), self.window)
