"""Carrying out a plan's evict and load steps through the engines' own controls.

Loads run one at a time per device (a lock per device), each under the load
timeout, never the first-byte timeout: a cold 70B model may take minutes to
read, and that is not the engine hanging. Under the lock the steps are planned
again from the live snapshot, since the device may have changed while the
request waited (another request loaded the model, or took the memory). A
model with work in flight is never evicted: `evictions()` only offers idle
ones. Every load and eviction is logged, counted in Prometheus and written to
the device's history.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from sparkplane.backends.residency import ResidencyControl, UnsupportedControl
from sparkplane.errors import SparkplaneError, Unavailable, UpstreamError, UpstreamTimeout
from sparkplane.fleet.device import Device
from sparkplane.fleet.load import LoadBook
from sparkplane.fleet.residency import DeviceEvent, EventKind, ResidencyStore
from sparkplane.fleet.snapshot import Slot, begin_load, end_load, evict
from sparkplane.metrics import Metrics
from sparkplane.scheduler.choose import Plan, Tuning
from sparkplane.scheduler.evict import evictions

log = structlog.get_logger("sparkplane.scheduler")


class Loader:
    """Runs evictions and loads; see the module docstring."""

    def __init__(
        self,
        book: LoadBook,
        store: ResidencyStore,
        metrics: Metrics,
        tuning: Tuning,
        load_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._book = book
        self._store = store
        self._metrics = metrics
        self._tuning = tuning
        self._timeout = load_timeout_s
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self.changed: Callable[[], None] = lambda: None  # called after memory changed

    async def prepare(self, plan: Plan, device: Device) -> None:
        """Make `plan`'s model resident on `device`; raises when it cannot be."""
        slot = plan.slot
        if slot.resident:
            return
        lock = self._locks.setdefault(device.id, asyncio.Lock())
        async with lock:
            if slot.resident:
                return  # another request loaded it while this one waited
            control = device.backend
            if not isinstance(control, ResidencyControl):
                raise Unavailable(f"device '{device.name}' cannot load models", code="no_room")
            victims = evictions(slot, self._clock(), self._tuning.min_resident_s)
            if victims is None:
                raise Unavailable(
                    f"device '{device.name}' has no room for '{slot.model}' now", code="no_room"
                )
            for victim in victims:
                await self._evict(device, control, victim, slot.model)
            await self._load(device, control, slot)
        self.changed()

    async def _evict(
        self, device: Device, control: ResidencyControl, victim: Slot, needed_by: str
    ) -> None:
        if victim.inflight:  # work arrived for it while this request waited for the lock
            raise Unavailable(f"'{victim.model}' on '{device.name}' is busy", code="no_room")
        started = self._clock()
        try:
            await control.unload(victim.model, self._timeout)
        except SparkplaneError as exc:
            await self._note(device, EventKind.EVICT_FAILED, victim, None, exc.message)
            self._metrics.evictions.labels(device.name, victim.model, "failed").inc()
            raise
        evict(victim)
        seconds = self._clock() - started
        await self._note(device, EventKind.EVICT, victim, seconds, f"for {needed_by}")
        self._metrics.evictions.labels(device.name, victim.model, "ok").inc()

    async def _load(self, device: Device, control: ResidencyControl, slot: Slot) -> None:
        started = self._clock()
        begin_load(slot, started)
        try:
            async with asyncio.timeout(self._timeout):
                await control.load(slot.model, self._timeout)
        except UnsupportedControl:
            end_load(slot, self._clock(), ok=False)
            self._book.cannot_load(device)
            raise Unavailable(
                f"device '{device.name}' cannot load '{slot.model}' on request", code="no_room"
            ) from None
        except (SparkplaneError, TimeoutError) as exc:
            end_load(slot, self._clock(), ok=False)
            why = exc.message if isinstance(exc, SparkplaneError) else "load timed out"
            await self._note(device, EventKind.LOAD_FAILED, slot, self._clock() - started, why)
            self._metrics.loads.labels(device.name, slot.model, "failed").inc()
            if isinstance(exc, TimeoutError):
                raise UpstreamTimeout(
                    f"loading '{slot.model}' on '{device.name}' timed out"
                ) from None
            if isinstance(exc, UpstreamError):
                raise
            raise UpstreamError(why) from exc
        seconds = self._clock() - started
        end_load(slot, self._clock(), ok=True)
        await self._note(device, EventKind.LOAD, slot, seconds, "")
        self._metrics.loads.labels(device.name, slot.model, "ok").inc()

    async def _note(
        self, device: Device, kind: EventKind, slot: Slot, seconds: float | None, detail: str
    ) -> None:
        log.info(
            f"model_{kind.value}", action="scheduler.residency", device=device.name,
            model=slot.model, bytes=slot.bytes, seconds=seconds and round(seconds, 3),
            detail=detail or None,
        )  # fmt: skip
        event = DeviceEvent(device.id, kind, slot.model, slot.bytes, seconds, detail)
        try:
            await self._store.record([event])
        except Exception:  # noqa: BLE001 - history is best effort; the load itself happened
            log.warning("device_event_unwritten", action="scheduler.residency", device=device.name)
