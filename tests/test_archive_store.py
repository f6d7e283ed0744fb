"""The incident archive's store (activities/records/archive.py) on SQLite and on a real PostgreSQL
(tests/pg.py): the migration, whole records round-tripped, idempotent and ordered upserts, postmortems
and action items, the filtered reads reports use, UTC datetimes."""

from __future__ import annotations

import gc
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text

from activities.records import RecordStore, current_revision, make_engine, migrate
from activities.records.engine import MIGRATIONS
from activities.records.schema import archived_incidents, metadata
from domain.actions.models import ActionItem, ItemStatus
from domain.archive.models import ActionItemRow, ArchivedIncident, ArchiveQuery, IncidentRow
from domain.models import AlertRecord, AlertStatus, EventKind, Phase, Role, Severity
from domain.models.chat import ButtonMessage, ChatRoom
from domain.models.incident import IncidentState, PublicState, TimelineEvent
from domain.models.runbook import RunbookRun, RunStatus
from domain.postmortem.models import ItemKind, Priority
from tests.pg import postgres_server, postgres_url  # noqa: F401  (fixtures)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PLUS2 = timezone(timedelta(hours=2))


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/data/records.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(url: str) -> Iterator[RecordStore]:
    opened = RecordStore.open(url)
    yield opened
    opened.close()


def full_state(incident_id: str = "incident-20260302-0900-checkout", seq: int = 7) -> IncidentState:
    """An incident with something in every part of its state."""
    events = [TimelineEvent(seq=i, at=T0 + timedelta(minutes=i), kind=kind, actor="alice", text=f"event {i}")
              for i, kind in enumerate([EventKind.declared, EventKind.alert, EventKind.page, EventKind.acknowledged,
                                        EventKind.role, EventKind.status_update, EventKind.phase], start=1)]
    alert = AlertRecord(fingerprint="fp1", source="alertmanager", title="HighErrorRate", status=AlertStatus.resolved,
                        first_seen=T0, last_seen=T0 + timedelta(minutes=30), count=12,
                        starts_at=T0 - timedelta(minutes=3))
    return IncidentState(
        id=incident_id, title="Checkout 5xx — «payments»", service="checkout", description="Errors\nspike",
        severity=Severity.SEV2, phase=Phase.closed, declared_at=T0, declared_by="alertmanager",
        roles={Role.ic: "alice", Role.lead: "bob"}, acknowledged_by="bob", acknowledged_at=T0 + timedelta(minutes=4),
        timeline=events, seq=seq, alerts={"fp1": alert}, alerts_received=12, monitoring_since=T0 + timedelta(minutes=20),
        resolved_at=T0 + timedelta(minutes=40), ended_at=T0 + timedelta(hours=30), pages=2, escalations=1,
        chat=ChatRoom(channel_id="C1", channel_name="incident-20260302-0900-sev2", posted_seq=7),
        buttons=[ButtonMessage(channel="D1", ts="1.2", kind="page", ref=incident_id, outcome="ack", closed=True)],
        runbooks=[RunbookRun(run_id=f"{incident_id}-runbook-1", runbook="rollback", title="Roll back", by="bob",
                             started_at=T0 + timedelta(minutes=10), status=RunStatus.succeeded)],
        runbook_runs=1, public=PublicState(components=["api"], last_status="resolved"),
        postmortem_link="https://docs.example.com/pm/1")


def record(incident_id: str = "incident-20260302-0900-checkout", version: int = 7, declared_at: datetime = T0,
           service: str | None = "checkout", severity: str = "SEV2", with_state: bool = True,
           **extra: object) -> ArchivedIncident:
    base: dict[str, object] = dict(
        id=incident_id, title="Checkout 5xx", service=service, severity=severity, phase="closed", source="alert",
        declared_at=declared_at, declared_by="alertmanager", detected_at=declared_at - timedelta(minutes=3),
        acknowledged_at=declared_at + timedelta(minutes=4), mitigated_at=declared_at + timedelta(minutes=20),
        resolved_at=declared_at + timedelta(minutes=40), ended_at=declared_at + timedelta(hours=30),
        alert_rule="HighErrorRate", alert_rules=["HighErrorRate"], alerts=1, alert_notifications=12, pages=2,
        max_level=1, runbook_runs=1, internal_updates=3, version=version, archived_at=declared_at + timedelta(hours=30),
        state=full_state(incident_id, version) if with_state else None)
    return ArchivedIncident.model_validate(base | extra)


