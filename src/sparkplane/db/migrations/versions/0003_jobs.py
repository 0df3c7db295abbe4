"""Workflow jobs, their attempts, uploads and artifacts.

Revision ID: 0003_jobs
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_jobs"
down_revision = "0002"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("seq", BIGINT, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(32), nullable=False, unique=True),
        sa.Column("prompt_id", sa.String(200), nullable=False),
        sa.Column("tenant_id", sa.String(32), nullable=False, server_default=""),
        sa.Column("key_id", sa.String(32), nullable=False, server_default=""),
        sa.Column("client_id", sa.String(200), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("number", sa.Float, nullable=False, server_default="0"),
        sa.Column("status", sa.String(20), nullable=False, server_default="queued"),
        sa.Column("prompt", sa.JSON, nullable=False),
        sa.Column("extra_data", sa.JSON, nullable=False),
        sa.Column("secrets", sa.JSON, nullable=False),
        sa.Column("outputs", sa.JSON, nullable=False),
        sa.Column("node_errors", sa.JSON, nullable=False),
        sa.Column("signature", sa.String(64), nullable=False, server_default=""),
        sa.Column("policy", sa.JSON, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        sa.Column("lease_until", WHEN, nullable=True),
        sa.Column("device", sa.String(100), nullable=True),
        sa.Column("device_prompt_id", sa.String(64), nullable=True),
        sa.Column("resume", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("started_at", WHEN, nullable=True),
        sa.Column("executing_at", WHEN, nullable=True),
        sa.Column("ended_at", WHEN, nullable=True),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("history_hidden", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.UniqueConstraint("tenant_id", "prompt_id", name="uq_jobs_tenant_prompt"),
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_jobs_tenant_idempotency"),
    )
    op.create_index("ix_jobs_queue", "jobs", ["status", "number", "seq"])
    op.create_index("ix_jobs_tenant_id", "jobs", ["tenant_id"])
    op.create_index("ix_jobs_ended_at", "jobs", ["ended_at"])
    op.create_table(
        "job_attempts",
        sa.Column("id", BIGINT, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("device", sa.String(100), nullable=False),
        sa.Column("device_prompt_id", sa.String(64), nullable=False),
        sa.Column("worker", sa.String(100), nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("ended_at", WHEN, nullable=True),
        sa.Column("outcome", sa.String(30), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.UniqueConstraint("job_id", "attempt", name="uq_job_attempts"),
    )
    op.create_index("ix_job_attempts_job_id", "job_attempts", ["job_id"])
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False, server_default=""),
        sa.Column("key_id", sa.String(32), nullable=False, server_default=""),
        sa.Column("type", sa.String(10), nullable=False),
        sa.Column("subfolder", sa.String(255), nullable=False, server_default=""),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", BIGINT, nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.UniqueConstraint("tenant_id", "type", "subfolder", "name", name="uq_uploads_name"),
    )
    op.create_index("ix_uploads_created_at", "uploads", ["created_at"])
    op.create_table(
        "artifacts",
        sa.Column("id", BIGINT, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(32), nullable=False, server_default=""),
        sa.Column("key_id", sa.String(32), nullable=False, server_default=""),
        sa.Column("node_id", sa.String(100), nullable=False),
        sa.Column("type", sa.String(10), nullable=False),
        sa.Column("subfolder", sa.String(300), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("size", BIGINT, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.create_index("ix_artifacts_job_id", "artifacts", ["job_id"])


def downgrade() -> None:
    op.drop_table("artifacts")
    op.drop_table("uploads")
    op.drop_table("job_attempts")
    op.drop_table("jobs")
