"""The incident archive: closed incidents' records, their postmortems and action items.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _at(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "archived_incidents",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("service", sa.String(200), nullable=True),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        _at("declared_at", nullable=False),
        sa.Column("declared_by", sa.Text(), nullable=False),
        _at("detected_at"), _at("acknowledged_at"), _at("mitigated_at"), _at("resolved_at"), _at("ended_at"),
        sa.Column("stood_down", sa.Boolean(), nullable=False),
        sa.Column("alert_rule", sa.Text(), nullable=True),
        sa.Column("alert_notifications", sa.Integer(), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("max_level", sa.Integer(), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        _at("archived_at", nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_archived_incidents"),
    )
    op.create_index("ix_archived_incidents_declared_at", "archived_incidents", ["declared_at"])
    op.create_index("ix_archived_incidents_service_declared_at", "archived_incidents", ["service", "declared_at"])
    op.create_index("ix_archived_incidents_severity", "archived_incidents", ["severity"])
    op.create_table(
        "archived_postmortems",
        sa.Column("incident_id", sa.String(200), nullable=False),
        sa.Column("link", sa.Text(), nullable=True),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        _at("published_at"),
        sa.Column("items", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", name="pk_archived_postmortems"),
    )
    op.create_table(
        "archived_action_items",
        sa.Column("aid", sa.String(32), nullable=False),
        sa.Column("incident_id", sa.String(200), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("team", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("due", sa.Date(), nullable=False),
        sa.Column("priority", sa.String(8), nullable=False),
        _at("created_at", nullable=False), _at("closed_at"),
        sa.Column("record", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("aid", name="pk_archived_action_items"),
    )
    op.create_index("ix_archived_action_items_incident_id", "archived_action_items", ["incident_id"])


def downgrade() -> None:
    op.drop_table("archived_action_items")
    op.drop_table("archived_postmortems")
    op.drop_table("archived_incidents")
