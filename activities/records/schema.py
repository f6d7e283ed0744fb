"""The records store's tables, as SQLAlchemy Core metadata (the code's view; migrations own the DDL).

One `metadata` for every feature that keeps records: a later feature (the postmortem archive) adds its
tables to it in its own module and ships a migration in `migrations/versions/`. Constraint names come
from the naming convention, so migrations (and SQLite's batch mode) can refer to them by name."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

# Keys the store keeps for itself (the unsubscribe key, unless the configuration gives one).
store_keys = Table(
    "store_keys", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Public status page subscribers. `email_key` (the lower-cased address) makes the address unique
# whatever its case; tokens are kept only as SHA-256 digests. `pending_components` is what the last
# subscribe asked for, applied when its confirm link is used: "" = all components, NULL = nothing pending.
subscribers = Table(
    "subscribers", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(254), nullable=False),
    Column("email_key", String(254), nullable=False, unique=True),
    Column("pending_components", String(4000), nullable=True),
    Column("confirmed_at", DateTime(timezone=True), nullable=True),
    Column("confirm_hash", String(64), nullable=True, unique=True),
    Column("confirm_expires_at", DateTime(timezone=True), nullable=True),
    Column("unsubscribe_hash", String(64), nullable=False, unique=True),
    Column("token_salt", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,  # ids never come back after a delete: the deliveries ledger relies on it
)

# The components a confirmed subscriber gets mail about; none = all of them.
subscriber_components = Table(
    "subscriber_components", metadata,
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("component", String(63), nullable=False, index=True),
    PrimaryKeyConstraint("subscriber_id", "component"),
)

# Who got which notification: the primary key is what makes a retried fan-out skip everyone already mailed.
deliveries = Table(
    "deliveries", metadata,
    Column("notification_id", String(200), nullable=False),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False, index=True),
    Column("outcome", String(16), nullable=False),  # sent | refused (the server refused the address for good)
    PrimaryKeyConstraint("notification_id", "subscriber_id"),
)
