"""The event loop with sparkplane's policy: completion times a user could work out by hand."""

from __future__ import annotations

import pytest

from sparkplane.sim.engine import FAILED, SERVED, Engine
from sparkplane.sim.fleetfile import OutageSpec
from sparkplane.sim.metrics import summarize
from sparkplane.sim.ours import Sparkplane
from sparkplane.sim.trace import Trace
from tests.unit.sim.helpers import device, trace, world


def run(e: Engine) -> Engine:
    e.run(Sparkplane(e))
    return e


def test_cold_load_then_warm_request_take_the_times_the_profiles_say() -> None:
    # 1,000 prompt tokens at 1,000 tok/s = 1 s; 100 output tokens at 100 tok/s = 1 s.
    gpu = device("gpu")
    e = run(Engine(world([(gpu, "m", 8, 10.0)]), trace((0, "m", 1000, 100), (20, "m", 1000, 100))))
    assert e.latency == pytest.approx([12.0, 2.0])  # the first waits for a 10 s load
    assert e.ttft == pytest.approx([11.01, 1.01])
    assert e.tpot == pytest.approx([0.01, 0.01])
    s = summarize(e, "sparkplane")
    assert s.cold_loads == 1
    assert s.gb_moved == pytest.approx(8 * 2**30 / 1e9)
    assert s.oom == 0
    assert s.served == 2


def test_two_devices_share_the_work_and_the_third_request_waits_for_the_first_free() -> None:
    a, b = device("a"), device("b")
    w = world([(a, "m", 8, 1.0), (b, "m", 8, 1.0)], resident=True)
    # Each request: 0 prompt tokens, 1,000 output tokens at 100 tok/s = 10 s.
    e = run(Engine(w, trace((0, "m", 0, 1000), (0, "m", 0, 1000), (0, "m", 0, 1000))))
    assert sorted(e.latency) == pytest.approx([10.0, 10.0, 20.0])
    assert {e.where[0], e.where[1]} == {"a", "b"}
    assert e.outcome == [SERVED] * 3


def test_a_model_too_big_for_the_free_memory_waits_instead_of_running_out_of_memory() -> None:
    gpu = device("gpu", gib=24)
    w = world([(gpu, "big", 15, 5.0), (gpu, "other", 15, 5.0)])
    e = run(Engine(w, trace((0, "big", 0, 1000), (1, "other", 0, 100))))
    s = summarize(e, "sparkplane")
    assert s.oom == 0
    assert s.served == 2
    # "other" could load only once "big" had stopped serving and was old enough to evict
    # (min_resident_s = 60 after its load ended at t = 5): then a 5 s load and 1 s of work.
    assert 65.0 + 5.0 + 1.0 - 1.0 <= e.latency[1] <= 70.0 + 5.0 + 1.0 - 1.0
    assert e.where == ["gpu", "gpu"]
    assert s.cold_loads == 2


def test_requests_running_on_a_device_that_drops_out_fail_and_later_ones_go_elsewhere() -> None:
    a, b = device("a", priority=1), device("b")
    w = world([(a, "m", 8, 1.0), (b, "m", 8, 1.0)], resident=True)
    w.outages.append(OutageSpec(device="a", at_s=5, for_s=100))
    e = run(Engine(w, trace((0, "m", 0, 1000), (10, "m", 0, 100))))
    assert e.where[0] == "a"
    assert e.outcome[0] == FAILED
    assert e.where[1] == "b"
    assert e.outcome[1] == SERVED


def test_the_cloud_serves_an_allowed_tenant_when_local_devices_cannot_meet_the_deadline() -> None:
    gpu = device("gpu")
    cloud = device("cloud", gib=0, parallel=100, off_prem=True, price_per_mtok=1.0)
    cloud.memory_bytes = 0
    w = world([(gpu, "m", 8, 80.0)], cloud=cloud, tenants_with_cloud=("paying",))
    tr = trace()
    tr.append(0, "m", "paying", 1000, 1000)
    tr.append(0, "m", "local-only", 1000, 1000)
    e = run(Engine(w, tr))
    assert e.where == ["cloud", "gpu"]  # an 80 s load misses the deadline of 10 + 1000 x 0.05 s
    assert summarize(e, "sparkplane").cloud_spend == pytest.approx(2000 / 1e6)


def test_an_image_batch_is_split_across_devices_and_ends_with_its_last_part() -> None:
    a, b = device("a"), device("b")
    w = world([(a, "sdxl", 8, 1.0), (b, "sdxl", 8, 1.0)], resident=True)
    for s in w.snapshot.routes["sdxl"]:
        s.image_s, s.decode_tps, s.prefill_tps = 5.0, None, None
    tr = Trace()
    tr.append(0, "sdxl", "", 0, 0, images=8)
    tr.append(60, "sdxl", "", 0, 0, images=1)
    e = run(Engine(w, tr))
    assert e.latency == pytest.approx([20.0, 5.0])  # 4 + 4 images at 5 s, not 40 s on one
    assert e.outcome == [SERVED, SERVED]
    assert sorted(n.busy_s for n in e.nodes.values()) == pytest.approx([20.0, 25.0])
