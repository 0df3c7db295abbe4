"""One metered request or job, as the gateway and workers hand it to the meter."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sparkplane.db.models import utcnow

UsageKind = Literal["chat", "completion", "embedding", "workflow"]


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """What one request or job used.

    `device_seconds` is the time the device worked on it (for a request, its
    duration on the device that answered); `energy_wh` left as None is filled
    in by the meter from the device's power figure (`extra["power_w"]`).
    `estimated` says the token counts were estimated, not reported by the engine.
    """

    tenant_id: str | None
    key_id: str | None
    kind: UsageKind
    model: str
    device: str | None
    status: int
    tokens_in: int = 0
    tokens_out: int = 0
    images: int = 0
    duration_s: float = 0.0
    device_seconds: float = 0.0
    energy_wh: float | None = None
    estimated: bool = False
    at: datetime = field(default_factory=utcnow)
