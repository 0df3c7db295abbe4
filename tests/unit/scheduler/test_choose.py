"""The scheduler's decision: where a request runs, what is loaded and evicted first."""

from __future__ import annotations

from typing import Any

from sparkplane.fleet.snapshot import (
    GIB,
    Demand,
    DeviceState,
    FleetSnapshot,
    Slot,
    acquire,
    begin_load,
    end_load,
    evict,
    seen_resident,
)
from sparkplane.scheduler.choose import Ask, StepKind, Tuning, choose
from sparkplane.scheduler.evict import evictions
from sparkplane.scheduler.policy import Policy, Refusal

TUNING = Tuning(min_resident_s=60.0)


def device(name: str, gib: float = 24, **kw: Any) -> DeviceState:
    return DeviceState(name=name, memory_bytes=int(gib * GIB), can_load=True, **kw)


def slot(dev: DeviceState, model: str, gib: float, *, tps: float = 50.0, **kw: Any) -> Slot:
    s = Slot(device=dev, model=model, bytes=int(gib * GIB), decode_tps=tps, **kw)
    dev.slots[model] = s
    return s


def snap(routes: dict[str, list[Slot]]) -> FleetSnapshot:
    devices = {s.device.name: s.device for slots in routes.values() for s in slots}
    return FleetSnapshot.build(devices.values(), routes)


def test_resident_fast_device_wins_over_cold_one() -> None:
    fast, slow = device("4090"), device("spark", 128)
    a = slot(fast, "m", 8, tps=120, resident=True, load_s=4)
    b = slot(slow, "m", 8, tps=30, load_s=30)
    decision = choose(Ask("m", now=100, output_tokens=100), snap({"m": [a, b]}), Policy(), TUNING)
    assert [p.device for p in decision.plans] == ["4090", "spark"]
    best = decision.plans[0]
    assert not best.cold
    assert best.steps[-1].kind is StepKind.RUN
    assert decision.plans[1].cold
    assert decision.plans[1].load_s >= 30


def test_cold_model_loads_where_completion_is_soonest() -> None:
    # Neither device has it; the 4090 loads fast and decodes fast.
    fast, slow = device("4090"), device("spark", 128)
    a = slot(fast, "m", 8, tps=120, load_s=5)
    b = slot(slow, "m", 8, tps=30, load_s=20)
    best = choose(Ask("m", output_tokens=200), snap({"m": [a, b]}), Policy(), TUNING).best
    assert best is not None
    assert best.device == "4090"
    assert [s.kind for s in best.steps] == [StepKind.LOAD, StepKind.RUN]


def test_busy_resident_device_loses_to_loading_elsewhere() -> None:
    fast, idle = device("4090", parallel=1), device("other")
    a = slot(fast, "m", 8, tps=100, resident=True)
    b = slot(idle, "m", 8, tps=100, load_s=2)
    for _ in range(3):
        acquire(a, 40.0, now=0)
    best = choose(Ask("m", output_tokens=100), snap({"m": [a, b]}), Policy(), TUNING).best
    assert best is not None
    assert best.device == "other"
    assert best.cold


def test_eviction_takes_the_cheapest_idle_model_and_spares_work_in_flight() -> None:
    dev = device("4090", 24)
    hot = slot(dev, "hot", 10, resident=True, load_s=10, demand=Demand(interval_s=1.0, last=990))
    slot(dev, "rare", 10, resident=True, load_s=10, demand=Demand(interval_s=600, last=0))
    busy = slot(dev, "busy", 3, resident=True, load_s=1)
    busy.inflight = 1
    new = slot(dev, "new", 10, load_s=5)
    victims = evictions(new, now=1000, min_resident_s=TUNING.min_resident_s)
    assert victims is not None
    assert [v.model for v in victims] == ["rare"]
    plan = choose(Ask("new", now=1000), snap({"new": [new]}), Policy(), TUNING).best
    assert plan is not None
    assert plan.evictions == ("rare",)
    assert hot.resident
    assert busy.resident


def test_no_thrash_recently_loaded_model_is_not_evicted() -> None:
    dev = device("4090", 24)
    slot(dev, "young", 20, resident=True, loaded_at=990)
    new = slot(dev, "new", 10)
    assert evictions(new, now=1000, min_resident_s=TUNING.min_resident_s) is None
    decision = choose(Ask("new", now=1000), snap({"new": [new]}), Policy(), TUNING)
    assert decision.refusal is Refusal.NO_ROOM
    assert evictions(new, now=1100, min_resident_s=TUNING.min_resident_s) is not None


