"""Table definitions. Schema changes go through a new Alembic migration."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """Timezone-aware now, the only clock the tables use."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps that always come back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    """Declarative base for all sparkplane tables."""


class DeviceRow(Base):
    """A registered device (one engine endpoint) and its last probe result."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    url: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(20))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    off_prem: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # A cloud provider's key; never shown in listings, logs or errors.
    api_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Last probe, written by the health loop so every replica and the CLI see it.
    health: Mapped[str] = mapped_column(String(20), default="unknown")
    models: Mapped[list[str]] = mapped_column(JSON, default=list)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    engine_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    probed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ResidencyRow(Base):
    """A model in a device's memory, as last seen (written by the health loop)."""

    __tablename__ = "residency"

    device_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(300), primary_key=True)
    bytes: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    source: Mapped[str] = mapped_column(String(20), default="engine")
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DeviceEventRow(Base):
    """A device's history: loads, evictions and their failures."""

    __tablename__ = "device_events"
    __table_args__ = (Index("ix_device_events_device", "device_id", "seq"),)

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    device_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    kind: Mapped[str] = mapped_column(String(20))
    model: Mapped[str] = mapped_column(String(300), default="")
    bytes: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")


class TenantRow(Base):
    """A client organisation: its policy, limits and prices."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prices: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ApiKeyRow(Base):
    """An API key: only its hash is kept; `id` is the public part of the key."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(32), ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[str] = mapped_column(String(20))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # "platform" (reaches every tenant) or "tenant" (only its own); see security/rbac.py.
    scope: Mapped[str] = mapped_column(String(20), default="tenant")
    # Written in batches off the request path (security/key_usage.py).
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The secret a rotation replaced, still accepted until `previous_until`.
    previous_secret_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    previous_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuditRow(Base):
    """One audit entry; `hash` covers the entry and the previous entry's hash.

    `tenant_id` is the tenant the entry concerns. Entries of one tenant form a
    second chain of their own (`tenant_seq`, `tenant_prev_hash`, `tenant_hash`),
    which that tenant can verify without seeing anyone else's entries.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_tenant_chain", "tenant_id", "tenant_seq", unique=True),
        UniqueConstraint("entry_id", name="uq_audit_log_entry_id"),
    )

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    action: Mapped[str] = mapped_column(String(60))
    tenant_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    tenant_seq: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), nullable=True
    )
    tenant_prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tenant_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Unique per entry (not hashed): a copy written again after a lost commit
    # acknowledgement or replayed from the journal is recognised and skipped.
    entry_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class UsageRow(Base):
    """Metered use: one row per inference request or job."""

    __tablename__ = "usage_records"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    tenant_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    kind: Mapped[str] = mapped_column(String(20))
    model: Mapped[str] = mapped_column(String(256))
    device: Mapped[str | None] = mapped_column(String(100), nullable=True)
    status: Mapped[int] = mapped_column(Integer)
    tokens_in: Mapped[int] = mapped_column(Integer, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, default=0)
    images: Mapped[int] = mapped_column(Integer, default=0)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    device_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    energy_wh: Mapped[float] = mapped_column(Float, default=0.0)
    # Where energy_wh came from: "measured" (the node's agent), "configured" (the
    # device's power figure), "planner" (its planner profile), "reported", "none".
    energy_source: Mapped[str] = mapped_column(String(20), default="none")
    estimated: Mapped[bool] = mapped_column(Boolean, default=False)


class JobRow(Base):
    """A workflow job (a ComfyUI prompt): stored before the client hears "ok".

    `attempts` is also the fencing token: only the attempt that holds the current
    number may record a result, so a late answer from a given-up attempt is ignored.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "prompt_id", name="uq_jobs_tenant_prompt"),
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_jobs_tenant_idempotency"),
        Index("ix_jobs_queue", "status", "number", "seq"),
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    id: Mapped[str] = mapped_column(String(32), unique=True)
    prompt_id: Mapped[str] = mapped_column(String(200))
    tenant_id: Mapped[str] = mapped_column(String(32), default="", index=True)
    key_id: Mapped[str] = mapped_column(String(32), default="")
    client_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    number: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    prompt: Mapped[dict[str, Any]] = mapped_column(JSON)
    extra_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Values the device needs but nobody may read back (ComfyUI's sensitive extra_data).
    secrets: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    outputs: Mapped[list[str]] = mapped_column(JSON, default=list)
    node_errors: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    signature: Mapped[str] = mapped_column(String(64), default="")
    # The tenant's placement policy when the job was submitted (allowed devices, off-prem).
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    device: Mapped[str | None] = mapped_column(String(100), nullable=True)
    device_prompt_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resume: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    executing_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    history_hidden: Mapped[bool] = mapped_column(Boolean, default=False)


class JobAttemptRow(Base):
    """One try of a job on one device: when, where, and how it ended."""

    __tablename__ = "job_attempts"
    __table_args__ = (UniqueConstraint("job_id", "attempt", name="uq_job_attempts"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    job_id: Mapped[str] = mapped_column(String(32), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(String(100))
    device_prompt_id: Mapped[str] = mapped_column(String(64))
    worker: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(30), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)


class UploadRow(Base):
    """A file a client uploaded (POST /upload/image), kept in the artifact store."""

    __tablename__ = "uploads"
    __table_args__ = (
        UniqueConstraint("tenant_id", "type", "subfolder", "name", name="uq_uploads_name"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(32), default="")
    key_id: Mapped[str] = mapped_column(String(32), default="")
    type: Mapped[str] = mapped_column(String(10))
    subfolder: Mapped[str] = mapped_column(String(255), default="")
    name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class ArtifactRow(Base):
    """An output file of a finished job, copied from the device into the artifact store."""

    __tablename__ = "artifacts"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    job_id: Mapped[str] = mapped_column(String(32), index=True)
    tenant_id: Mapped[str] = mapped_column(String(32), default="")
    key_id: Mapped[str] = mapped_column(String(32), default="")
    node_id: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(10))
    subfolder: Mapped[str] = mapped_column(String(300))
    filename: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(1000))
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
