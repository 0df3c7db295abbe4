"""Node agent: join tokens, nodes, deployments; where a usage record's energy came from.

Revision ID: 0006_nodes
Revises: 0005_tenant_scopes
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_nodes"
down_revision = "0005_tenant_scopes"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "join_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("note", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("revoked_at", WHEN, nullable=True),
        sa.Column("uses", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("agent_key", sa.Text, nullable=False),
        sa.Column("token_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="online"),
        sa.Column("hardware", sa.JSON, nullable=False),
        sa.Column("models", sa.JSON, nullable=False),
        sa.Column("joined_at", WHEN, nullable=False),
        sa.Column("last_seen", WHEN, nullable=False),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("node_id", sa.String(32), nullable=False),
        sa.Column("model", sa.String(1000), nullable=False),
        sa.Column("served_name", sa.String(300), nullable=False),
        sa.Column("engine", sa.String(20), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("need_bytes", BIGINT, nullable=True),
        sa.Column("state", sa.String(20), nullable=False, server_default="starting"),
        sa.Column("port", sa.Integer, nullable=True),
        sa.Column("restarts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("device_name", sa.String(100), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.UniqueConstraint("node_id", "name", name="uq_deployments_node_name"),
    )
    op.create_index("ix_deployments_node_id", "deployments", ["node_id"])
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(
            sa.Column("energy_source", sa.String(20), nullable=False, server_default="none")
        )


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("energy_source")
    op.drop_index("ix_deployments_node_id", table_name="deployments")
    op.drop_table("deployments")
    op.drop_table("nodes")
    op.drop_table("join_tokens")
