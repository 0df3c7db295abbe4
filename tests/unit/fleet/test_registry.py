"""The in-memory fleet kept in step with the device table."""

from __future__ import annotations

from typing import Any

import pytest

from sparkplane.fleet.breaker import BreakerState
from sparkplane.fleet.device import Device
from tests.fakes.fleet import FakeFleet, record


def wear(device: Device) -> None:
    """Give a device live state worth keeping: an open breaker, load, a pace."""
    device.inflight = 2
    device.observe(1.5)
    for _ in range(device.breaker.threshold):
        device.breaker.record_failure(0.0)
    assert device.breaker.state is BreakerState.OPEN


def test_sync_adds_devices_and_indexes_their_stored_models() -> None:
    fake = FakeFleet()
    assert fake.fleet.sync([record("a", ["llama"]), record("b", ["qwen"])]) is True
    assert [d.name for d in fake.fleet.devices()] == ["a", "b"]
    assert len(fake.fleet) == 2
    routes = fake.fleet.catalog.routes("llama")
    assert routes is not None
    assert [r.device.name for r in routes] == ["a"]


def test_sync_with_nothing_new_reports_no_change_and_keeps_the_devices() -> None:
    fake = FakeFleet()
    fake.fleet.sync([record("a")])
    before = fake.fleet.by_name("a")
    assert fake.fleet.sync([record("a")]) is False
    assert fake.fleet.by_name("a") is before
    assert fake.made == ["a"]


def test_sync_removes_devices_gone_from_the_table() -> None:
    fake = FakeFleet()
    fake.fleet.sync([record("a", ["llama"]), record("b", ["qwen"])])
    assert fake.fleet.sync([record("b", ["qwen"])]) is True
    assert fake.fleet.by_name("a") is None
    assert fake.fleet.catalog.routes("llama") is None
    assert fake.fleet.sync([]) is True
    assert len(fake.fleet) == 0


@pytest.mark.parametrize(
    "change",
    [
        {"priority": 7},
        {"off_prem": True},
        {"enabled": False},
        {"extra": {"note": "rack 2"}},
    ],
)
def test_settings_change_applies_and_keeps_live_state(change: dict[str, Any]) -> None:
    fake = FakeFleet()
    fake.fleet.sync([record("a")])
    dev = fake.fleet.by_name("a")
    assert dev is not None
    wear(dev)
    assert fake.fleet.sync([record("a", **change)]) is True
    same = fake.fleet.by_name("a")
    assert same is dev
    for field, value in change.items():
        assert getattr(same.record, field) == value
    assert same.inflight == 2
    assert same.ewma_s == 1.5
    assert same.breaker.state is BreakerState.OPEN
    assert fake.made == ["a"]


def test_rename_keeps_the_device_and_its_state() -> None:
    fake = FakeFleet()
    fake.fleet.sync([record("a")])
    dev = fake.fleet.by_name("a")
    assert dev is not None
    wear(dev)
    fake.fleet.sync([record("renamed", id="id-a", url=dev.record.url)])
    assert fake.fleet.by_name("a") is None
    assert fake.fleet.by_name("renamed") is dev
    assert dev.inflight == 2


@pytest.mark.parametrize(
    "change",
    [{"url": "http://elsewhere.invalid"}, {"kind": "ollama"}, {"api_key": "sk-new"}],
)
def test_adapter_change_starts_the_device_afresh(change: dict[str, Any]) -> None:
    fake = FakeFleet()
    fake.fleet.sync([record("a", ["llama"])])
    dev = fake.fleet.by_name("a")
    assert dev is not None
    wear(dev)
    assert fake.fleet.sync([record("a", ["llama"], **change)]) is True
    fresh = fake.fleet.by_name("a")
    assert fresh is not None
    assert fresh is not dev
    assert fake.made == ["a", "a"]
    assert fresh.inflight == 0
    assert fresh.ewma_s is None
    assert fresh.breaker.closed
    for field, value in change.items():
        assert getattr(fresh.record, field) == value
    # The catalog points at the new device, not the replaced one.
    routes = fake.fleet.catalog.routes("llama")
    assert routes is not None
    assert [r.device for r in routes] == [fresh]


def test_aliases_apply_to_synced_devices() -> None:
    fake = FakeFleet(aliases={"chat": ["ollama:llama3.1:8b"]})
    fake.fleet.sync([record("box", ["llama3.1:8b"], kind="ollama")])
    routes = fake.fleet.catalog.routes("chat")
    assert routes is not None
    assert [(r.device.name, r.model) for r in routes] == [("box", "llama3.1:8b")]


def test_rebuild_catalog_picks_up_probed_models() -> None:
    fake = FakeFleet()
    fake.fleet.sync([record("a", ["old"])])
    dev = fake.fleet.by_name("a")
    assert dev is not None
    dev.models = frozenset({"new"})
    assert fake.fleet.catalog.routes("new") is None
    fake.fleet.rebuild_catalog()
    assert fake.fleet.catalog.routes("new") is not None
    assert fake.fleet.catalog.routes("old") is None
