"""Status page subscribers, the deliveries ledger and the store's own keys.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_keys",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_store_keys"),
    )
    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("email_key", sa.String(254), nullable=False),
        sa.Column("pending_components", sa.String(4000), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirm_hash", sa.String(64), nullable=True),
        sa.Column("confirm_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unsubscribe_hash", sa.String(64), nullable=False),
        sa.Column("token_salt", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_subscribers"),
        sa.UniqueConstraint("email_key", name="uq_subscribers_email_key"),
        sa.UniqueConstraint("confirm_hash", name="uq_subscribers_confirm_hash"),
        sa.UniqueConstraint("unsubscribe_hash", name="uq_subscribers_unsubscribe_hash"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "subscriber_components",
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("component", sa.String(63), nullable=False),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE",
                                name="fk_subscriber_components_subscriber_id_subscribers"),
        sa.PrimaryKeyConstraint("subscriber_id", "component", name="pk_subscriber_components"),
    )
    op.create_index("ix_subscriber_components_component", "subscriber_components", ["component"])
    op.create_table(
        "deliveries",
        sa.Column("notification_id", sa.String(200), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE",
                                name="fk_deliveries_subscriber_id_subscribers"),
        sa.PrimaryKeyConstraint("notification_id", "subscriber_id", name="pk_deliveries"),
    )
    op.create_index("ix_deliveries_sent_at", "deliveries", ["sent_at"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("subscriber_components")
    op.drop_table("subscribers")
    op.drop_table("store_keys")
