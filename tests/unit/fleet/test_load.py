"""The one owner of live device load: the snapshot follows the catalog and
keeps what was learned across rebuilds."""

from __future__ import annotations

from sparkplane.fleet.load import LoadBook, LoadSettings
from sparkplane.planner import builtin_profiles
from tests.fakes.fleet import FakeFleet, record
from tests.support.scheduling import no_figures


def book_for(fake: FakeFleet) -> LoadBook:
    book = LoadBook(fake.fleet, builtin_profiles(), LoadSettings(parallel=2), no_figures)
    fake.fleet.listeners.append(book.rebuild)
    book.rebuild()
    return book


def test_snapshot_follows_the_catalog_and_keeps_live_figures() -> None:
    fake = FakeFleet()
    fake.fleet.sync([record("a", ("m1", "m2")), record("b", ("m1",))])
    book = book_for(fake)
    assert sorted(book.snapshot.routes) == ["m1", "m2"]
    slot = next(s for s in book.snapshot.routes["m1"] if s.device.name == "a")
    book.acquire(slot, 3.0)
    book.observe(book.device(slot), slot, 2.0, None)

    device = fake.fleet.by_name("a")
    assert device is not None
    device.models = frozenset({"m1"})  # the engine stopped serving m2
    fake.fleet.rebuild_catalog()
    assert sorted(book.snapshot.routes) == ["m1"]
    assert set(device.state.slots) == {"m1"}
    again = next(s for s in book.snapshot.routes["m1"] if s.device.name == "a")
    assert again is slot  # in flight and observed pace survive the rebuild
    assert (again.inflight, again.pace_s, device.inflight) == (1, 2.0, 1)
    assert device.state.parallel == 2


def test_device_settings_reach_the_snapshot() -> None:
    fake = FakeFleet()
    extra = {"profile": "dgx-spark", "parallel": 8, "memory_gib": 100}
    fake.fleet.sync([record("spark", ("m",), priority=3, extra=extra)])
    book = book_for(fake)
    state = book.snapshot.devices["spark"]
    assert (state.priority, state.parallel, state.memory_bytes) == (3, 8, 100 << 30)
    assert state.unified  # a GB10 shares its memory with the host
    device = fake.fleet.by_name("spark")
    assert device is not None
    device.breaker.trip(0.0)
    assert not state.available  # the breaker's change reaches the snapshot at once
