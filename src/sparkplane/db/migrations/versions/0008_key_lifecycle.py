"""Key lifecycle: when each key was last used, and a rotated key's previous secret
accepted until the end of its overlap window.

`last_used_at` is written in batches off the request path (at most a
`key_usage` flush interval behind). `previous_secret_hash` and
`previous_until` hold the secret a rotation replaced while its overlap lasts.

Revision ID: 0008_key_lifecycle
Revises: 0007_audit_entry_id
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_key_lifecycle"
down_revision = "0007_audit_entry_id"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("last_used_at", WHEN, nullable=True))
        batch.add_column(sa.Column("previous_secret_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("previous_until", WHEN, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("previous_until")
        batch.drop_column("previous_secret_hash")
        batch.drop_column("last_used_at")
