"""The records store: what incidentflow keeps outside Temporal (status page subscribers and the
deliveries ledger; the incident archive), in SQLite or PostgreSQL.

    store = RecordStore.open(database_url(settings.data_dir))   # migrates, then connects
    tokens = store.subscribers.subscribe("alice@example.com", ["api"])
    store.archive.put_incident(record)                          # an ArchivedIncident

Importing this package loads SQLAlchemy: modules the workflows import must not."""

from __future__ import annotations

from sqlalchemy import Engine

from activities.records.archive import ArchivedPostmortem, ArchiveStore
from activities.records.engine import current_revision, database_url, make_engine, migrate, normalize_url
from activities.records.subscribers import Confirmed, Recipient, SubscriberStore, SubscribeTokens

__all__ = ["ArchiveStore", "ArchivedPostmortem", "Confirmed", "Recipient", "RecordStore", "SubscribeTokens", "SubscriberStore", "current_revision",
           "database_url", "make_engine", "migrate", "normalize_url"]


class RecordStore:
    """One engine for every kind of record; each feature's API is a view over it."""

    def __init__(self, engine: Engine, subscriber_key: bytes | None = None) -> None:
        self.engine = engine
        self.subscribers = SubscriberStore(engine, key=subscriber_key)
        self.archive = ArchiveStore(engine)

    @classmethod
    def open(cls, url: str, subscriber_key: bytes | None = None) -> RecordStore:
        """Connect and migrate to the newest revision (run at start; safe when several processes start)."""
        engine = make_engine(url)
        migrate(engine)
        return cls(engine, subscriber_key)

    def close(self) -> None:
        self.engine.dispose()
