"""Tables of the node agent: join tokens, nodes and deployments.

Kept beside `db/models.py` (same declarative base) so the agent's schema has
one module of its own; changes go through an Alembic migration as always.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from sparkplane.db.models import Base, UTCDateTime, utcnow

BIGINT = BigInteger().with_variant(Integer, "sqlite")


class JoinTokenRow(Base):
    """A join token: only its hash is kept; `id` is the public part of the token."""

    __tablename__ = "join_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    uses: Mapped[int] = mapped_column(Integer, default=0)


class NodeRow(Base):
    """A machine running `sparkplane agent`: its credentials and last report."""

    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # The agent's own API, which the server calls to run and stop engines.
    url: Mapped[str] = mapped_column(String(500))
    # What the agent calls the server with (hashed) and what the server calls the
    # agent with (kept, like a device's API key, because it is sent on every call).
    key_hash: Mapped[str] = mapped_column(String(64))
    agent_key: Mapped[str] = mapped_column(Text)
    token_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(20), default="online")
    hardware: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    models: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DeploymentRow(Base):
    """An engine process the server asked a node to run, and what became of it."""

    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("node_id", "name", name="uq_deployments_node_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    node_id: Mapped[str] = mapped_column(String(32), index=True)
    model: Mapped[str] = mapped_column(String(1000))
    served_name: Mapped[str] = mapped_column(String(300))
    engine: Mapped[str] = mapped_column(String(20))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    need_bytes: Mapped[int | None] = mapped_column(BIGINT, nullable=True)
    state: Mapped[str] = mapped_column(String(20), default="starting")
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    device_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
