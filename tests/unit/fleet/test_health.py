"""The health loop: one device's strange failure never stops the others' checks."""

from __future__ import annotations

from typing import Any

from sparkplane.backends.base import ProbeResult
from sparkplane.fleet.device import DeviceRecord
from sparkplane.fleet.health import HealthMonitor
from tests.fakes.backend import FakeBackend, FakeClock
from tests.fakes.fleet import FakeFleet, record


class _Weird(FakeBackend):
    async def probe(self) -> ProbeResult:
        raise ValueError("Newline or carriage return character detected in HTTP header")


class _Store:
    def __init__(self, records: list[DeviceRecord]) -> None:
        self.records = records
        self.saved: list[DeviceRecord] = []

    async def list_devices(self) -> list[DeviceRecord]:
        return self.records

    async def save_probes(self, records: list[DeviceRecord], when: Any = None) -> None:
        self.saved.extend(records)


async def test_an_unexpected_probe_error_marks_only_that_device() -> None:
    fake = FakeFleet({"odd": _Weird(), "good": FakeBackend(models=["m"])}, threshold=1)
    store = _Store([record("odd"), record("good")])
    monitor = HealthMonitor(fake.fleet, store, interval=1.0, clock=FakeClock())  # type: ignore[arg-type]
    await monitor.round()
    odd, good = fake.fleet.by_name("odd"), fake.fleet.by_name("good")
    assert odd is not None
    assert good is not None
    assert odd.health == "unhealthy"
    assert "Newline" in (odd.record.last_error or "")
    assert good.health == "healthy"
    assert {r.name for r in store.saved} == {"odd", "good"}
