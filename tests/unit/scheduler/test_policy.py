"""The scheduling policy: which device a request goes to, and why none."""

from __future__ import annotations

from typing import Any

import pytest

from sparkplane.scheduler.policy import (
    DEFAULT_SECONDS_PER_REQUEST,
    Candidate,
    Policy,
    Refusal,
    estimated_wait,
    rank,
)


def cand(name: str, **kw: Any) -> Candidate:
    values: dict[str, Any] = {
        "index": 0,
        "priority": 0,
        "inflight": 0,
        "seconds_per_request": None,
        "off_prem": False,
        "available": True,
    }
    values.update(kw)
    return Candidate(name=name, **values)


def order(candidates: list[Candidate], policy: Policy | None = None) -> list[str]:
    decision = rank(candidates, policy or Policy())
    assert decision.refusal is None
    return [c.name for c in decision.ranked]


def test_least_estimated_wait_wins() -> None:
    # a: 4 queued x 1 s = 4 s; b: 1 queued x 2 s = 2 s; c: 3 queued x 1 s = 3 s.
    candidates = [
        cand("a", inflight=4, seconds_per_request=1.0, priority=10),
        cand("b", inflight=1, seconds_per_request=2.0),
        cand("c", inflight=3, seconds_per_request=1.0),
    ]
    assert order(candidates) == ["b", "c", "a"]


def test_a_busy_fast_device_beats_an_idle_one_only_when_its_queue_is_shorter() -> None:
    fast = cand("fast", inflight=2, seconds_per_request=0.5)
    slow = cand("slow", inflight=1, seconds_per_request=3.0)
    assert order([slow, fast]) == ["fast", "slow"]
    idle_slow = cand("slow", inflight=0, seconds_per_request=3.0)
    assert order([fast, idle_slow]) == ["slow", "fast"]


def test_idle_devices_tie_and_higher_priority_wins() -> None:
    candidates = [
        cand("low", priority=1, seconds_per_request=0.5),
        cand("high", priority=5, seconds_per_request=2.0),
        cand("mid", priority=3, seconds_per_request=1.0),
    ]
    assert order(candidates) == ["high", "mid", "low"]


def test_equal_priority_idle_devices_prefer_the_faster_pace_then_the_name() -> None:
    candidates = [
        cand("b", seconds_per_request=1.0),
        cand("c", seconds_per_request=0.2),
        cand("a", seconds_per_request=1.0),
    ]
    assert order(candidates) == ["c", "a", "b"]


def test_unmeasured_device_is_assumed_as_fast_as_the_fastest_known() -> None:
    # Fastest known pace is 0.5 s: the new device with 2 queued waits 1 s, less than
    # "slow" (1 x 2 s) but more than "fast" (1 x 0.5 s).
    candidates = [
        cand("slow", inflight=1, seconds_per_request=2.0),
        cand("new", inflight=2, seconds_per_request=None),
        cand("fast", inflight=1, seconds_per_request=0.5),
    ]
    assert order(candidates) == ["fast", "new", "slow"]


def test_with_nothing_measured_queue_length_decides() -> None:
    candidates = [cand("a", inflight=3), cand("b", inflight=1), cand("c", inflight=2)]
    assert order(candidates) == ["b", "c", "a"]
    assert estimated_wait(cand("x", inflight=3), DEFAULT_SECONDS_PER_REQUEST) == 3.0


def test_unavailable_devices_are_never_chosen() -> None:
    candidates = [
        cand("down", available=False, priority=100),
        cand("up", inflight=50, seconds_per_request=10.0),
    ]
    assert order(candidates) == ["up"]


def test_off_prem_is_not_used_unless_allowed() -> None:
    candidates = [cand("cloud", off_prem=True), cand("box", available=False)]
    decision = rank(candidates, Policy(allow_off_prem=False))
    assert decision.ranked == ()
    assert decision.refusal is Refusal.POLICY


def test_off_prem_is_used_when_allowed_and_no_on_prem_device_is_available() -> None:
    candidates = [cand("cloud", off_prem=True), cand("box", available=False)]
    assert order(candidates, Policy(allow_off_prem=True)) == ["cloud"]


def test_off_prem_stays_out_while_an_on_prem_device_is_available_even_if_busy() -> None:
    candidates = [
        cand("cloud", off_prem=True, seconds_per_request=0.1, priority=9),
        cand("box", inflight=20, seconds_per_request=5.0),
    ]
    assert order(candidates, Policy(allow_off_prem=True)) == ["box"]


def test_allow_list_limits_the_devices() -> None:
    candidates = [cand("a", priority=9), cand("b", priority=5), cand("c", priority=1)]
    policy = Policy(allowed_devices=frozenset({"b", "c"}))
    assert order(candidates, policy) == ["b", "c"]


def test_allow_list_that_excludes_every_healthy_device_is_a_policy_refusal() -> None:
    candidates = [cand("a"), cand("b", available=False)]
    decision = rank(candidates, Policy(allowed_devices=frozenset({"b"})))
    assert decision.refusal is Refusal.POLICY


def test_no_candidates_is_no_device() -> None:
    decision = rank([], Policy(allow_off_prem=True))
    assert decision == rank([], Policy())
    assert decision.refusal is Refusal.NO_DEVICE
    assert decision.ranked == ()


@pytest.mark.parametrize("allow_off_prem", [False, True])
def test_all_unavailable_is_none_healthy(allow_off_prem: bool) -> None:
    candidates = [cand("a", available=False), cand("cloud", off_prem=True, available=False)]
    decision = rank(candidates, Policy(allow_off_prem=allow_off_prem))
    assert decision.refusal is Refusal.NONE_HEALTHY
    assert decision.ranked == ()


def test_rank_keeps_the_candidates_index_for_the_caller() -> None:
    candidates = [cand("a", index=0, inflight=2), cand("b", index=1)]
    assert [c.index for c in rank(candidates, Policy()).ranked] == [1, 0]
