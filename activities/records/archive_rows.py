"""The archive's light rows (IncidentRow, ActionItemRow) built straight from the columns, and the UTC rule
every archive datetime follows.

A report reads every row of its window, so this is the hot path (bench/report.py): one comprehension per
database, no Python function called per value. PostgreSQL is asked for UTC in the reading transaction, so
psycopg hands back `datetime.UTC`-aware values as they are, read through psycopg's binary protocol (SQLAlchemy's
result rows cost about half of the fetch). SQLite keeps naive UTC text: the query appends "+00:00" and
`datetime.fromisoformat` parses that into aware UTC at once (0.12 µs; a `.replace(tzinfo=…)` after parsing
costs 0.8 µs a value, six per row).
The cyclic garbage collector is paused while the rows are built: 100,000 new objects otherwise trigger full
collections that traverse the whole heap, again and again (a third of the read at 100,000 rows)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, String, Table, text, type_coerce

from domain.archive.models import ActionItemRow, IncidentRow

_INCIDENT = ("id", "service", "severity", "source", "declared_at", "detected_at", "acknowledged_at", "mitigated_at",
             "resolved_at", "ended_at", "stood_down", "alert_rule", "alert_notifications", "pages", "max_level",
             "phase")  # IncidentRow's fields, in its order
_ACTION = ("aid", "incident_id", "owner", "team", "status", "due", "created_at", "closed_at", "priority")


def utc(moment: datetime) -> datetime:
    """Aware UTC: a naive datetime is taken as UTC (how SQLite hands them back)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else utc(moment)


def incident_columns(conn: Connection, table: Table) -> list[ColumnElement[Any]]:
    return _columns(conn, table, _INCIDENT)


def action_columns(conn: Connection, table: Table) -> list[ColumnElement[Any]]:
    return _columns(conn, table, _ACTION)


def _columns(conn: Connection, table: Table, names: tuple[str, ...]) -> list[ColumnElement[Any]]:
    """The columns to select: on SQLite the datetimes as ISO text with the zone, for `fromisoformat`."""
    if conn.dialect.name == "postgresql":
        return [table.c[name] for name in names]
    return [(type_coerce(table.c[name], String) + "+00:00").label(name) if name.endswith("_at") else table.c[name]
            for name in names]


@contextmanager
def _building() -> Iterator[None]:
    """No cyclic GC while many objects are made (reference counting still frees everything that can be)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _postgres(conn: Connection, statement: Select[Any]) -> list[tuple[Any, ...]] | None:
    """PostgreSQL: the rows as psycopg's binary protocol gives them, in UTC; None on SQLite."""
    if conn.dialect.name != "postgresql":
        return None
    conn.execute(text("SET LOCAL TIME ZONE 'UTC'"))  # this transaction only: the pool's connections stay as they are
    compiled = statement.compile(dialect=conn.dialect)
    with conn.connection.driver_connection.cursor(binary=True) as cursor:  # type: ignore[union-attr]
        return list(cursor.execute(compiled.string, compiled.params).fetchall())


def incident_rows_of(conn: Connection, statement: Select[Any]) -> list[IncidentRow]:
    """IncidentRow per result row (`statement` selects `incident_columns`)."""
    with _building():
        if (rows := _postgres(conn, statement)) is not None:
            return [IncidentRow(*row) for row in rows]
        iso = datetime.fromisoformat
        return [IncidentRow(iid, service, severity, source, iso(declared), detected and iso(detected),
                            acked and iso(acked), mitigated and iso(mitigated), resolved and iso(resolved),
                            ended and iso(ended), stood_down, rule, notifications, pages, level, phase)
                for (iid, service, severity, source, declared, detected, acked, mitigated, resolved, ended,
                     stood_down, rule, notifications, pages, level, phase) in conn.execute(statement)]


def action_rows_of(conn: Connection, statement: Select[Any]) -> list[ActionItemRow]:
    """ActionItemRow per result row (`statement` selects `action_columns`)."""
    with _building():
        if (rows := _postgres(conn, statement)) is not None:
            return [ActionItemRow(*row) for row in rows]
        iso = datetime.fromisoformat
        return [ActionItemRow(aid, incident_id, owner, team, status, due, iso(created), closed and iso(closed),
                              priority)
                for aid, incident_id, owner, team, status, due, created, closed, priority in conn.execute(statement)]
