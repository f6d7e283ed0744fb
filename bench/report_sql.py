"""bench/report.py's baseline: the same figures in raw SQL, and a throwaway PostgreSQL to run it on.

The figures: incidents by severity (all of them), and for acknowledge and resolve (declared -> acknowledged,
declared -> resolved; stood-down incidents left out, a negative span counted as 0, as the report does) the
count, mean, p50 and p90. Percentiles are nearest-rank like the report's (`domain/reports/stats.py`): on
PostgreSQL `percentile_disc` (it picks the value at rank ceil(p*n), where `percentile_cont` would interpolate
between two ranks at the same cost); on SQLite by numbering the ordered values and picking those ranks."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, text

_WHERE = "declared_at >= :since AND declared_at < :until"
COUNTS = f"SELECT severity, count(*) FROM archived_incidents WHERE {_WHERE} GROUP BY severity"

_PG_SPAN = "CASE WHEN {e} < {s} THEN 0 ELSE extract(epoch FROM {e} - {s}) END"
PG_STATS = f"""
SELECT count(ack), avg(ack), percentile_disc(0.5) WITHIN GROUP (ORDER BY ack),
       percentile_disc(0.9) WITHIN GROUP (ORDER BY ack),
       count(res), avg(res), percentile_disc(0.5) WITHIN GROUP (ORDER BY res),
       percentile_disc(0.9) WITHIN GROUP (ORDER BY res)
FROM (SELECT {_PG_SPAN.format(s="declared_at", e="acknowledged_at")} AS ack,
             {_PG_SPAN.format(s="declared_at", e="resolved_at")} AS res
      FROM archived_incidents WHERE {_WHERE} AND NOT stood_down) AS live"""

# SQLite keeps the datetimes as ISO text: julianday() turns them into days; max(x, 0.0) is NULL for NULL.
_SQLITE_RANKED = """{name} AS (SELECT {name} AS d, row_number() OVER (ORDER BY {name}) AS k, count(*) OVER () AS n
                  FROM live WHERE {name} IS NOT NULL)"""
_SQLITE_PICK = """SELECT max(n), avg(d), max(CASE WHEN k = (50 * n + 99) / 100 THEN d END),
       max(CASE WHEN k = (90 * n + 99) / 100 THEN d END) FROM {name}"""
SQLITE_STATS = f"""
WITH live AS MATERIALIZED (
  SELECT max((julianday(acknowledged_at) - julianday(declared_at)) * 86400.0, 0.0) AS ack,
         max((julianday(resolved_at) - julianday(declared_at)) * 86400.0, 0.0) AS res
  FROM archived_incidents WHERE {_WHERE} AND NOT stood_down),
{_SQLITE_RANKED.format(name="ack")},
{_SQLITE_RANKED.format(name="res")}
{_SQLITE_PICK.format(name="ack")}
UNION ALL
{_SQLITE_PICK.format(name="res")}"""


@dataclass(frozen=True)
class Figures:
    """count, mean, p50, p90 in seconds (None: no values) per measure, and incidents per severity."""

    by_severity: dict[str, int]
    ack: tuple[int, float | None, float | None, float | None]
    resolve: tuple[int, float | None, float | None, float | None]


def _seconds(row: tuple[object, ...]) -> tuple[int, float | None, float | None, float | None]:
    count, *rest = row
    return int(count or 0), *(None if v is None else float(v) for v in rest)  # type: ignore[arg-type]


def raw_figures(conn: Connection, since: datetime, until: datetime) -> Figures:
    """Both statements, one transaction (the caller's)."""
    window = {"since": since, "until": until}
    counts = {severity: int(n) for severity, n in conn.execute(text(COUNTS), window)}
    if conn.dialect.name == "postgresql":
        row = tuple(conn.execute(text(PG_STATS), window).one())
        return Figures(counts, _seconds(row[:4]), _seconds(row[4:]))
    ack, res = (tuple(r) for r in conn.execute(text(SQLITE_STATS), _sqlite_window(window)))
    return Figures(counts, _seconds(ack), _seconds(res))


def _sqlite_window(window: dict[str, datetime]) -> dict[str, str]:
    """SQLite compares the stored text: bind the bounds in the same format (naive UTC, microseconds)."""
    return {k: v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") for k, v in window.items()}


@contextmanager
def local_postgres() -> Iterator[str]:
    """A throwaway cluster on a free loopback port, as tests/pg.py starts one (Debian's `postgresql` server
    binaries or $PG_BIN; as root, run as the `postgres` user); yields its base URL. Raises RuntimeError with
    what is missing when it cannot start."""
    from tests import pg

    try:
        bin_dir = pg.pg_bin(installing=True)  # never apt-get from a benchmark
    except BaseException as exc:  # pytest.fail's Failed is a BaseException
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise RuntimeError(str(exc)) from None
    root = Path(tempfile.mkdtemp(prefix="incidentflow-bench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    try:
        pg._run([str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                 "--no-sync"], root)
        port = pg._start(bin_dir, root)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(pg._as_owner([str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "-w",
                                     "stop"]), cwd=root, capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def create_database(server: str, name: str) -> str:
    """A fresh database on `server` (dropped first if it exists); returns its URL."""
    import psycopg
    from psycopg import sql

    admin = server.replace("postgresql+psycopg", "postgresql") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"{server}/{name}"


def drop_database(server: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    admin = server.replace("postgresql+psycopg", "postgresql") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
