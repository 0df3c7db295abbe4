"""The order plans come in: estimated completion, then priority, then what is
known; who may be chosen at all (health, allow-lists, off-premises)."""

from __future__ import annotations

from typing import Any

import pytest

from sparkplane.fleet.snapshot import DeviceState, FleetSnapshot, Slot
from sparkplane.scheduler.choose import Ask, Tuning, choose
from sparkplane.scheduler.policy import Policy, Refusal

TUNING = Tuning(max_plans=10, saturation=1000)


def cand(name: str, *, queue: int = 0, pace: float | None = None, **kw: Any) -> Slot:
    """A device with `queue` requests ahead, one at a time, at `pace` seconds each."""
    state = DeviceState(name=name, parallel=1, **kw)
    slot = Slot(device=state, model="m", resident=True, pace_s=pace)
    state.slots["m"] = slot
    state.inflight = queue
    state.outstanding_s = queue * (pace if pace is not None else 1.0)
    return slot


def order(slots: list[Slot], policy: Policy | None = None) -> list[str]:
    decision = choose(Ask("m"), FleetSnapshot.build([s.device for s in slots], {"m": slots}),
                      policy or Policy(), TUNING)  # fmt: skip
    assert decision.refusal is None
    return [p.device for p in decision.plans]


def refusal(slots: list[Slot], policy: Policy) -> Refusal | None:
    snapshot = FleetSnapshot.build([s.device for s in slots], {"m": slots})
    return choose(Ask("m"), snapshot, policy, TUNING).refusal


def test_soonest_completion_wins() -> None:
    # a: 4 ahead + its own at 1 s = 5 s; b: (1 + 1) x 2 s = 4 s; c: (3 + 1) x 1 s = 4 s.
    slots = [cand("a", queue=4, pace=1.0, priority=10), cand("b", queue=1, pace=2.0),
             cand("c", queue=3, pace=1.0)]  # fmt: skip
    assert order(slots) == ["b", "c", "a"]


def test_an_idle_slow_device_loses_to_a_busy_fast_one_that_finishes_sooner() -> None:
    fast = cand("fast", queue=2, pace=0.5)  # done in 1.5 s
    slow = cand("slow", queue=0, pace=3.0)  # done in 3 s
    assert order([slow, fast]) == ["fast", "slow"]
    assert order([cand("fast", queue=8, pace=0.5), slow]) == ["slow", "fast"]


def test_equal_completion_ties_go_to_priority_then_name() -> None:
    slots = [cand("b", pace=1.0), cand("high", pace=1.0, priority=5), cand("a", pace=1.0)]
    assert order(slots) == ["high", "a", "b"]


def test_unmeasured_device_is_assumed_as_fast_as_the_fastest_known() -> None:
    # Fastest known pace 0.5 s: "new" with 2 ahead finishes in 1.5 s, before
    # "slow" (2 x 2 s) and after "fast" (2 x 0.5 s); among equals it goes first.
    slots = [cand("slow", queue=1, pace=2.0), cand("new", queue=2), cand("fast", queue=1, pace=0.5)]
    assert order(slots) == ["fast", "new", "slow"]
    assert order([cand("seen", pace=1.0), cand("unseen")]) == ["unseen", "seen"]


def test_unavailable_devices_are_never_chosen() -> None:
    slots = [cand("down", available=False, priority=100), cand("up", queue=50, pace=10.0)]
    assert order(slots) == ["up"]


def test_off_prem_is_not_used_unless_allowed() -> None:
    slots = [cand("cloud", off_prem=True), cand("box", available=False)]
    assert refusal(slots, Policy(allow_off_prem=False)) is Refusal.POLICY
    assert order(slots, Policy(allow_off_prem=True)) == ["cloud"]


def test_off_prem_stays_out_while_an_on_prem_device_can_serve_without_a_deadline() -> None:
    slots = [cand("cloud", off_prem=True, pace=0.1, priority=9), cand("box", queue=20, pace=5.0)]
    assert order(slots, Policy(allow_off_prem=True)) == ["box"]


def test_allow_list_limits_the_devices() -> None:
    slots = [cand("a", priority=9), cand("b", priority=5), cand("c", priority=1)]
    assert order(slots, Policy(allowed_devices=frozenset({"b", "c"}))) == ["b", "c"]
    only_down = Policy(allowed_devices=frozenset({"x"}))
    assert refusal([cand("a"), cand("x", available=False)], only_down) is Refusal.POLICY


@pytest.mark.parametrize("allow_off_prem", [False, True])
def test_all_unavailable_is_none_healthy(allow_off_prem: bool) -> None:
    slots = [cand("a", available=False), cand("cloud", off_prem=True, available=False)]
    assert refusal(slots, Policy(allow_off_prem=allow_off_prem)) is Refusal.NONE_HEALTHY


def test_a_full_device_is_no_room_not_unhealthy() -> None:
    full = cand("a", queue=4, pace=1.0)
    snapshot = FleetSnapshot.build([full.device], {"m": [full]})
    tight = Tuning(saturation=4)
    assert choose(Ask("m"), snapshot, Policy(), tight).refusal is Refusal.NO_ROOM
