"""The per-source failure budget: N failures in a burst, then one every 60/N
seconds, each source on its own."""

from __future__ import annotations

from sparkplane.security.auth_guard import FailureBudget


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_one_every_interval_per_source() -> None:
    clock = Clock()
    budget = FailureBudget(6, clock)  # one every 10 s
    for _ in range(6):
        assert budget.wait("a") == 0
        budget.failed("a")
    assert budget.wait("a") == 10.0
    assert budget.wait("b") == 0  # another source is not touched
    clock.now += 9.9
    assert budget.wait("a") > 0
    clock.now += 0.1
    assert budget.wait("a") == 0
    budget.failed("a")
    assert budget.wait("a") == 10.0
    clock.now += 60
    assert budget.wait("a") == 0  # a full bucket again after a quiet minute
