"""The records store's tables, as SQLAlchemy Core metadata (the code's view; migrations own the DDL).

One `metadata` for every feature that keeps records; each feature adds its tables here and ships a
migration in `migrations/versions/` (0001: subscribers, 0002: the incident archive). Constraint names come
from the naming convention, so migrations (and SQLite's batch mode) can refer to them by name."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
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

# ------------------------------------------------------------------------------------- the incident archive
# One row per incident: the columns reports and lists filter and compute on, plus `record`, the whole
# ArchivedIncident as JSON (state included). `version` is the state's event sequence: an upsert never puts an
# older record over a newer one. Times are UTC (SQLite keeps them naive; the store adds the zone back).
archived_incidents = Table(
    "archived_incidents", metadata,
    Column("id", String(200), primary_key=True),
    Column("title", Text, nullable=False),
    Column("service", String(200), nullable=True),
    Column("severity", String(16), nullable=False),
    Column("phase", String(32), nullable=False),
    Column("source", String(32), nullable=False),
    Column("declared_at", DateTime(timezone=True), nullable=False),
    Column("declared_by", Text, nullable=False),
    Column("detected_at", DateTime(timezone=True), nullable=True),
    Column("acknowledged_at", DateTime(timezone=True), nullable=True),
    Column("mitigated_at", DateTime(timezone=True), nullable=True),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("stood_down", Boolean, nullable=False),
    Column("alert_rule", Text, nullable=True),
    Column("alert_notifications", Integer, nullable=False),
    Column("pages", Integer, nullable=False),
    Column("max_level", Integer, nullable=True),
    Column("version", BigInteger, nullable=False),
    Column("archived_at", DateTime(timezone=True), nullable=False),
    Column("record", Text, nullable=False),
    Index("ix_archived_incidents_declared_at", "declared_at"),
    Index("ix_archived_incidents_service_declared_at", "service", "declared_at"),
    Index("ix_archived_incidents_severity", "severity"),
)

# The postmortem of an archived incident, kept apart because it is written on its own schedule (published
# days after the incident closed, or drafted before it did). `items`: the action items table, as JSON.
archived_postmortems = Table(
    "archived_postmortems", metadata,
    Column("incident_id", String(200), primary_key=True),
    Column("link", Text, nullable=True),
    Column("status", String(32), nullable=True),
    Column("text", Text, nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Column("items", Text, nullable=False),
)

# Action items and their outcomes (no foreign key: an item may be archived before its incident's record).
archived_action_items = Table(
    "archived_action_items", metadata,
    Column("aid", String(32), primary_key=True),
    Column("incident_id", String(200), nullable=False, index=True),
    Column("owner", Text, nullable=False),
    Column("team", String(200), nullable=True),
    Column("status", String(16), nullable=False),
    Column("due", Date, nullable=False),
    Column("priority", String(8), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("record", Text, nullable=False),
)
