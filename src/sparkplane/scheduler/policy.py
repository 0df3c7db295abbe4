"""What a caller may use, and why nothing was chosen: plain data for `choose()`
(`scheduler/choose.py`), the one decision the gateway, the job worker and the
simulator share."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Policy:
    """What the caller may use: off-premises devices, and an optional allow-list."""

    allow_off_prem: bool = False
    allowed_devices: frozenset[str] | None = None
    owner: str = "the fleet"  # whose policy this is, for error messages


class Refusal(StrEnum):
    """Why no candidate was left."""

    NO_DEVICE = "no_device"
    NONE_HEALTHY = "none_healthy"
    POLICY = "policy"
    NO_ROOM = "no_room"  # devices could serve it, but none can take it now