def item(aid: str, incident_id: str = "incident-20260302-0900-checkout", **extra: object) -> ActionItem:
    base: dict[str, object] = dict(aid=aid, incident_id=incident_id, text="Alert on queue depth", owner="bob",
                                   due=date(2026, 3, 9), priority=Priority.P1, kind=ItemKind.detect,
                                   created_at=T0 + timedelta(days=1), created_by="alice", source="postmortem")
    return ActionItem.model_validate(base | extra)


def row_count(store: RecordStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(archived_incidents)).scalar_one())


# ------------------------------------------------------------------------------------- migration


def test_the_archive_migration_upgrades_a_subscribers_database_and_keeps_it(url: str, tmp_path: Path) -> None:
    only_0001 = tmp_path / "migrations-0001"
    shutil.copytree(MIGRATIONS, only_0001, ignore=shutil.ignore_patterns("__pycache__", "0002_*"))
    engine = make_engine(url)
    try:
        migrate(engine, only_0001)
        assert current_revision(engine) == "0001"
        before = RecordStore(engine)
        tokens = before.subscribers.subscribe("kept@example.com", ["api"])
        assert before.subscribers.confirm(tokens.confirm_token) is not None
        migrate(engine)
        migrate(engine)  # every start runs it
        assert current_revision(engine) == "0002"
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == [], f"schema.py and the migrations disagree: {diff}"
        after = RecordStore(engine)
        assert [r.email for b in after.subscribers.confirmed_for(["api"]) for r in b] == ["kept@example.com"]
        assert after.archive.put_incident(record())
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------------- incidents


def test_a_record_round_trips_whole_with_its_state(store: RecordStore) -> None:
    original = record()
    assert store.archive.put_incident(original)
    got = store.archive.get(original.id)
    assert got == original
    assert got is not None and got.state is not None
    assert got.state.timeline[-1].text == "event 7" and got.state.alerts["fp1"].count == 12
    assert got.state.runbooks[0].status is RunStatus.succeeded and got.state.roles[Role.lead] == "bob"
    assert store.archive.get("incident-unknown") is None


def test_the_same_record_twice_writes_one_row(store: RecordStore) -> None:
    assert store.archive.put_incident(record())
    assert store.archive.put_incident(record())  # a retried activity: same version, same row
    assert row_count(store) == 1
    assert store.archive.get(record().id) == record()


def test_an_older_version_never_replaces_a_newer_one(store: RecordStore) -> None:
    newer = record(version=12, phase="closed", title="Reopened and closed again")
    older = record(version=7, phase="resolved", title="First close")
    assert store.archive.put_incident(older)
    assert store.archive.put_incident(newer)  # the reopen's newer record replaces it
    assert not store.archive.put_incident(older)  # a late retry of the first write: ignored
    got = store.archive.get(newer.id)
    assert got is not None and got.version == 12 and got.title == "Reopened and closed again"
    assert [r.phase for r in store.archive.rows()] == ["closed"] and row_count(store) == 1


