"""The fleet-wide retry budget."""

from __future__ import annotations

from sparkplane.scheduler.budget import RetryBudget


def acquire_all(budget: RetryBudget) -> int:
    taken = 0
    while budget.try_acquire():
        taken += 1
        assert taken <= 1000, "the budget never ran out"
    return taken


def test_floor_allows_three_retries_with_few_active_requests() -> None:
    budget = RetryBudget(ratio=0.2, minimum=3)
    budget.active = 1
    assert acquire_all(budget) == 3
    assert budget.retrying == 3


def test_twenty_percent_of_active_requests_above_the_floor() -> None:
    budget = RetryBudget(ratio=0.2, minimum=3)
    budget.active = 50
    assert budget.limit == 10
    assert acquire_all(budget) == 10


def test_limit_rounds_down_and_never_drops_below_the_floor() -> None:
    budget = RetryBudget(ratio=0.2, minimum=3)
    for active, expected in [(0, 3), (15, 3), (20, 4), (24, 4), (25, 5)]:
        budget.active = active
        assert budget.limit == expected, active


def test_release_gives_a_retry_back() -> None:
    budget = RetryBudget(ratio=0.2, minimum=3)
    acquire_all(budget)
    assert not budget.try_acquire()
    budget.release()
    assert budget.retrying == 2
    assert budget.try_acquire()
    assert not budget.try_acquire()


def test_more_active_requests_raise_the_limit_for_waiting_retries() -> None:
    budget = RetryBudget(ratio=0.2, minimum=3)
    budget.active = 10
    acquire_all(budget)
    budget.active = 30
    assert budget.try_acquire()
    assert budget.retrying == 4


def test_zero_floor_and_zero_ratio_allows_no_retry() -> None:
    budget = RetryBudget(ratio=0.0, minimum=0)
    budget.active = 100
    assert not budget.try_acquire()
    assert budget.retrying == 0
