"""The peers' models behave as their documentation says."""

from __future__ import annotations

import pytest

from sparkplane.sim.baselines import Binpack, LeastBusy, Ollama, RoundRobin
from sparkplane.sim.engine import OOM, SERVED, Engine
from sparkplane.sim.metrics import attained, summarize
from sparkplane.sim.ours import Sparkplane
from tests.unit.sim.helpers import device, trace, world


def test_round_robin_alternates_between_deployments() -> None:
    a, b = device("a", parallel=4), device("b", parallel=4)
    w = world([(a, "m", 8, 1.0), (b, "m", 8, 1.0)], resident=True)
    e = Engine(w, trace(*((float(i), "m", 0, 10) for i in range(6))))
    e.run(RoundRobin(e))
    assert e.where == ["a", "b", "a", "b", "a", "b"]


def test_least_busy_overcommits_memory_and_the_out_of_memory_load_is_a_miss() -> None:
    gpu = device("gpu", gib=24, parallel=4)
    w = world([(gpu, "big", 15, 5.0), (gpu, "other", 15, 5.0)])
    tr = trace((0, "big", 0, 1000), (1, "other", 0, 100))
    e = Engine(w, tr)
    e.run(LeastBusy(e))
    s = summarize(e, "least-busy")
    assert e.outcome == [SERVED, OOM]
    assert s.oom == 1
    assert list(attained(e)) == [True, False]
    # Our policy on the same fleet and trace waits for room instead.
    w2 = world([(g := device("gpu", gib=24, parallel=4), "big", 15, 5.0), (g, "other", 15, 5.0)])
    e2 = Engine(w2, tr)
    e2.run(Sparkplane(e2))
    assert summarize(e2, "sparkplane").oom == 0


def test_ollama_runs_fifo_with_one_load_at_a_time_and_the_head_blocks_the_line() -> None:
    gpu = device("gpu", gib=24, parallel=4)
    w = world([(gpu, "a", 15, 5.0), (gpu, "b", 15, 5.0)])
    # a (10 s of work), then b (needs a's memory), then a again (resident, but behind b).
    e = Engine(w, trace((0, "a", 0, 1000), (1, "b", 0, 100), (2, "a", 0, 100)))
    e.run(Ollama(e))
    start = [e.trace.t[i] + e.latency[i] - d for i, d in enumerate((10.0, 1.0, 1.0))]
    assert start[0] == pytest.approx(5.0)  # after a's load
    assert start[1] == pytest.approx(15.0 + 5.0)  # a idle at 15, evicted, b loaded
    assert start[2] == pytest.approx(21.0 + 5.0)  # b idle at 21, evicted, a loaded again
    assert e.cold_loads == 3
    assert summarize(e, "ollama").oom == 0


def test_ollama_unloads_a_model_idle_past_its_keep_alive() -> None:
    gpu = device("gpu", gib=24, parallel=4)
    w = world([(gpu, "a", 8, 5.0)])
    e = Engine(w, trace((0, "a", 0, 100), (100, "a", 0, 100), (1000, "a", 0, 100)))
    e.run(Ollama(e))
    assert e.cold_loads == 2  # kept for 5 minutes after t=6, not for 900 s


def test_binpack_places_once_and_never_moves_a_model() -> None:
    spark, gpu = device("spark", gib=100, parallel=4), device("gpu", gib=24, parallel=4)
    w = world(
        [
            (spark, "big", 60, 30.0),
            (spark, "small", 8, 3.0),
            (gpu, "small", 8, 3.0),
            (spark, "mid", 20, 8.0),
            (gpu, "mid", 20, 8.0),
        ]
    )
    rows = [(float(i), m, 0, 50) for i, m in enumerate(["big", "small", "mid"] * 20)]
    e = Engine(w, trace(*rows))
    e.run(Binpack(e))
    homes = {
        m: {e.where[i] for i, x in enumerate(e.trace.model) if x == m}
        for m in ("big", "small", "mid")
    }
    # Largest first, where the least memory stays free: big on the spark (40 GiB left),
    # mid on the 4090 (4 left, not 20), small where it still fits: the spark.
    assert homes == {"big": {"spark"}, "mid": {"gpu"}, "small": {"spark"}}
    assert e.cold_loads == 0
    assert e.bytes_moved == 0