def test_model_larger_than_device_is_never_placed() -> None:
    small, big = device("4090", 24), device("spark", 128)
    a = slot(small, "120b", 65)
    b = slot(big, "120b", 65, load_s=60)
    decision = choose(Ask("120b"), snap({"120b": [a, b]}), Policy(), TUNING)
    assert [p.device for p in decision.plans] == ["spark"]


def test_unified_memory_pressure_counts() -> None:
    spark = device("spark", 118, unified=True, pressure_bytes=60 * GIB)
    s = slot(spark, "70b", 70)
    assert choose(Ask("70b"), snap({"70b": [s]}), Policy(), TUNING).refusal is Refusal.NO_ROOM
    spark.pressure_bytes = 10 * GIB
    assert choose(Ask("70b"), snap({"70b": [s]}), Policy(), TUNING).best is not None


def test_cloud_only_when_allowed_and_local_misses_the_deadline() -> None:
    local = device("spark", 128)
    cloud = DeviceState(name="cloud", off_prem=True, price_per_mtok=2.0, parallel=1000)
    a = slot(local, "m", 8, tps=20, resident=True)
    c = Slot(device=cloud, model="m", resident=True, decode_tps=100)
    routes = snap({"m": [a, c]})
    ask = Ask("m", output_tokens=200, deadline_s=5.0)  # local needs 10 s
    assert [p.device for p in choose(ask, routes, Policy(), TUNING).plans] == ["spark"]
    allowed = Policy(allow_off_prem=True)
    assert [p.device for p in choose(ask, routes, allowed, TUNING).plans] == ["cloud", "spark"]
    relaxed = Ask("m", output_tokens=200, deadline_s=60.0)
    assert [p.device for p in choose(relaxed, routes, allowed, TUNING).plans] == ["spark"]


def test_refusals_say_why() -> None:
    dev = device("a")
    s = slot(dev, "m", 1, resident=True)
    routes = snap({"m": [s]})
    assert choose(Ask("x"), routes, Policy(), TUNING).refusal is Refusal.NO_DEVICE
    only_b = Policy(allowed_devices=frozenset({"b"}))
    assert choose(Ask("m"), routes, only_b, TUNING).refusal is Refusal.POLICY
    dev.available = False
    assert choose(Ask("m"), routes, Policy(), TUNING).refusal is Refusal.NONE_HEALTHY


def test_correction_per_model_and_device_changes_the_order() -> None:
    a, b = device("a"), device("b")
    sa = slot(a, "m", 1, tps=100, resident=True)
    sb = slot(b, "m", 1, tps=80, resident=True)
    routes = snap({"m": [sa, sb]})
    assert choose(Ask("m"), routes, Policy(), TUNING).plans[0].device == "a"
    sa.correction = 2.0  # observed twice as slow as planned, this model on this device
    assert choose(Ask("m"), routes, Policy(), TUNING).plans[0].device == "b"


def test_large_fleet_stops_early_but_keeps_the_best() -> None:
    devices = [device(f"d{i:04d}") for i in range(1000)]
    slots = [slot(d, "m", 1, tps=10 + i, resident=True) for i, d in enumerate(devices)]
    decision = choose(Ask("m"), snap({"m": slots}), Policy(), TUNING)
    assert [p.device for p in decision.plans] == ["d0999", "d0998", "d0997"]


def test_large_fleet_finds_the_few_devices_holding_the_model_among_hundreds_of_cold_ones() -> None:
    devices = [device(f"d{i:04d}") for i in range(500)]
    slots = [slot(d, "m", 8, tps=10 + i, load_s=20) for i, d in enumerate(devices)]
    routes = snap({"m": slots})
    begin_load(slots[7], 0.0)
    end_load(slots[7], 0.0, ok=True)  # loaded by us
    seen_resident(slots[123], 0.0)  # found loaded by the engine's own report
    assert routes.holders["m"] == [slots[123], slots[7]]  # fastest first
    plan = choose(Ask("m", now=100.0), routes, Policy(), TUNING).best
    assert plan is not None
    assert (plan.device, plan.cold) == ("d0123", False)
    evict(slots[123])
    assert routes.holders["m"] == [slots[7]]
    plan = choose(Ask("m", now=100.0), routes, Policy(), TUNING).best
    assert plan is not None
    assert plan.device == "d0007"
