"""A device as stored (`DeviceRecord`) and as the running process sees it (`Device`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sparkplane.backends.base import Backend, ProbeResult
from sparkplane.fleet.breaker import BreakerState, CircuitBreaker
from sparkplane.fleet.snapshot import DeviceState

# Weight of the newest observation in the seconds-per-request average.
EWMA_ALPHA = 0.3


@dataclass(slots=True)
class DeviceRecord:
    """A registered device: its settings and its last probe, as kept in the database."""

    id: str
    name: str
    url: str
    kind: str
    priority: int = 0
    off_prem: bool = False
    enabled: bool = True
    api_key: str | None = field(default=None, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    health: str = "unknown"
    models: list[str] = field(default_factory=list)
    latency_ms: float | None = None
    engine_version: str | None = None
    last_error: str | None = None
    probed_at: datetime | None = None

    def public(self) -> dict[str, Any]:
        """The record as shown to people and the admin API: the API key masked."""
        return {
            "id": self.id,
            "name": self.name,
            "url": self.url,
            "kind": self.kind,
            "priority": self.priority,
            "off_prem": self.off_prem,
            "enabled": self.enabled,
            "has_api_key": bool(self.api_key),
            "extra": self.extra,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "health": self.health,
            "models": self.models,
            "latency_ms": self.latency_ms,
            "engine_version": self.engine_version,
            "last_error": self.last_error,
            "probed_at": self.probed_at.isoformat() if self.probed_at else None,
        }


@dataclass(slots=True, eq=False)
class Device:
    """A device in the running process: settings, adapter, breaker and live figures."""

    record: DeviceRecord
    backend: Backend
    breaker: CircuitBreaker
    models: frozenset[str] = frozenset()
    ewma_s: float | None = None
    probed: bool = False
    # What the scheduler reads: live load, memory, models (kept by fleet/load.py).
    state: DeviceState = field(default_factory=lambda: DeviceState(name=""))

    def __post_init__(self) -> None:
        self.state.name = self.record.name
        self.state.available = self.available
        self.breaker.listener = self._breaker_changed

    def _breaker_changed(self) -> None:
        self.state.available = self.available
        self.record.health = self.health

    @property
    def inflight(self) -> int:
        """Requests and jobs on this device now."""
        return self.state.inflight

    @inflight.setter
    def inflight(self, value: int) -> None:
        self.state.inflight = value

    @property
    def id(self) -> str:
        """The device's stable id."""
        return self.record.id

    @property
    def name(self) -> str:
        """The device's unique name."""
        return self.record.name

    @property
    def available(self) -> bool:
        """Enabled and its breaker closed: requests may go here."""
        return self.record.enabled and self.breaker.closed

    @property
    def health(self) -> str:
        """One word for tables and the API."""
        if not self.record.enabled:
            return "disabled"
        if self.breaker.state is BreakerState.OPEN:
            return "unhealthy"
        if self.breaker.state is BreakerState.HALF_OPEN:
            return "probing"
        return "healthy" if self.probed else "unknown"

    def observe(self, seconds: float) -> None:
        """Fold one finished request's duration into the seconds-per-request average."""
        if self.ewma_s is None:
            self.ewma_s = seconds
        else:
            self.ewma_s += EWMA_ALPHA * (seconds - self.ewma_s)

    def apply_probe(self, result: ProbeResult) -> bool:
        """Take a successful probe in; returns True if the model list changed."""
        self.probed = True
        self.breaker.record_success()
        models = frozenset(result.models)
        changed = models != self.models
        self.models = models
        self.record.models = sorted(models)
        self.record.latency_ms = round(result.latency_s * 1000, 2)
        self.record.engine_version = result.version
        self.record.last_error = None
        return changed
