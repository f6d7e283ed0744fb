"""The incident archive: what stays of an incident after Temporal's retention deletes its workflow.

One row per incident in `archived_incidents` (summary columns plus the whole `ArchivedIncident` as JSON),
its postmortem in `archived_postmortems` (written on its own schedule, before or after the incident's
record) and its action items in `archived_action_items`. Every write is one upsert, so a retried activity
writes once, and an incident's record is replaced only by one at least as new (`version`, the state's event
sequence): a late retry of an older write never undoes a reopen's newer record.

`rows` and `action_rows` are the reports' fast path: plain dataclasses built straight from the columns,
no JSON parsed. Every datetime handed out is timezone-aware UTC, on SQLite (which keeps them naive) as on
PostgreSQL (which hands them back in the session's zone)."""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pydantic_core
from sqlalchemy import ColumnElement, Connection, Engine, Select, and_, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from activities.records.archive_rows import (
    action_columns,
    action_rows_of,
    incident_columns,
    incident_rows_of,
    utc,
    utc_or_none,
)
from activities.records.schema import archived_action_items, archived_incidents, archived_postmortems
from domain.actions.models import ActionItem
from domain.archive.models import ActionItemRow, ArchivedIncident, ArchiveQuery, IncidentRow
from domain.models.common import Severity

_inc, _pm, _act = archived_incidents, archived_postmortems, archived_action_items
# ArchivedIncident's datetimes that are also columns: stored (and handed back) as UTC.
_TIMES = ("declared_at", "detected_at", "acknowledged_at", "mitigated_at", "resolved_at", "ended_at", "archived_at")


@dataclass(frozen=True)
class ArchivedPostmortem:
    incident_id: str
    link: str | None
    status: str | None  # draft | in_review | published
    text: str
    published_at: datetime | None
    items: list[Any]  # the action items table as it was archived (JSON values)


class ArchiveStore:
    """The archive API over one engine (thread-safe; every call is one short transaction)."""

    def __init__(self, engine: Engine, batch_size: int = 500) -> None:
        self._engine, self._batch = engine, batch_size

    # ------------------------------------------------------------------ writes
    def put_incident(self, record: ArchivedIncident) -> bool:
        """Insert or replace the incident's record in one statement. False when the stored record is
        newer (a higher version): it stays. The same record twice leaves one row, the same."""
        values = incident_values(record)
        with self._engine.begin() as conn:
            insert = _insert(conn)(_inc).values(**values)
            statement = insert.on_conflict_do_update(
                index_elements=[_inc.c.id], set_={k: insert.excluded[k] for k in values if k != "id"},
                where=_inc.c.version <= insert.excluded.version)
            # RETURNING, not rowcount: a row comes back only when one was written (rowcount is -1 for inserts)
            return conn.execute(statement.returning(_inc.c.version)).first() is not None

    def put_postmortem(self, incident_id: str, link: str | None, status: str | None, text: str,
                       published_at: datetime | None, items: Sequence[object] = ()) -> None:
        """Insert or replace the incident's postmortem (its record may come before or after it)."""
        values = {"incident_id": incident_id, "link": link, "status": status, "text": text,
                  "published_at": utc_or_none(published_at), "items": pydantic_core.to_json(list(items)).decode()}
        self._upsert(_pm, _pm.c.incident_id, values)

    def put_action(self, item: ActionItem, team: str | None) -> None:
        """Insert or replace an action item (by aid) with the team its owner belongs to."""
        self._upsert(_act, _act.c.aid, action_values(item, team))

    def _upsert(self, table: Any, key: Any, values: dict[str, Any]) -> None:
        with self._engine.begin() as conn:
            insert = _insert(conn)(table).values(**values)
            conn.execute(insert.on_conflict_do_update(
                index_elements=[key], set_={k: insert.excluded[k] for k in values if k != key.name}))

    # ------------------------------------------------------------------ whole records
    def get(self, incident_id: str) -> ArchivedIncident | None:
        """The incident's whole record (state included), with its archived postmortem merged in."""
        with self._engine.begin() as conn:
            row = conn.execute(_records().where(_inc.c.id == incident_id)).first()
        return None if row is None else _archived(row, with_state=True)

    def postmortem(self, incident_id: str) -> ArchivedPostmortem | None:
        with self._engine.begin() as conn:
            row = conn.execute(select(_pm).where(_pm.c.incident_id == incident_id)).first()
        if row is None:
            return None
        return ArchivedPostmortem(row.incident_id, row.link, row.status, row.text, utc_or_none(row.published_at),
                                  json.loads(row.items))

    def actions_of(self, incident_id: str) -> builtins.list[ActionItem]:
        """The incident's archived action items, oldest first."""
        with self._engine.begin() as conn:
            records = conn.execute(select(_act.c.record).where(_act.c.incident_id == incident_id)
                                   .order_by(_act.c.created_at, _act.c.aid)).scalars().all()
        return [ActionItem.model_validate_json(r) for r in records]

    def list(self, query: ArchiveQuery) -> builtins.list[ArchivedIncident]:
        """The matching incidents, newest first, without their state (a listing)."""
        with self._engine.begin() as conn:
            rows = conn.execute(_filtered(_records(), query).limit(query.limit)).all()
        return [_archived(row, with_state=False) for row in rows]

    def ids(self, query: ArchiveQuery) -> set[str]:
        with self._engine.begin() as conn:
            return set(conn.execute(_filtered(select(_inc.c.id), query).limit(query.limit)).scalars())

    def export(self, query: ArchiveQuery) -> Iterator[ArchivedIncident]:
        """Every matching incident with its state, newest first, read in batches (each its own short
        transaction, so a slow consumer never holds the database)."""
        left = query.limit
        after: tuple[datetime, str] | None = None
        while left is None or left > 0:
            size = self._batch if left is None else min(left, self._batch)
            statement = _filtered(_records(), query)
            if after is not None:
                statement = statement.where(_before(*after))
            with self._engine.begin() as conn:
                rows = conn.execute(statement.limit(size)).all()
            for row in rows:
                yield _archived(row, with_state=True)
            if len(rows) < size:
                return
            after = (utc(rows[-1].declared_at), rows[-1].id)
            left = None if left is None else left - len(rows)

    # ------------------------------------------------------------------ reports' fast path
    def rows(self, query: ArchiveQuery | None = None) -> builtins.list[IncidentRow]:
        """What reports compute from, newest first: no JSON parsed, UTC datetimes."""
        query = query or ArchiveQuery()
        with self._engine.begin() as conn:
            statement = _filtered(select(*incident_columns(conn, _inc)), query).limit(query.limit)
            return incident_rows_of(conn, statement)

    def action_rows(self) -> builtins.list[ActionItemRow]:
        """Every archived action item, for follow-through figures."""
        with self._engine.begin() as conn:
            statement = select(*action_columns(conn, _act)).order_by(_act.c.created_at, _act.c.aid)
            return action_rows_of(conn, statement)

    def count(self) -> int:
        """How many incidents the archive holds."""
        with self._engine.begin() as conn:
            return int(conn.execute(select(func.count()).select_from(_inc)).scalar_one())


def incident_values(record: ArchivedIncident) -> dict[str, Any]:
    """The incident's row: its summary columns (times in UTC) and the whole record as JSON."""
    record = record.model_copy(update={name: utc_or_none(getattr(record, name)) for name in _TIMES})
    values = {column.name: getattr(record, column.name) for column in _inc.columns if column.name != "record"}
    values["record"] = record.model_dump_json()
    return values


def action_values(item: ActionItem, team: str | None) -> dict[str, Any]:
    return {"aid": item.aid, "incident_id": item.incident_id, "owner": item.owner, "team": team,
            "status": item.status.value, "due": item.due, "priority": item.priority.value,
            "created_at": utc(item.created_at), "closed_at": utc_or_none(item.closed_at),
            "record": item.model_dump_json()}


def _records() -> Select[Any]:
    return (select(_inc.c.id, _inc.c.declared_at, _inc.c.record, _pm.c.link, _pm.c.status, _pm.c.text)
            .select_from(_inc.outerjoin(_pm, _pm.c.incident_id == _inc.c.id)))


def _filtered(statement: Select[Any], query: ArchiveQuery) -> Select[Any]:
    """The query's filters on declared_at ([since, until)), service and severity; newest first."""
    conditions: builtins.list[ColumnElement[bool]] = []
    if query.since is not None:
        conditions.append(_inc.c.declared_at >= utc(query.since))
    if query.until is not None:
        conditions.append(_inc.c.declared_at < utc(query.until))
    if query.service is not None:
        conditions.append(_inc.c.service == query.service)
    if query.severity is not None:  # sev1, 1 and SEV1 alike, as the report reads them
        conditions.append(_inc.c.severity == Severity.parse(query.severity).value)
    return statement.where(*conditions).order_by(_inc.c.declared_at.desc(), _inc.c.id.desc())


def _before(declared_at: datetime, incident_id: str) -> ColumnElement[bool]:
    """After (declared_at, id) in newest-first order: the keyset of the next export batch."""
    return or_(_inc.c.declared_at < declared_at, and_(_inc.c.declared_at == declared_at, _inc.c.id < incident_id))


def _archived(row: Any, with_state: bool) -> ArchivedIncident:
    if with_state:
        record = ArchivedIncident.model_validate_json(row.record)
    else:  # skip validating the state (most of the JSON): a listing does not need it
        data = json.loads(row.record)
        data["state"] = None
        record = ArchivedIncident.model_validate(data)
    if row.text is None:  # no postmortem row (its text is never NULL)
        return record
    return record.model_copy(update={"postmortem_link": row.link or record.postmortem_link,
                                     "postmortem_status": row.status or record.postmortem_status,
                                     "postmortem_text": row.text or record.postmortem_text})


def _insert(conn: Connection) -> Any:
    """The dialect's `insert`, the one with ON CONFLICT … DO UPDATE (both databases spell it alike)."""
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
