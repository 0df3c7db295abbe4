"""Audit entries named once and for all: `entry_id`, unique.

A batch written again after its commit acknowledgement was lost, or replayed
from the local journal after a restart, carries the same ids; the appender
skips those already stored, and the unique index refuses any that slip by.
Existing entries keep a null id (not part of any hash: the chains are as before).

Revision ID: 0007_audit_entry_id
Revises: 0006_nodes
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_audit_entry_id"
down_revision = "0006_nodes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("entry_id", sa.String(32), nullable=True))
        batch.create_unique_constraint("uq_audit_log_entry_id", ["entry_id"])


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_constraint("uq_audit_log_entry_id", type_="unique")
        batch.drop_column("entry_id")