def test_concurrent_puts_of_one_record_write_one_row(store: RecordStore) -> None:
    results: list[bool] = []
    errors: list[BaseException] = []

    def put(version: int) -> None:
        try:
            results.append(store.archive.put_incident(record(version=version)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(7 + i % 2,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 8 and any(results)
    assert row_count(store) == 1
    got = store.archive.get(record().id)
    assert got is not None and got.version == 8


# ------------------------------------------------------------------------------------- postmortems, actions


def test_a_postmortem_archived_before_or_after_its_incident_is_merged(store: RecordStore) -> None:
    early, late = record("incident-a"), record("incident-b", declared_at=T0 + timedelta(hours=1))
    store.archive.put_postmortem("incident-a", "https://docs/pm/a", "draft", "# Draft", None, [])
    store.archive.put_incident(early)
    store.archive.put_incident(late)
    store.archive.put_postmortem("incident-b", "https://docs/pm/b", "published", "# Final",
                                 T0 + timedelta(days=3), [{"action": "Alert on queue depth", "owner": "bob"}])
    a, b = store.archive.get("incident-a"), store.archive.get("incident-b")
    assert a is not None and (a.postmortem_link, a.postmortem_status, a.postmortem_text) == (
        "https://docs/pm/a", "draft", "# Draft")
    assert b is not None and (b.postmortem_status, b.postmortem_text) == ("published", "# Final")
    assert b.state is not None
    store.archive.put_postmortem("incident-a", "https://docs/pm/a", "published", "# Published", T0, [])
    listed = {r.id: r for r in store.archive.list(ArchiveQuery())}
    assert listed["incident-a"].postmortem_status == "published" and listed["incident-a"].state is None
    pm = store.archive.postmortem("incident-b")
    assert pm is not None and pm.items == [{"action": "Alert on queue depth", "owner": "bob"}]
    assert pm.published_at == T0 + timedelta(days=3) and pm.published_at.tzinfo is not None
    assert store.archive.postmortem("incident-c") is None


def test_action_items_are_upserted_by_aid_and_read_back_per_incident(store: RecordStore) -> None:
    store.archive.put_action(item("ai-aaaaaaaa"), team="payments")
    store.archive.put_action(item("ai-bbbbbbbb", created_at=T0 + timedelta(days=2)), team=None)
    store.archive.put_action(item("ai-cccccccc", incident_id="incident-other"), team="search")
    done = item("ai-aaaaaaaa", status=ItemStatus.done, closed_at=T0 + timedelta(days=5, hours=2),
                closed_by="bob", history=["done by bob"])
    store.archive.put_action(done, team="payments")
    store.archive.put_action(done, team="payments")  # a retry
    assert store.archive.actions_of("incident-20260302-0900-checkout") == [
        done, item("ai-bbbbbbbb", created_at=T0 + timedelta(days=2))]
    assert store.archive.actions_of("incident-none") == []
    rows = {r.aid: r for r in store.archive.action_rows()}
    assert rows["ai-aaaaaaaa"] == ActionItemRow(
        "ai-aaaaaaaa", "incident-20260302-0900-checkout", "bob", "payments", "done", date(2026, 3, 9),
        T0 + timedelta(days=1), T0 + timedelta(days=5, hours=2), "P1")
    assert rows["ai-bbbbbbbb"].team is None and rows["ai-bbbbbbbb"].closed_at is None
    assert rows["ai-cccccccc"].status == "open" and len(rows) == 3


# ------------------------------------------------------------------------------------- reads for lists and reports


def seed(store: RecordStore) -> list[ArchivedIncident]:
    """Six incidents over three days, two services, three severities."""
    made = [record(f"incident-{i}", declared_at=T0 + timedelta(hours=12 * i), service=("checkout", "search")[i % 2],
                   severity=("SEV1", "SEV2", "SEV3")[i % 3], stood_down=i == 5) for i in range(6)]
    for r in made:
        store.archive.put_incident(r)
    return made


def test_list_rows_ids_and_export_filter_alike_and_read_newest_first(store: RecordStore) -> None:
    made = seed(store)
    newest_first = [r.id for r in reversed(made)]
    assert [r.id for r in store.archive.list(ArchiveQuery())] == newest_first
    assert [r.id for r in store.archive.rows()] == newest_first
    assert [r.id for r in store.archive.export(ArchiveQuery())] == newest_first
    window = ArchiveQuery(since=T0 + timedelta(hours=12), until=T0 + timedelta(hours=48))  # [since, until)
    assert [r.id for r in store.archive.list(window)] == ["incident-3", "incident-2", "incident-1"]
    assert store.archive.ids(window) == {"incident-1", "incident-2", "incident-3"}
    checkout = ArchiveQuery(service="checkout", severity="sev1")  # spelled as people type it
    assert [r.id for r in store.archive.rows(checkout)] == ["incident-0"]
    assert [r.id for r in store.archive.rows(ArchiveQuery(service="search"))] == ["incident-5", "incident-3",
                                                                                 "incident-1"]
    assert [r.id for r in store.archive.list(ArchiveQuery(limit=2))] == newest_first[:2]
    assert [r.id for r in store.archive.rows(ArchiveQuery(service="checkout", limit=2))] == ["incident-4", "incident-2"]
    assert store.archive.ids(ArchiveQuery(severity="SEV4")) == set()
    assert all(r.state is None for r in store.archive.list(ArchiveQuery()))


def test_export_streams_every_record_with_its_state_in_batches(url: str) -> None:
    engine = make_engine(url)
    migrate(engine)
    store = RecordStore(engine)
    store.archive._batch = 2  # five batches for the ten records below, the last one partial
    same_time = [record(f"incident-{i:02}", declared_at=T0 + timedelta(hours=i // 3)) for i in range(9)]
    for r in same_time:  # three per declared_at: the batches' keyset must not skip or repeat ties
        store.archive.put_incident(r)
    exported = list(store.archive.export(ArchiveQuery()))
    assert [r.id for r in exported] == [r.id for r in sorted(same_time, key=lambda r: (r.declared_at, r.id),
                                                             reverse=True)]
    assert all(r.state is not None and r.state.id == r.id for r in exported)
    assert [r.id for r in store.archive.export(ArchiveQuery(limit=5))] == [r.id for r in exported[:5]]
    assert [r.id for r in store.archive.export(ArchiveQuery(since=T0 + timedelta(hours=2)))] == [
        "incident-08", "incident-07", "incident-06"]
    engine.dispose()


def test_rows_carry_the_report_columns_in_utc(store: RecordStore) -> None:
    local = record("incident-local", declared_at=datetime(2026, 3, 2, 11, 0, tzinfo=PLUS2), stood_down=True,
                   acknowledged_at=None, mitigated_at=None, max_level=None)  # 09:00 UTC
    store.archive.put_incident(local)
    (row,) = store.archive.rows()
    assert row == IncidentRow(
        id="incident-local", service="checkout", severity="SEV2", source="alert", declared_at=T0,
        detected_at=T0 - timedelta(minutes=3), acknowledged_at=None, mitigated_at=None,
        resolved_at=T0 + timedelta(minutes=40), ended_at=T0 + timedelta(hours=30), stood_down=True,
        alert_rule="HighErrorRate", alert_notifications=12, pages=2, max_level=None, phase="closed")
    moments = [row.declared_at, row.detected_at, row.resolved_at, row.ended_at]
    assert all(m is not None and m.utcoffset() == timedelta(0) for m in moments)
    got = store.archive.get("incident-local")
    assert got is not None and got.declared_at == T0 and got.declared_at.utcoffset() == timedelta(0)
    listed = store.archive.list(ArchiveQuery())[0]
    assert listed.archived_at.utcoffset() == timedelta(0)
    # a window given in another zone means the same instants
    assert store.archive.ids(ArchiveQuery(since=datetime(2026, 3, 2, 11, 0, tzinfo=PLUS2))) == {"incident-local"}
    assert store.archive.ids(ArchiveQuery(until=datetime(2026, 3, 2, 11, 0, tzinfo=PLUS2))) == set()


def test_rows_are_utc_whatever_the_postgres_session_zone(request: pytest.FixtureRequest) -> None:
    database = str(request.getfixturevalue("postgres_url"))
    engine = make_engine(database)
    migrate(engine)
    with engine.begin() as conn:
        name = conn.execute(text("select current_database()")).scalar_one()
        conn.execute(text(f'ALTER DATABASE "{name}" SET timezone TO \'America/New_York\''))
    engine.dispose()
    engine = make_engine(database)
    store = RecordStore(engine)
    store.archive.put_incident(record())
    (row,) = store.archive.rows()
    assert row.declared_at == T0 and row.declared_at.utcoffset() == timedelta(0)
    assert row.detected_at is not None and row.detected_at.utcoffset() == timedelta(0)
    store.archive.put_action(item("ai-aaaaaaaa"), team=None)
    assert store.archive.action_rows()[0].created_at.utcoffset() == timedelta(0)
    engine.dispose()


def test_reading_rows_leaves_the_garbage_collector_as_it_was(store: RecordStore) -> None:
    seed(store)
    store.archive.put_action(item("ai-aaaaaaaa"), team=None)
    assert gc.isenabled()
    assert len(store.archive.rows()) == 6 and len(store.archive.action_rows()) == 1
    assert gc.isenabled()  # paused only while the rows were built
    gc.disable()
    try:
        store.archive.rows()
        store.archive.action_rows()
        assert not gc.isenabled()  # someone else's choice stays
    finally:
        gc.enable()
