"""Where the records live and how to reach them: the database URL, the engine, the migrations.

SQLite (a file under the data directory) by default; PostgreSQL when INCIDENTFLOW_DATABASE_URL says so.
The store is synchronous SQLAlchemy Core: activities call it through `asyncio.to_thread`, which keeps
one code path for both databases and needs no async driver."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

ENV = "INCIDENTFLOW_DATABASE_URL"
FILENAME = "records.db"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK = 0x1FC1D3F1  # pg_advisory_xact_lock key: two workers starting at once migrate one at a time


def database_url(data_dir: Path | str, configured: str | None = None,
                 environ: Mapping[str, str] | None = None) -> str:
    """The records database: `configured` (Settings), else $INCIDENTFLOW_DATABASE_URL, else a SQLite
    file in the data directory (`.incidentflow/records.db` by default)."""
    given = configured or (os.environ if environ is None else environ).get(ENV)
    if given:
        return normalize_url(given)
    return f"sqlite:///{Path(data_dir) / FILENAME}"


def normalize_url(url: str) -> str:
    """Accept the spellings people paste (postgres://, postgresql://) and pick the psycopg 3 driver;
    refuse anything but SQLite and PostgreSQL. Errors never show the password."""
    try:
        parsed = make_url(url.strip())
    except ArgumentError:
        raise ValueError(f"{ENV}: not a database URL (expected sqlite:///path or "
                         "postgresql+psycopg://user:password@host:5432/db)") from None
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        if parsed.drivername in ("postgres", "postgresql"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        elif parsed.drivername != "postgresql+psycopg":
            raise ValueError(f"{ENV}: use the psycopg driver (postgresql+psycopg://…), "
                             f"not {parsed.drivername}")
    elif backend != "sqlite":
        raise ValueError(f"{ENV}: {parsed.render_as_string(hide_password=True)}: only sqlite and "
                         "postgresql are supported")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    """An engine tuned per database. `hide_parameters`: errors and logs never carry addresses or digests."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return create_engine(parsed, hide_parameters=True, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _sqlite_engine(url: URL) -> Engine:
    memory = url.database in (None, "", ":memory:")
    if not memory:
        Path(str(url.database)).expanduser().parent.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {"poolclass": StaticPool} if memory else {}
    engine = create_engine(url, hide_parameters=True, connect_args={"timeout": 30, "check_same_thread": False},
                           **extra)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Transactions are ours (pysqlite's implicit ones commit DDL on their own and upgrade read locks
        # to write locks mid-transaction, which fails at once under contention instead of waiting).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("busy_timeout=30000", "synchronous=NORMAL", "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        _wal(cursor)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock up front: waits, never deadlocks

    return engine


def _wal(cursor: Any) -> None:
    """Switch the file to WAL. Several processes opening a new database at once race for the exclusive
    lock this takes, and SQLite answers "database is locked" there without waiting on busy_timeout:
    retry for a while (the winner's switch is persistent, so the others then find WAL and stop)."""
    import sqlite3
    import time

    for attempt in range(200):
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 199:
                raise
            time.sleep(0.05)


def migrate(url: str | Engine, migrations: Path = MIGRATIONS) -> None:
    """Bring the database to the newest revision (idempotent; run at every start). Concurrent starts
    on PostgreSQL take turns on an advisory lock; on SQLite the write lock does the same."""
    from alembic import command
    from alembic.config import Config

    engine = make_engine(url) if isinstance(url, str) else url
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            config = Config()
            config.set_main_option("script_location", str(migrations).replace("%", "%%"))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        if isinstance(url, str):
            engine.dispose()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
