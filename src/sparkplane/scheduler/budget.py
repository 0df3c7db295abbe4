"""A fleet-wide retry budget: retries in flight may not exceed a share of the
active requests (with a floor), so a sick fleet is not hammered by retries."""

from __future__ import annotations


class RetryBudget:
    """Counts active requests and retries in flight."""

    __slots__ = ("active", "minimum", "ratio", "retrying")

    def __init__(self, ratio: float, minimum: int) -> None:
        self.ratio = ratio
        self.minimum = minimum
        self.active = 0
        self.retrying = 0

    @property
    def limit(self) -> int:
        """Retries that may be in flight right now."""
        return max(self.minimum, int(self.ratio * self.active))

    def try_acquire(self) -> bool:
        """Take one retry if the budget allows; pair with `release`."""
        if self.retrying >= self.limit:
            return False
        self.retrying += 1
        return True

    def release(self) -> None:
        """Give back a retry taken with `try_acquire`."""
        self.retrying -= 1
