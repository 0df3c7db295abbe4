"""Waiting requests: priorities first, tenants fairly, model queues bounded."""

from __future__ import annotations

from sparkplane.scheduler.fairshare import FairQueue, retry_after


def drain(queue: FairQueue[str]) -> list[str]:
    out: list[str] = []
    while (item := queue.pop()) is not None:
        out.append(item)
    return out


def test_a_flooding_tenant_does_not_starve_a_quiet_one() -> None:
    queue: FairQueue[str] = FairQueue(limit_per_model=1000)
    for i in range(100):
        queue.push(f"flood{i}", tenant="flood", model="m")
    queue.push("quiet0", tenant="quiet", model="m")
    queue.push("quiet1", tenant="quiet", model="m")
    order = drain(queue)
    # The quiet tenant's requests go within the first few, not after 100 floods.
    assert order.index("quiet0") <= 1
    assert order.index("quiet1") <= 3
    assert [o for o in order if o.startswith("flood")] == [f"flood{i}" for i in range(100)]


def test_quiet_tenant_arriving_later_overtakes_the_backlog() -> None:
    queue: FairQueue[str] = FairQueue(limit_per_model=1000)
    for i in range(50):
        queue.push(f"f{i}", tenant="flood", model="m")
    for _ in range(10):
        queue.pop()
    queue.push("late", tenant="quiet", model="m")
    # Tagged next to the head of the flood, not behind its 40 left.
    assert [queue.pop(), queue.pop()] == ["f10", "late"]


def test_weights_share_in_proportion() -> None:
    queue: FairQueue[str] = FairQueue(limit_per_model=1000, weights={"gold": 3.0})
    for i in range(40):
        queue.push(f"gold{i}", tenant="gold", model="m")
        queue.push(f"free{i}", tenant="free", model="m")
    first = [queue.pop() for _ in range(40)]
    gold = sum(1 for x in first if x and x.startswith("gold"))
    assert gold == 30


def test_priority_is_strict() -> None:
    queue: FairQueue[str] = FairQueue(limit_per_model=10)
    queue.push("low", tenant="a", model="m", priority=0)
    queue.push("high", tenant="b", model="m", priority=5)
    assert drain(queue) == ["high", "low"]


def test_bounded_per_model_and_remove() -> None:
    queue: FairQueue[str] = FairQueue(limit_per_model=2)
    first = queue.push("1", tenant="a", model="m")
    assert queue.push("2", tenant="a", model="m") is not None
    assert queue.push("3", tenant="a", model="m") is None  # full: refused, not queued
    assert queue.push("x", tenant="a", model="other") is not None
    assert queue.depth("m") == 2
    assert len(queue) == 3
    assert first is not None
    assert queue.remove(first)
    assert not queue.remove(first)
    assert queue.depth("m") == 1
    assert drain(queue) == ["2", "x"]


def test_a_blocked_model_does_not_hold_up_others() -> None:
    queue: FairQueue[str] = FairQueue(limit_per_model=10)
    queue.push("big", tenant="a", model="big")
    queue.push("small", tenant="a", model="small")
    assert queue.pop(ready=lambda item: item == "small") == "small"
    assert queue.pop(ready=lambda item: item == "small") is None
    assert queue.pop() == "big"


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert retry_after(0, 1.0, 1) == 1
    assert retry_after(10, 2.0, 4) == 5
