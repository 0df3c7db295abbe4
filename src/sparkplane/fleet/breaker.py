"""A per-device circuit breaker.

closed --N consecutive failures--> open --cool-down elapsed--> half-open
half-open --probe succeeds--> closed;  half-open --probe fails--> open

While open or half-open the device gets no requests; after the cool-down
exactly one probe is let through to decide. Time is passed in, so the breaker
is plain state that tests drive with a fake clock.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    """Where a breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures and decides whether a device is usable."""

    __slots__ = ("_opened_at", "_state", "cooldown_s", "failures", "listener", "threshold")

    def __init__(self, threshold: int, cooldown_s: float) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._state = BreakerState.CLOSED
        self.failures = 0
        self._opened_at = 0.0
        # Told of every change of state, so the scheduler's snapshot never holds a stale copy.
        self.listener: Callable[[], None] | None = None

    @property
    def state(self) -> BreakerState:
        """Closed, open or half-open."""
        return self._state

    @state.setter
    def state(self, value: BreakerState) -> None:
        changed = value is not self._state
        self._state = value
        if changed and self.listener is not None:
            self.listener()

    @property
    def closed(self) -> bool:
        """True when requests may go to the device."""
        return self.state is BreakerState.CLOSED

    def record_success(self) -> None:
        """A request or probe succeeded: close the breaker."""
        self.failures = 0
        self.state = BreakerState.CLOSED

    def reset_failures(self) -> None:
        """A request succeeded: forget earlier failures, leave the state alone."""
        if self.state is BreakerState.CLOSED:
            self.failures = 0

    def record_failure(self, now: float) -> bool:
        """A request or probe failed; returns True if this opened the breaker."""
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN or (
            self.state is BreakerState.CLOSED and self.failures >= self.threshold
        ):
            self.state = BreakerState.OPEN
            self._opened_at = now
            return True
        return False

    def trip(self, now: float) -> None:
        """Open at once (used when the operator disables a device)."""
        self.state = BreakerState.OPEN
        self._opened_at = now

    def should_probe(self, now: float) -> bool:
        """Whether the health loop may probe now; moves open to half-open after the cool-down."""
        if self.state is BreakerState.OPEN:
            if now - self._opened_at < self.cooldown_s:
                return False
            self.state = BreakerState.HALF_OPEN
        return True
