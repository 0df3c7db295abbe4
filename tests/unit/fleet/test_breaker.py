"""The per-device circuit breaker, driven with explicit times."""

from __future__ import annotations

import pytest

from sparkplane.fleet.breaker import BreakerState, CircuitBreaker

T0 = 100.0


def opened(threshold: int = 3, cooldown: float = 10.0) -> CircuitBreaker:
    breaker = CircuitBreaker(threshold, cooldown)
    for _ in range(threshold):
        breaker.record_failure(T0)
    assert breaker.state is BreakerState.OPEN
    return breaker


@pytest.mark.parametrize("threshold", [1, 3, 5])
def test_opens_after_n_consecutive_failures_not_before(threshold: int) -> None:
    breaker = CircuitBreaker(threshold, 10.0)
    for i in range(threshold - 1):
        assert breaker.record_failure(T0 + i) is False
        assert breaker.closed
    assert breaker.record_failure(T0 + threshold) is True
    assert not breaker.closed
    assert breaker.state is BreakerState.OPEN


def test_further_failures_while_open_do_not_report_opening_again() -> None:
    breaker = opened()
    assert breaker.record_failure(T0 + 1) is False
    assert breaker.state is BreakerState.OPEN


def test_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(3, 10.0)
    breaker.record_failure(T0)
    breaker.record_failure(T0)
    breaker.record_success()
    breaker.record_failure(T0)
    breaker.record_failure(T0)
    assert breaker.closed
    assert breaker.record_failure(T0) is True


def test_reset_failures_forgets_failures_while_closed() -> None:
    breaker = CircuitBreaker(3, 10.0)
    breaker.record_failure(T0)
    breaker.record_failure(T0)
    breaker.reset_failures()
    assert breaker.failures == 0
    breaker.record_failure(T0)
    breaker.record_failure(T0)
    assert breaker.closed


@pytest.mark.parametrize("half_open", [False, True])
def test_reset_failures_does_not_close_an_open_or_probing_breaker(half_open: bool) -> None:
    breaker = opened()
    if half_open:
        assert breaker.should_probe(T0 + 10.0)
    state = breaker.state
    breaker.reset_failures()
    assert breaker.state is state
    assert not breaker.closed


def test_cool_down_holds_probes_back_until_it_has_elapsed() -> None:
    breaker = opened(cooldown=10.0)
    assert breaker.should_probe(T0 + 9.99) is False
    assert breaker.state is BreakerState.OPEN
    assert breaker.should_probe(T0 + 10.0) is True
    assert breaker.state is BreakerState.HALF_OPEN
    # The probe decides; requests still stay away meanwhile.
    assert not breaker.closed


def test_closed_breakers_are_probed_every_time() -> None:
    breaker = CircuitBreaker(3, 10.0)
    assert breaker.should_probe(T0)
    assert breaker.should_probe(T0)
    assert breaker.closed


def test_one_failed_probe_while_half_open_reopens_and_restarts_the_cool_down() -> None:
    breaker = opened(threshold=5, cooldown=10.0)
    assert breaker.should_probe(T0 + 10.0)
    assert breaker.record_failure(T0 + 10.0) is True
    assert breaker.state is BreakerState.OPEN
    assert breaker.should_probe(T0 + 19.0) is False
    assert breaker.should_probe(T0 + 20.0) is True


def test_successful_probe_while_half_open_closes() -> None:
    breaker = opened(threshold=2)
    assert breaker.should_probe(T0 + 10.0)
    breaker.record_success()
    assert breaker.closed
    # Closed again means the full threshold applies again.
    assert breaker.record_failure(T0 + 11.0) is False
    assert breaker.record_failure(T0 + 11.0) is True


def test_trip_opens_at_once_and_waits_a_full_cool_down() -> None:
    breaker = CircuitBreaker(3, 5.0)
    breaker.trip(T0)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.should_probe(T0 + 4.0)
    assert breaker.should_probe(T0 + 5.0)
