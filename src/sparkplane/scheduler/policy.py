"""The scheduling policy: pure functions over plain data.

The live gateway and the simulator call the same `rank`, so a policy that wins
in simulation is the policy that runs. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

# Seconds per request assumed when no device of the candidates has a measurement yet.
DEFAULT_SECONDS_PER_REQUEST = 1.0


@dataclass(frozen=True, slots=True)
class Candidate:
    """A device that serves the requested model, as the policy sees it."""

    index: int
    name: str
    priority: int
    inflight: int
    seconds_per_request: float | None
    off_prem: bool
    available: bool


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


@dataclass(frozen=True, slots=True)
class Decision:
    """Candidates in the order to try them, or why there are none."""

    ranked: tuple[Candidate, ...]
    refusal: Refusal | None = None


def estimated_wait(candidate: Candidate, fallback_s: float) -> float:
    """Seconds until the device could start on a new request: its queue times its pace."""
    pace = candidate.seconds_per_request
    return candidate.inflight * (pace if pace is not None else fallback_s)


def rank(candidates: Sequence[Candidate], policy: Policy) -> Decision:
    """Order candidates by least estimated wait, ties by priority, then pace, then name.

    Among otherwise equal candidates a device never measured goes first, so every
    device gets measured once and the faster one then wins when both are idle.

    Off-premises devices are candidates only when the policy allows them and no
    on-premises device is available; devices outside an allow-list never are.
    """
    if not candidates:
        return Decision((), Refusal.NO_DEVICE)
    permitted = [
        c for c in candidates if policy.allowed_devices is None or c.name in policy.allowed_devices
    ]
    healthy = [c for c in permitted if c.available]
    pool = [c for c in healthy if not c.off_prem]
    if not pool and policy.allow_off_prem:
        pool = healthy
    if not pool:
        if healthy or any(c.available for c in candidates):
            return Decision((), Refusal.POLICY)
        return Decision((), Refusal.NONE_HEALTHY)
    known = [c.seconds_per_request for c in pool if c.seconds_per_request is not None]
    # A device never measured is assumed as fast as the fastest known one, so it
    # gets traffic and a measurement instead of being starved.
    fallback = min(known) if known else DEFAULT_SECONDS_PER_REQUEST
    pool.sort(
        key=lambda c: (
            estimated_wait(c, fallback),
            -c.priority,
            c.seconds_per_request is not None,
            c.seconds_per_request if c.seconds_per_request is not None else fallback,
            c.name,
        )
    )
    return Decision(tuple(pool))
