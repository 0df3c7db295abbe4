"""The one owner of live device load in the server.

`LoadBook` keeps the `FleetSnapshot` the scheduler reads: one `DeviceState` per
device and one `Slot` per (device, model it can serve). It is rebuilt when the
catalog or a device's residency changes (health loop, loads, evictions), never
per request; rebuilding keeps the live figures of slots that still exist.
Dispatch, the job worker and the health loop change load only through its
methods: `acquire`, `release`, `observe`, `failed`, `residency_seen`, and the
load and eviction bookkeeping used by `scheduler/steps.py`.

Figures come, best first, from what the engine reports (`ResidencyControl`),
the planner (the device's `extra.profile` and the model's catalog entry), and
the device's own settings (`extra.memory_gib`, `extra.parallel`,
`extra.load_gbs`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from sparkplane.backends.residency import Residency, ResidencyControl
from sparkplane.fleet.device import Device
from sparkplane.fleet.registry import Fleet
from sparkplane.fleet.snapshot import (
    GIB,
    Demand,
    DeviceState,
    FleetSnapshot,
    Slot,
    acquire,
    evict,
    observe,
    release,
    seen_resident,
)
from sparkplane.planner import DeviceProfile, find_device, load_model, plan
from sparkplane.planner.errors import PlannerError

log = structlog.get_logger("sparkplane.fleet")

# Fixed seconds of an engine's start-up work in every load, on top of reading the bytes.
LOAD_OVERHEAD_S = 1.0


@dataclass(frozen=True, slots=True)
class LoadSettings:
    """Defaults for devices that say nothing of themselves."""

    parallel: int = 4  # requests a device serves at once
    load_gbs: float = 2.0  # GB/s a model is read into memory (NVMe-class disk)


@dataclass(frozen=True, slots=True)
class ModelFigures:
    """What the planner says of one model on one kind of device."""

    bytes: int
    prefill_tps: float | None
    decode_tps: float | None
    image_s: float | None


Planner = Callable[[str, DeviceProfile, str | None], ModelFigures | None]


class LoadBook:
    """See the module docstring."""

    def __init__(
        self,
        fleet: Fleet,
        profiles: Mapping[str, DeviceProfile],
        settings: LoadSettings,
        planner: Planner,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fleet = fleet
        self._profiles = profiles
        self._settings = settings
        self._planner = planner
        self._clock = clock
        self._devices: dict[str, Device] = {}  # by name
        self._slots: dict[tuple[str, str], Slot] = {}  # by (device id, model)
        self._demand: dict[str, Demand] = {}  # by public model name
        self._residency: dict[str, Residency] = {}  # by device id, as last reported
        self._no_control: set[str] = set()  # device ids whose engine cannot load
        self._figures: dict[tuple[str, str, str | None], ModelFigures | None] = {}
        self.snapshot = FleetSnapshot()

    # -- reading ---------------------------------------------------------------

    def device(self, slot: Slot) -> Device:
        """The device a slot of the snapshot belongs to."""
        return self._devices[slot.device.name]

    def demand(self, public: str) -> Demand:
        """How often `public` is asked for."""
        found = self._demand.get(public)
        if found is None:
            found = self._demand[public] = Demand()
        return found

    def slots_of(self, device: Device) -> list[Slot]:
        """Every model `device` can serve, resident or not, by name."""
        return sorted(device.state.slots.values(), key=lambda s: s.model)

    # -- building --------------------------------------------------------------

    def rebuild(self) -> None:
        """Build the snapshot from the fleet's devices and catalog, keeping live figures."""
        devices = self._fleet.devices()
        self._devices = {d.name: d for d in devices}
        routes: dict[str, list[Slot]] = {}
        seen: set[tuple[str, str]] = set()
        for entry in sorted(self._fleet.catalog.entries(), key=lambda e: not e.alias):
            demand = self.demand(entry.name)
            for route in entry.routes:
                slot = self._slot(route.device, route.model, demand)
                seen.add((route.device.id, route.model))
                routes.setdefault(entry.name, []).append(slot)
        # A model a device no longer serves (or a device gone) leaves the snapshot.
        self._slots = {k: s for k, s in self._slots.items() if k in seen}
        for device in devices:
            state = device.state
            self._describe(device, state)
            keep = {m for (d, m) in seen if d == device.id}
            state.slots = {m: s for m, s in state.slots.items() if m in keep}
            self._apply_residency(device, state)
        self.snapshot = FleetSnapshot.build((d.state for d in devices), routes)

    def _slot(self, device: Device, model: str, demand: Demand) -> Slot:
        key = (device.id, model)
        slot = self._slots.get(key)
        state = device.state
        if slot is None or slot.device is not state:
            slot = Slot(device=state, model=model, demand=demand, resident=True)
            self._slots[key] = slot
            state.slots[model] = slot
        profile = self._profile(device)
        figures = self._figures_for(model, profile, device) if profile is not None else None
        if figures is not None:
            if not slot.resident or not slot.bytes:
                slot.bytes = figures.bytes
            slot.prefill_tps = figures.prefill_tps
            slot.decode_tps = figures.decode_tps
            slot.image_s = figures.image_s
        gbs = _positive(device.record.extra.get("load_gbs")) or self._settings.load_gbs
        slot.load_s = slot.bytes / (gbs * 1e9) + LOAD_OVERHEAD_S
        return slot

    def _describe(self, device: Device, state: DeviceState) -> None:
        record = device.record
        extra = record.extra
        profile = self._profile(device)
        state.name = record.name
        state.priority = record.priority
        state.off_prem = record.off_prem
        state.available = device.available
        state.unified = profile is not None and profile.kind != "discrete"
        state.parallel = int(_positive(extra.get("parallel")) or self._settings.parallel)
        state.watts = _positive(extra.get("power_w")) or (profile.power_w if profile else 0.0)
        state.price_per_mtok = _positive(extra.get("price_per_mtok")) or 0.0
        memory = _positive(extra.get("memory_gib"))
        if memory:
            state.memory_bytes = int(memory * GIB)
        elif profile is not None:
            state.memory_bytes = profile.usable_bytes
        state.can_load = (
            isinstance(device.backend, ResidencyControl) and device.id not in self._no_control
        )

    def _profile(self, device: Device) -> DeviceProfile | None:
        name = device.record.extra.get("profile")
        if not isinstance(name, str):
            return None
        try:
            return find_device(self._profiles, name)
        except PlannerError:
            return None

    def _figures_for(
        self, model: str, profile: DeviceProfile, device: Device
    ) -> ModelFigures | None:
        quant = device.record.extra.get("quant")
        quant = quant if isinstance(quant, str) else None
        key = (model, profile.id, quant)
        if key not in self._figures:
            self._figures[key] = self._planner(model, profile, quant)
        return self._figures[key]

    # -- residency -------------------------------------------------------------

    def residency_seen(self, device: Device, report: Residency) -> bool:
        """Take in what the engine says it holds; True if residency changed."""
        before = self._residency.get(device.id)
        self._residency[device.id] = report
        state = device.state
        changed = before is None or before.names() != report.names()
        self._apply_residency(device, state)
        return changed

    def _apply_residency(self, device: Device, state: DeviceState) -> None:
        report = self._residency.get(device.id)
        if report is None:
            return
        loaded = {m.name: m for m in report.loaded}
        for model, slot in state.slots.items():
            if slot.loading:
                continue
            seen = loaded.get(model)
            if seen is None and slot.resident:
                evict(slot)
            elif seen is not None:
                seen_resident(slot, self._clock())
                if seen.bytes:
                    slot.bytes = seen.bytes
        if report.total_bytes and not _positive(device.record.extra.get("memory_gib")):
            state.memory_bytes = report.total_bytes
        if report.total_bytes and report.free_bytes is not None:
            ours = sum(m.bytes or 0 for m in report.loaded)
            # What the engine's own models do not explain is someone else's: on
            # unified memory that is the host's pressure on the same pool.
            state.pressure_bytes = max(report.total_bytes - report.free_bytes - ours, 0)
        slots = report.detail.get("total_slots")
        if isinstance(slots, int) and slots > 0 and not device.record.extra.get("parallel"):
            state.parallel = slots

    def cannot_load(self, device: Device) -> None:
        """The engine said it has no load control: plan only what it already holds."""
        self._no_control.add(device.id)
        device.state.can_load = False

    # -- live load ---------------------------------------------------------------

    def acquire(self, slot: Slot, estimate_s: float) -> None:
        """A request starts on `slot`."""
        acquire(slot, estimate_s, self._clock())

    def release(self, slot: Slot, estimate_s: float) -> None:
        """A request on `slot` ended."""
        release(slot, estimate_s, self._clock())

    def observe(
        self, device: Device, slot: Slot, elapsed_s: float, planned_s: float | None
    ) -> None:
        """A request on `slot` was served in `elapsed_s`: learn pace, per model and device."""
        observe(slot, elapsed_s, planned_s)
        device.observe(elapsed_s)
        device.breaker.reset_failures()

    def failed(self, device: Device) -> bool:
        """A request on `device` failed; True if its breaker opened."""
        opened = device.breaker.record_failure(self._clock())
        device.record.health = device.health
        return opened


def _positive(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def plan_figures(model: str, profile: DeviceProfile, quant: str | None) -> ModelFigures | None:
    """The planner's memory and speed for catalog model `model` on `profile` (None: unknown).

    Engine tags such as Ollama's `:latest` are dropped before the catalog lookup.
    """
    name = model.removesuffix(":latest")
    try:
        spec = load_model(name, allow_paths=False)
        planned = plan(spec, profiles={profile.id: profile}, devices=[profile.id], quant=quant)
    except PlannerError:
        return None
    device = planned.devices[0]
    return ModelFigures(
        bytes=device.memory.total,
        prefill_tps=device.prefill.tokens_per_s if device.prefill else None,
        decode_tps=device.decode.tokens_per_s if device.decode else None,
        image_s=device.diffusion.seconds_per_image if device.diffusion else None,
    )
