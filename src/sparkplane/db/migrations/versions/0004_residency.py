"""Residency (which model sits in which device's memory) and device history.

Revision ID: 0004_residency
Revises: 0003_jobs
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_residency"
down_revision = "0003_jobs"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "residency",
        sa.Column("device_id", sa.String(32), primary_key=True),
        sa.Column("model", sa.String(300), primary_key=True),
        sa.Column("bytes", BIGINT, nullable=False, server_default="0"),
        sa.Column("source", sa.String(20), nullable=False, server_default="engine"),
        sa.Column("seen_at", WHEN, nullable=False),
    )
    op.create_table(
        "device_events",
        sa.Column("seq", BIGINT, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(32), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("model", sa.String(300), nullable=False, server_default=""),
        sa.Column("bytes", BIGINT, nullable=False, server_default="0"),
        sa.Column("seconds", sa.Float, nullable=True),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_device_events_device", "device_events", ["device_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_device_events_device", table_name="device_events")
    op.drop_table("device_events")
    op.drop_table("residency")
