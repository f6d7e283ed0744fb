"""The records store (activities/records) on SQLite and on a real PostgreSQL (tests/pg.py): migrations,
subscribers with double opt-in, component filters, the deliveries ledger, tokens kept only as digests."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text

from activities.records import (
    RecordStore,
    current_revision,
    database_url,
    make_engine,
    migrate,
    normalize_url,
)
from activities.records.engine import MIGRATIONS
from activities.records.schema import metadata, subscribers
from activities.records.subscribers import SubscriberStore
from domain.statuspage.mail import token_digest
from tests.pg import postgres_server, postgres_url  # noqa: F401  (fixtures)

HEAD = "0002"  # the newest migration shipped (0002: the incident archive)


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


def confirmed(store: RecordStore, email: str, components: list[str] | None = None) -> int:
    tokens = store.subscribers.subscribe(email, components or [])
    assert store.subscribers.confirm(tokens.confirm_token) is not None
    return tokens.subscriber_id


# ------------------------------------------------------------------------------------- configuration


def test_the_default_database_is_a_sqlite_file_in_the_data_dir_and_the_env_overrides_it(tmp_path: Path) -> None:
    assert database_url(tmp_path / "d", environ={}) == f"sqlite:///{tmp_path}/d/records.db"
    assert database_url(".incidentflow", environ={}) == "sqlite:///.incidentflow/records.db"
    env = {"INCIDENTFLOW_DATABASE_URL": "postgres://u:pw@db:5432/incidents"}
    assert database_url(tmp_path, environ=env) == "postgresql+psycopg://u:pw@db:5432/incidents"
    assert database_url(tmp_path, configured="postgresql://u@db/x", environ=env) == "postgresql+psycopg://u@db/x"


def test_a_wrong_database_url_is_named_and_its_password_is_not_shown() -> None:
    with pytest.raises(ValueError, match="INCIDENTFLOW_DATABASE_URL: .*only sqlite and postgresql") as err:
        normalize_url("mysql://root:hunter2@db/x")
    assert "hunter2" not in str(err.value)
    with pytest.raises(ValueError, match="psycopg driver"):
        normalize_url("postgresql+psycopg2://u:hunter2@db/x")
    with pytest.raises(ValueError, match="not a database URL"):
        normalize_url("not a url")


# ------------------------------------------------------------------------------------- migrations


def test_migrations_create_the_schema_the_code_uses_and_rerun_harmlessly(url: str) -> None:
    migrate(url)
    migrate(url)  # every start runs it
    engine = make_engine(url)
    try:
        assert current_revision(engine) == HEAD
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == [], f"schema.py and the migrations disagree: {diff}"
    finally:
        engine.dispose()


def test_concurrent_starts_migrate_once(url: str) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            migrate(url)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    engine = make_engine(url)
    assert current_revision(engine) == HEAD
    engine.dispose()


def test_a_later_feature_adds_its_table_in_a_new_migration_and_keeps_the_data(url: str, tmp_path: Path) -> None:
    store = RecordStore.open(url)
    kept = confirmed(store, "kept@example.com", ["api"])
    store.close()
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    (migrations / "versions" / "0999_postmortems.py").write_text(
        '"""A later feature."""\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        f'revision = "0999"\ndown_revision = "{HEAD}"\nbranch_labels = None\ndepends_on = None\n\n\n'
        'def upgrade() -> None:\n'
        '    op.create_table("postmortems", sa.Column("id", sa.String(200), primary_key=True),\n'
        '                    sa.Column("body", sa.Text(), nullable=False))\n\n\n'
        'def downgrade() -> None:\n    op.drop_table("postmortems")\n')
    migrate(url, migrations)
    engine = make_engine(url)
    try:
        assert current_revision(engine) == "0999"
        assert "postmortems" in inspect(engine).get_table_names()
        store = RecordStore(engine)
        assert [r.subscriber_id for b in store.subscribers.confirmed_for(["api"]) for r in b] == [kept]
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------------- subscribing


def test_an_address_is_one_subscriber_whatever_its_case(store: RecordStore) -> None:
    first = store.subscribers.subscribe("Alice@Example.COM", ["api"])
    again = store.subscribers.subscribe("  alice@example.com ", ["web"])
    assert again.subscriber_id == first.subscriber_id and not again.already_confirmed
    assert store.subscribers.confirm(first.confirm_token) is None  # superseded by the newer link
    done = store.subscribers.confirm(again.confirm_token)
    assert done is not None and done.components == ("web",) and done.email == "Alice@Example.COM"
    assert store.subscribers.confirm(again.confirm_token) is None  # used
    with store.engine.connect() as conn:
        assert conn.execute(select(subscribers.c.id)).scalars().all() == [first.subscriber_id]


def test_only_confirmed_addresses_are_mailed(store: RecordStore) -> None:
    pending = store.subscribers.subscribe("pending@example.com")
    yes = confirmed(store, "yes@example.com")
    assert [r.subscriber_id for b in store.subscribers.confirmed_for([]) for r in b] == [yes]
    assert pending.subscriber_id != yes


def test_a_confirmed_address_keeps_its_components_until_the_change_is_confirmed(store: RecordStore) -> None:
    sid = confirmed(store, "bob@example.com", ["api"])
    change = store.subscribers.subscribe("BOB@example.com", [])
    assert change.already_confirmed
    assert [r.components for b in store.subscribers.confirmed_for([]) for r in b] == [("api",)]
    assert [r.subscriber_id for b in store.subscribers.confirmed_for(["web"]) for r in b] == []
    assert store.subscribers.confirm(change.confirm_token) is not None
    assert [r.subscriber_id for b in store.subscribers.confirmed_for(["web"]) for r in b] == [sid]


def test_a_confirm_link_expires(url: str) -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    engine = make_engine(url)
    migrate(engine)
    subs = SubscriberStore(engine, clock=lambda: now[0], confirm_ttl=timedelta(days=7))
    tokens = subs.subscribe("late@example.com")
    now[0] += timedelta(days=8)
    assert subs.confirm(tokens.confirm_token) is None
    assert subs.prune() == (1, 0)  # the never-confirmed address is forgotten
    engine.dispose()


def test_unsubscribe_forgets_the_address_and_its_deliveries(store: RecordStore) -> None:
    tokens = store.subscribers.subscribe("carol@example.com", ["api"])
    store.subscribers.confirm(tokens.confirm_token)
    store.subscribers.mark_sent("n-1", [tokens.subscriber_id])
    assert store.subscribers.unsubscribe(tokens.unsubscribe_token)
    assert not store.subscribers.unsubscribe(tokens.unsubscribe_token)
    with store.engine.connect() as conn:
        assert conn.execute(text("select count(*) from deliveries")).scalar_one() == 0
        assert conn.execute(text("select count(*) from subscriber_components")).scalar_one() == 0
    again = store.subscribers.subscribe("carol@example.com")
    assert again.subscriber_id != tokens.subscriber_id and again.unsubscribe_token != tokens.unsubscribe_token


def test_tokens_are_stored_only_as_digests(store: RecordStore) -> None:
    tokens = store.subscribers.subscribe("dave@example.com", ["api"])
    with store.engine.connect() as conn:
        dump = repr([conn.execute(select(t)).all() for t in metadata.sorted_tables])
    assert tokens.confirm_token not in dump and tokens.unsubscribe_token not in dump
    assert token_digest(tokens.confirm_token) in dump and token_digest(tokens.unsubscribe_token) in dump


def test_the_unsubscribe_link_in_mail_is_derived_and_follows_a_key_change(url: str) -> None:
    engine = make_engine(url)
    migrate(engine)
    old = SubscriberStore(engine, key=b"k" * 32)
    sid = old.subscribe("erin@example.com").subscriber_id
    old.confirm_digest(token_digest(old.subscribe("erin@example.com").confirm_token))
    (mailed,) = next(old.confirmed_for([]))
    assert mailed.subscriber_id == sid
    new = SubscriberStore(engine, key=b"n" * 32)
    (remailed,) = next(new.confirmed_for([]))
    assert remailed.unsubscribe_token != mailed.unsubscribe_token
    assert not new.unsubscribe(mailed.unsubscribe_token)  # the old key's links stop working
    assert new.unsubscribe(remailed.unsubscribe_token)
    engine.dispose()


def test_the_store_keeps_its_own_key_when_none_is_configured(url: str) -> None:
    a, b = RecordStore.open(url), RecordStore.open(url)  # two workers on one database
    a.subscribers.confirm(a.subscribers.subscribe("fay@example.com").confirm_token)
    (from_a,) = next(a.subscribers.confirmed_for([]))
    (from_b,) = next(b.subscribers.confirmed_for([]))
    assert from_a.unsubscribe_token == from_b.unsubscribe_token
    assert b.subscribers.unsubscribe(from_a.unsubscribe_token)
    a.close()
    b.close()


def test_concurrent_subscribes_of_one_address_make_one_subscriber(store: RecordStore) -> None:
    results: list[int] = []

    def go(email: str) -> None:
        results.append(store.subscribers.subscribe(email).subscriber_id)

    threads = [threading.Thread(target=go, args=(f"{'G' if i % 2 else 'g'}race@example.com",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len(set(results)) == 1


@pytest.mark.parametrize("email", ["", "no-at-sign", "a@b", "a@@b.com", "a b@c.com", "a@-x.com", "a@x.com\r\nBcc: x",
                                   ".a@b.com", "a..b@c.com", "x" * 250 + "@b.com"])
def test_bad_addresses_are_refused_naming_the_field(store: RecordStore, email: str) -> None:
    with pytest.raises(ValueError, match="^email: "):
        store.subscribers.subscribe(email)


# ------------------------------------------------------------------------------------- fan-out reads


def test_component_filters_select_the_recipients_in_batches_by_id(store: RecordStore) -> None:
    api = [confirmed(store, f"api{i}@example.com", ["api"]) for i in range(5)]
    web = [confirmed(store, f"web{i}@example.com", ["web", "db"]) for i in range(5)]
    everything = [confirmed(store, f"all{i}@example.com") for i in range(5)]
    batches = list(store.subscribers.confirmed_for(["api"], batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    ids = [r.subscriber_id for b in batches for r in b]
    assert ids == sorted(api + everything)
    assert sorted(r.subscriber_id for b in store.subscribers.confirmed_for(["db", "api"]) for r in b) == sorted(
        api + web + everything)
    assert len([r for b in store.subscribers.confirmed_for([]) for r in b]) == 15
    resumed = [r.subscriber_id for b in store.subscribers.confirmed_for(["api"], after_id=ids[4]) for r in b]
    assert resumed == ids[5:]
    assert next(store.subscribers.confirmed_for(["web"]))[0].components == ("db", "web")
    assert store.subscribers.count_confirmed() == 15


def test_the_ledger_records_each_delivery_once(store: RecordStore) -> None:
    a, b = confirmed(store, "a@example.com"), confirmed(store, "b@example.com")
    store.subscribers.mark_sent("incident-1:public:1", [a])
    store.subscribers.mark_sent("incident-1:public:1", [a, b])  # a retry records a again: ignored
    store.subscribers.mark_sent("incident-1:public:1", [999_999])  # unsubscribed meanwhile: skipped
    assert store.subscribers.already_sent("incident-1:public:1", [a, b, 7]) == {a, b}
    assert store.subscribers.already_sent("incident-1:public:2", [a, b]) == set()
    assert store.subscribers.prune(deliveries_older_than=timedelta(0)) == (0, 2)
