"""Report benchmark: the learning report over 10,000 and 100,000 archived incidents, on SQLite and on
PostgreSQL, against a raw SQL query of the same figures.

    .venv/bin/python bench/report.py [--sizes 10000,100000] [--repeat 5] [--pg-url URL | --no-pg] [--json]

* report: what `incidentflow report` does for a year's window: `ArchiveStore.rows(query)` +
  `ArchiveStore.action_rows()` (the store's fast path: light rows straight from the columns) +
  `domain.reports.compute.compute(...)` (every figure of the report), timed as one and in parts.
* raw SQL: counts by severity, and count, mean, p50 and p90 of the time to acknowledge and to resolve,
  computed by the database (bench/report_sql.py: `percentile_disc` on PostgreSQL, ranks on SQLite), in one
  transaction. The report computes far more than this (MTTD, MTTM, MTBF per service, weeks, alert quality,
  follow-through); these are the figures both have, and the run checks that both give the same values.
* writes: `put_incident` of 200 new records, one upsert (one transaction) each.

The archive is seeded by bench/report_seed.py (a year of incidents, realistic in shape, ~6 kB of JSON each),
generated once per size and written to both databases; SQLite is a file in a temp directory, PostgreSQL a
throwaway cluster started like tests/pg.py does (or --pg-url, a server whose user may create databases).
Each timing is the median of --repeat runs after one unmeasured run. It measures and prints, never asserts;
with --json the last line holds the named figures. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if (_bench := os.path.dirname(os.path.abspath(__file__))) not in sys.path:
    sys.path.insert(0, _bench)
if (_root := os.path.dirname(_bench)) not in sys.path:
    sys.path.insert(1, _root)  # tests/pg.py starts the throwaway PostgreSQL

from common import fmt, peak_rss_mb, percentile, ratio, table  # noqa: E402
from report_seed import NOW, YEAR, incident, seed  # noqa: E402
from report_sql import Figures, create_database, drop_database, local_postgres, raw_figures  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402

from activities.records import RecordStore, make_engine, migrate  # noqa: E402
from domain.archive.models import ArchiveQuery  # noqa: E402

try:
    from domain.reports.compute import compute
    from domain.reports.config import ReportTargets
except ImportError:  # HOOK: without the report computation, only the store's part (rows + action_rows) is timed
    compute = None  # type: ignore[assignment]

QUERY = ArchiveQuery(since=NOW - YEAR, until=NOW)


@dataclass
class Run:
    database: str
    size: int
    items: int = 0
    seed_s: float = 0.0
    megabytes: float = 0.0
    times: dict[str, list[float]] = field(default_factory=dict)  # ms per part, one entry per repeat
    agree: list[str] = field(default_factory=list)  # figures where the report and raw SQL differ

    def median(self, part: str) -> float:
        return statistics.median(self.times[part]) if self.times.get(part) else float("nan")


def _ms(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - t0) * 1000


def report_once(store: RecordStore) -> tuple[Any, dict[str, float]]:
    rows, rows_ms = _ms(lambda: store.archive.rows(QUERY))
    actions, actions_ms = _ms(store.archive.action_rows)
    report, compute_ms = (None, 0.0) if compute is None else _ms(
        lambda: compute(rows, actions, QUERY, ReportTargets(), NOW))
    return report, {"rows": rows_ms, "actions": actions_ms, "compute": compute_ms,
                    "report": rows_ms + actions_ms + compute_ms}


def raw_once(engine: Engine) -> tuple[Figures, float]:
    assert QUERY.since is not None and QUERY.until is not None
    since, until = QUERY.since, QUERY.until

    def run() -> Figures:
        with engine.begin() as conn:
            return raw_figures(conn, since, until)

    figures, ms = _ms(run)
    return figures, ms


def compare(report: Any, raw: Figures) -> list[str]:
    """The figures where the report and raw SQL differ (durations to the millisecond: SQLite's julianday
    arithmetic is a float of days)."""
    if report is None:
        return []
    differ = [] if {k: v for k, v in report.by_severity.items() if v} == raw.by_severity else ["by_severity"]
    for name, stats, (count, mean, p50, p90) in (("mtta", report.mtta, raw.ack), ("mttr", report.mttr, raw.resolve)):
        ours = (stats.count, *(None if v is None else v.total_seconds() for v in (stats.mean, stats.p50, stats.p90)))
        theirs = (count, mean, p50, p90)
        if ours[0] != theirs[0] or any(a is None or b is None or abs(a - b) > 1e-3 for a, b in zip(ours[1:], theirs[1:])):
            differ.append(name)
    return differ


def measure(run: Run, store: RecordStore, repeat: int) -> None:
    report_once(store)  # unmeasured: caches and the planner warm
    raw_once(store.engine)
    for _ in range(repeat):
        report, parts = report_once(store)
        raw, raw_ms = raw_once(store.engine)
        for part, ms in [*parts.items(), ("raw", raw_ms)]:
            run.times.setdefault(part, []).append(ms)
        run.agree = compare(report, raw)
    rng = random.Random(run.size)
    for n in range(200):
        record = incident(rng, 10_000_000 + n, NOW - YEAR * rng.random())
        _, ms = _ms(lambda r=record: store.archive.put_incident(r))
        run.times.setdefault("put", []).append(ms)


def settle(engine: Engine, path: Path | None) -> None:
    """Statistics for the planner (PostgreSQL: and the visibility map), as a running system has them."""
    if path is None:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        return
    engine.dispose()
    with sqlite3.connect(path, isolation_level=None) as conn:  # the WAL folded in: the file's size is the size
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def size_mb(engine: Engine, path: Path | None) -> float:
    if path is not None:
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 1e6
    with engine.begin() as conn:
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()) / 1e6


@contextmanager
def databases(size: int, tmp: Path, pg_server: str | None) -> Iterator[list[tuple[Run, Engine, Path | None]]]:
    """A fresh archive per database for this size (dropped afterwards)."""
    sqlite_path = tmp / f"report-{size}.db"
    made: list[tuple[Run, Engine, Path | None]] = [(Run("sqlite", size), make_engine(f"sqlite:///{sqlite_path}"),
                                                    sqlite_path)]
    name = f"bench_report_{size}"
    if pg_server is not None:
        made.append((Run("postgresql", size), make_engine(create_database(pg_server, name)), None))
    try:
        for _, engine, _ in made:
            migrate(engine)
        yield made
    finally:
        for _, engine, _ in made:
            engine.dispose()
        if pg_server is not None:
            drop_database(pg_server, name)
        for p in tmp.glob(sqlite_path.name + "*"):
            p.unlink()


def run_size(size: int, repeat: int, tmp: Path, pg_server: str | None) -> list[Run]:
    with databases(size, tmp, pg_server) as made:
        (incidents, items), seed_ms = _ms(lambda: seed([engine for _, engine, _ in made], size))
        runs = []
        for run, engine, path in made:
            settle(engine, path)
            run.items, run.seed_s, run.megabytes = items, seed_ms / 1000, size_mb(engine, path)
            measure(run, RecordStore(engine), repeat)
            runs.append(run)
            print(f"  {run.database} {size:,}: done", flush=True)
        return runs


def print_runs(runs: list[Run]) -> dict[str, Any]:
    print(table("Seeding (generated once per size, written to every database)",
                ["database", "incidents", "action items", "seconds (all dbs)", "size MB"],
                [[r.database, f"{r.size:,}", f"{r.items:,}", fmt(r.seed_s), fmt(r.megabytes)] for r in runs]))
    header = ["database", "incidents", "rows()", "action_rows()", "compute", "report", "raw SQL", "report / raw"]
    print(table("Report vs raw SQL (ms, median of the repeats; report = rows() + action_rows() + compute)", header,
                [[r.database, f"{r.size:,}", fmt(r.median("rows")), fmt(r.median("actions")),
                  fmt(r.median("compute")) if compute else "n/a (hook)", fmt(r.median("report")),
                  fmt(r.median("raw")), ratio(r.median("report"), r.median("raw"))] for r in runs]))
    print(table("Writes: put_incident of 200 new records, one upsert each (ms)", ["database", "incidents", "p50", "p99"],
                [[r.database, f"{r.size:,}", fmt(percentile(r.times["put"], 50), 2), fmt(percentile(r.times["put"], 99), 2)]
                 for r in runs]))
    agree = [f"{r.database} {r.size:,}: " + (", ".join(r.agree) or "yes") for r in runs]
    print("\nreport and raw SQL agree (counts by severity; MTTA, MTTR count/mean/p50/p90): " + "; ".join(agree))
    figures: dict[str, Any] = {}
    for r in runs:
        key = f"{r.database}_{r.size}"
        figures |= {f"{key}_{part}_ms": round(r.median(part), 2) for part in ("rows", "actions", "compute", "report", "raw")}
        figures |= {f"{key}_ratio": round(r.median("report") / r.median("raw"), 3), f"{key}_seed_s": round(r.seed_s, 1),
                    f"{key}_mb": round(r.megabytes, 1), f"{key}_put_p50_ms": round(percentile(r.times["put"], 50), 3),
                    f"{key}_agree": not r.agree}
    return figures


def print_targets(runs: list[Run]) -> None:
    at_10k = [r for r in runs if r.size == 10_000]
    if not at_10k:
        return
    within = [f"{r.database} {'met' if r.median('report') <= 2 * r.median('raw') else 'MISSED'} "
              f"({ratio(r.median('report'), r.median('raw'))})" for r in at_10k]
    fast = [f"{r.database} {'met' if r.median('report') < 1000 else 'MISSED'} ({r.median('report') / 1000:.2f} s)"
            for r in at_10k]
    print("\nTargets (issue 15), at 10,000 incidents" + ("" if compute else " (store part only: compute missing)"))
    print("report within 2x raw SQL: " + "; ".join(within))
    print("report under 1 s: " + "; ".join(fast))


def pg_server(args: argparse.Namespace, stack: ExitStack) -> str | None:
    if args.no_pg:
        print("PostgreSQL: skipped (--no-pg)")
        return None
    if args.pg_url:
        return str(args.pg_url).rstrip("/")
    try:
        return stack.enter_context(local_postgres())
    except (RuntimeError, OSError) as exc:
        print(f"PostgreSQL: skipped, the throwaway server did not start: {str(exc)[:300]}\n"
              "  (apt-get install -y postgresql, or set PG_BIN, or pass --pg-url)")
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000", help="archive sizes, comma-separated (10000,100000)")
    ap.add_argument("--repeat", "-r", type=int, default=5, help="measured runs per size and database (5)")
    ap.add_argument("--pg-url", help="an existing PostgreSQL server (postgresql+psycopg://user@host:port)")
    ap.add_argument("--no-pg", action="store_true", help="SQLite only")
    ap.add_argument("--json", action="store_true", help="end with one JSON line of named figures")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(f"\nincidentflow report benchmark: sizes {', '.join(f'{s:,}' for s in sizes)}; repeat {args.repeat}; "
          f"Python {platform.python_version()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
          f"SQLite {sqlite3.sqlite_version}")
    if compute is None:
        print("compute: domain/reports/compute.py is missing: timing the store part (rows + action_rows) only")
    runs: list[Run] = []
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="incidentflow-bench-report-") as tmp:
        server = pg_server(args, stack)
        if server is not None:
            print(f"PostgreSQL: {server_version(server)}", flush=True)
        for size in sizes:
            runs += run_size(size, args.repeat, Path(tmp), server)
    figures = print_runs(runs)
    print_targets(runs)
    print(f"peak RSS of this process: {peak_rss_mb():.0f} MB")
    if args.json:
        print(json.dumps(figures))


def server_version(server: str) -> str:
    engine = make_engine(server + "/postgres")
    try:
        with engine.begin() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar_one())
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
