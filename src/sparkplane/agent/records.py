"""Nodes, join tokens and deployments as the server keeps them (plain data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


@dataclass(slots=True)
class TokenRecord:
    """A join token (its secret is never kept)."""

    id: str
    note: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    uses: int = 0

    def state(self, now: datetime) -> str:
        """`valid`, `expired` or `revoked`."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= now else "valid"

    def public(self, now: datetime) -> dict[str, Any]:
        """For listings."""
        return {
            "id": self.id,
            "note": self.note,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "revoked_at": _iso(self.revoked_at),
            "uses": self.uses,
            "state": self.state(now),
        }


@dataclass(slots=True)
class NodeRecord:
    """A node: where its agent listens, its status and its last report."""

    id: str
    name: str
    url: str
    status: str
    hardware: dict[str, Any]
    models: list[dict[str, Any]]
    joined_at: datetime
    last_seen: datetime
    agent_key: str = field(default="", repr=False)

    @property
    def free_bytes(self) -> int | None:
        """Memory free for models, as last reported."""
        value = self.hardware.get("memory", {}).get("free_bytes")
        return int(value) if isinstance(value, int | float) else None

    @property
    def power_w(self) -> float | None:
        """Measured power, as last reported (None when the node has no reading)."""
        power = self.hardware.get("power", {})
        value = power.get("watts")
        if not power.get("measured") or not isinstance(value, int | float):
            return None
        return float(value)

    def public(self) -> dict[str, Any]:
        """For listings; the agent key is never shown."""
        return {
            "id": self.id,
            "name": self.name,
            "url": self.url,
            "status": self.status,
            "hardware": self.hardware,
            "models": self.models,
            "joined_at": _iso(self.joined_at),
            "last_seen": _iso(self.last_seen),
        }


@dataclass(slots=True)
class DeploymentRecord:
    """A deployment: what runs where, and its last reported state."""

    id: str
    name: str
    node_id: str
    model: str
    served_name: str
    engine: str
    spec: dict[str, Any]
    need_bytes: int | None
    state: str
    port: int | None
    restarts: int
    error: str | None
    device_name: str | None
    created_at: datetime
    updated_at: datetime

    def public(self, node: str | None = None) -> dict[str, Any]:
        """For listings and the API."""
        return {
            "id": self.id,
            "name": self.name,
            "node": node,
            "model": self.model,
            "served_name": self.served_name,
            "engine": self.engine,
            "need_bytes": self.need_bytes,
            "state": self.state,
            "port": self.port,
            "restarts": self.restarts,
            "error": self.error,
            "device": self.device_name,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }
