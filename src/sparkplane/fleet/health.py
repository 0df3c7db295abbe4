"""The health loop: re-reads the device table, probes every device, feeds the
circuit breakers, reads what engines hold in memory (`ResidencyControl`), and
writes what it saw back for the CLI and other replicas."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from sparkplane.backends.residency import Residency, ResidencyControl
from sparkplane.errors import SparkplaneError
from sparkplane.fleet.device import Device
from sparkplane.fleet.load import LoadBook
from sparkplane.fleet.registry import Fleet
from sparkplane.fleet.residency import ResidencyStore, Resident
from sparkplane.fleet.store import DeviceStore

log = structlog.get_logger("sparkplane.health")


class HealthMonitor:
    """Probes the fleet every `interval` seconds until stopped."""

    def __init__(
        self,
        fleet: Fleet,
        store: DeviceStore,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[Device], None] | None = None,
        *,
        book: LoadBook | None = None,
        residency: ResidencyStore | None = None,
        on_residency: Callable[[], None] | None = None,
    ) -> None:
        self._fleet = fleet
        self._store = store
        self._interval = interval
        self._clock = clock
        self._on_change = on_change
        self._book = book
        self._residency = residency
        self._on_residency = on_residency

    async def run(self) -> None:
        """Probe forever; one bad round is logged, never fatal."""
        while True:
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("health_round_failed", action="health.round")
            await asyncio.sleep(self._interval)

    async def round(self) -> None:
        """One pass: sync devices from the database, probe them, save results."""
        self._fleet.sync(await self._store.list_devices())
        devices = [d for d in self._fleet.devices() if d.record.enabled]
        due = [d for d in devices if d.breaker.should_probe(self._clock())]
        changed = await asyncio.gather(*(self.probe(d) for d in due))
        if any(changed):
            self._fleet.rebuild_catalog()
        await self._store.save_probes([d.record for d in due])
        if self._book is not None:
            moved = await asyncio.gather(*(self.read_residency(d) for d in due if d.available))
            if any(moved) and self._on_residency is not None:
                self._on_residency()

    async def read_residency(self, device: Device) -> bool:
        """Ask the engine what it holds; True if that changed (and was written down)."""
        backend = device.backend
        if self._book is None or not isinstance(backend, ResidencyControl):
            return False
        try:
            report = await backend.residency()
        except SparkplaneError as exc:
            log.debug("residency_unread", action="health.residency", device=device.name,
                      reason=exc.message)  # fmt: skip
            return False
        if not self._book.residency_seen(device, report):
            return False
        if self._residency is not None:
            residents = [
                Resident(s.model, s.bytes, "engine" if _reported(report, s.model) else "planner")
                for s in self._book.slots_of(device)
                if s.resident
            ]
            await self._residency.replace(device.id, residents)
        return True

    async def probe(self, device: Device) -> bool:
        """Probe one device and update its state; True if its model list changed."""
        before = device.health
        try:
            result = await device.backend.probe()
        except Exception as exc:  # noqa: BLE001 - one device's odd failure must not stop the round
            opened = device.breaker.record_failure(self._clock())
            reason = exc.message if isinstance(exc, SparkplaneError) else f"probe failed: {exc!r}"
            device.record.last_error = reason[:300]
            device.record.health = device.health
            # Only the first opening is news; a failed retry after the cool-down is not.
            if opened and before not in ("unhealthy", "probing"):
                log.warning(
                    "circuit_opened",
                    action="health.breaker",
                    device=device.name,
                    reason=reason,
                )
            self._notify(device, before)
            return False
        changed = device.apply_probe(result)
        device.record.health = device.health
        if before in ("unhealthy", "probing"):
            log.info("circuit_closed", action="health.breaker", device=device.name)
        self._notify(device, before)
        return changed

    def _notify(self, device: Device, before: str) -> None:
        if self._on_change is not None and device.health != before:
            self._on_change(device)


def _reported(report: Residency, model: str) -> bool:
    return any(m.name == model and m.bytes for m in report.loaded)
