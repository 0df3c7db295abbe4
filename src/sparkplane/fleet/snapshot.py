"""The fleet as the scheduler sees it: plain data, no I/O, no clock.

A `FleetSnapshot` holds, per device, its memory and live load, and per (model,
device) a `Slot`: resident or cold, the bytes it takes, how long a cold load
takes, the planner's speed figures and what was observed. It is built when
devices, their model lists or their residency change, never per request.

Its objects are live. The one owner of device load (`fleet/load.py` in the
server, `sim/` in the simulator) changes in-flight counts, outstanding work,
observed pace and residency in place through the functions at the end of this
module, so a snapshot never goes stale between rebuilds and the scheduler's
policy (`scheduler/choose.py`) reads it without copying anything.

Nothing here imports the rest of sparkplane: the simulator and the server use
the same types.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

GIB = 1 << 30
# Weight of the newest observation in the pace and correction averages.
EWMA_ALPHA = 0.3
# Seconds per request assumed where nothing better is known.
DEFAULT_SERVICE_S = 1.0
# Output tokens assumed for a request that names no max_tokens.
DEFAULT_OUTPUT_TOKENS = 256
# Bounds of the observed/planned correction: a request that stopped early (fewer
# tokens than max_tokens) or one stuck behind a cold start must not teach the
# scheduler that a device is 100x faster or slower than it is.
CORRECTION_RANGE = (0.2, 5.0)


@dataclass(slots=True, eq=False)
class Demand:
    """How often a model is asked for, anywhere in the fleet (for eviction cost).

    The rate decays on its own: a model not asked for in a long time is worth
    less than its old average says, because the time since the last request
    bounds the interval from below.
    """

    interval_s: float = math.inf  # EWMA of seconds between requests
    last: float = -math.inf
    # The lowest observed/planned correction of any slot of the model: the policy's
    # bound for stopping early on a large fleet (it only ever goes down).
    min_correction: float = 1.0

    def note(self, now: float) -> None:
        """Count one request at `now`."""
        if self.last > -math.inf:
            gap = max(now - self.last, 1e-6)
            self.interval_s = (
                gap
                if math.isinf(self.interval_s)
                else self.interval_s + EWMA_ALPHA * (gap - self.interval_s)
            )
        self.last = now

    def rate(self, now: float) -> float:
        """Expected requests per second from `now` on."""
        if self.last == -math.inf:
            return 0.0
        return 1.0 / max(
            self.interval_s if not math.isinf(self.interval_s) else 0.0, now - self.last, 1e-6
        )


@dataclass(slots=True, eq=False)
class Slot:
    """One model on one device: resident (in memory) or cold (loadable)."""

    device: DeviceState
    model: str  # the device's own name for it
    bytes: int = 0  # memory it takes when resident (observed where the engine says)
    resident: bool = False
    load_s: float = 0.0  # seconds a cold load takes here
    prefill_tps: float | None = None  # planner: prompt tokens per second
    decode_tps: float | None = None  # planner: output tokens per second, one sequence
    image_s: float | None = None  # planner: seconds per image (diffusion)
    image_bytes: int = 0  # planner: memory each image past the first adds to a batch
    demand: Demand = field(default_factory=Demand)
    inflight: int = 0
    pace_s: float | None = None  # observed seconds per request (no planner figures)
    correction: float | None = None  # observed / planned seconds, this model here
    loading: bool = False
    loaded_at: float = -math.inf
    last_used: float = -math.inf
    # The snapshot's holder lists of the routes this slot is on (see FleetSnapshot).
    held_in: list[list[Slot]] = field(default_factory=list, repr=False)

    def planned_s(self, prompt_tokens: int, output_tokens: int, images: int) -> float | None:
        """The planner's seconds for one request here, before correction (None: no figures)."""
        if images and self.image_s is not None:
            return images * self.image_s
        if self.decode_tps is None:
            return None
        out = output_tokens or DEFAULT_OUTPUT_TOKENS
        seconds = out / self.decode_tps
        if prompt_tokens and self.prefill_tps:
            seconds += prompt_tokens / self.prefill_tps
        return seconds

    def batch_cap(self, free_bytes: int) -> int:
        """The most images one batch can hold here with `free_bytes` left once the
        model is resident (its own bytes count one image's activations)."""
        if self.image_bytes <= 0 or self.device.memory_bytes <= 0:
            return 1 << 30
        return 1 + max(free_bytes, 0) // self.image_bytes

    def prefill_s(self, prompt_tokens: int) -> float:
        """The planner's seconds to the first token once the request runs (its prefill)."""
        if not prompt_tokens or not self.prefill_tps:
            return 0.0
        return prompt_tokens / self.prefill_tps * (self.correction or 1.0)

    def service_s(
        self,
        prompt_tokens: int,
        output_tokens: int,
        images: int,
        unknown_s: float = DEFAULT_SERVICE_S,
    ) -> float:
        """Expected seconds to serve one request here: planned x correction, else
        observed, else `unknown_s`."""
        planned = self.planned_s(prompt_tokens, output_tokens, images)
        if planned is not None:
            return planned * (self.correction if self.correction is not None else 1.0)
        if self.pace_s is not None:
            return self.pace_s
        return unknown_s


@dataclass(slots=True, eq=False)
class DeviceState:
    """A device: what it is allowed and able to do, its memory and its live load."""

    name: str
    priority: int = 0
    off_prem: bool = False
    available: bool = True
    memory_bytes: int = 0  # usable by models; 0: unknown (no memory checks, as a cloud API)
    pressure_bytes: int = 0  # taken by others: the host on unified memory, other processes
    unified: bool = False
    parallel: int = 1  # requests it serves at once
    can_load: bool = False  # sparkplane can load and evict models here
    price_per_mtok: float = 0.0  # cloud price per million tokens (prompt + output)
    watts: float = 0.0
    slots: dict[str, Slot] = field(default_factory=dict)
    inflight: int = 0
    outstanding_s: float = 0.0  # estimated seconds of accepted, unfinished work
    reserved_bytes: int = 0  # held for a load in progress
    busy_until: float = -math.inf  # loads run one at a time: when the current one ends

    @property
    def used_bytes(self) -> int:
        """Memory taken: resident models, loads in progress and others' pressure."""
        resident = sum(s.bytes for s in self.slots.values() if s.resident)
        return resident + self.reserved_bytes + self.pressure_bytes

    @property
    def free_bytes(self) -> int:
        """Memory a new model could take without evicting anything."""
        if self.memory_bytes <= 0:
            return 1 << 62
        return self.memory_bytes - self.used_bytes

    def wait_s(self) -> float:
        """Seconds of delay a new request sees here: the work ahead, shared by the
        device's parallel places (sequences batched together slow one another)."""
        return self.outstanding_s / max(self.parallel, 1)

    def start_s(self) -> float:
        """Seconds until a new request could start (its first token then follows its
        prefill): none while a parallel place is free."""
        if self.inflight < self.parallel:
            return 0.0
        return self.outstanding_s / max(self.parallel, 1)

    def resident_slots(self) -> list[Slot]:
        """Models in memory now."""
        return [s for s in self.slots.values() if s.resident]


@dataclass(slots=True)
class FleetSnapshot:
    """Every device and, per public model name, the slots that can serve it.

    `routes[name]` lists slots in a fixed order, fastest planned first, so the
    policy can stop early on a large fleet (see `scheduler/choose.py`).
    """

    devices: dict[str, DeviceState] = field(default_factory=dict)
    routes: dict[str, tuple[Slot, ...]] = field(default_factory=dict)
    # Per route, the slots that hold the model (resident or being loaded), fastest
    # planned first: a large fleet samples these instead of scanning every slot.
    # Kept by the accounting functions below.
    holders: dict[str, list[Slot]] = field(default_factory=dict)

    @classmethod
    def build(
        cls, devices: Iterable[DeviceState], routes: Mapping[str, Iterable[Slot]]
    ) -> FleetSnapshot:
        """A snapshot of `devices`, with each route sorted fastest planned first."""
        sorted_routes = {
            name: tuple(sorted(slots, key=_static_order)) for name, slots in routes.items()
        }
        for slots in sorted_routes.values():
            for slot in slots:
                slot.held_in = []
        holders: dict[str, list[Slot]] = {}
        for name, slots in sorted_routes.items():
            held = holders[name] = [s for s in slots if s.resident or s.loading]
            for slot in slots:
                slot.held_in.append(held)
        return cls({d.name: d for d in devices}, sorted_routes, holders)


def _static_order(slot: Slot) -> tuple[float, float, str]:
    planned = slot.planned_s(0, DEFAULT_OUTPUT_TOKENS, 1 if slot.image_s is not None else 0)
    return (planned if planned is not None else math.inf, slot.load_s, slot.device.name)


# -- the accounting: what the owner of live load calls -----------------------------


def acquire(slot: Slot, estimate_s: float, now: float) -> None:
    """A request starts on `slot`, expected to take `estimate_s`."""
    slot.inflight += 1
    slot.last_used = now
    device = slot.device
    device.inflight += 1
    device.outstanding_s += estimate_s


def release(slot: Slot, estimate_s: float, now: float) -> None:
    """The request taken with `acquire` ended (however it ended)."""
    slot.inflight -= 1
    slot.last_used = now
    device = slot.device
    device.inflight -= 1
    device.outstanding_s = max(device.outstanding_s - estimate_s, 0.0)


def observe(slot: Slot, elapsed_s: float, planned_s: float | None) -> None:
    """Fold one served request's duration into this slot's pace and correction."""
    slot.pace_s = _ewma(slot.pace_s, elapsed_s)
    if planned_s is not None and planned_s > 0:
        low, high = CORRECTION_RANGE
        ratio = min(max(elapsed_s / planned_s, low), high)
        slot.correction = _ewma(slot.correction, ratio)
        slot.demand.min_correction = min(slot.demand.min_correction, slot.correction)


def begin_load(slot: Slot, now: float) -> None:
    """A load of `slot` starts: its memory is reserved, the device's load queue busy."""
    slot.loading = True
    _hold(slot)
    device = slot.device
    device.reserved_bytes += slot.bytes
    device.busy_until = max(device.busy_until, now) + slot.load_s


def end_load(slot: Slot, now: float, ok: bool, bytes_seen: int | None = None) -> None:
    """A load ended: resident if `ok` (with the engine's own figure where it gave one)."""
    slot.loading = False
    device = slot.device
    device.reserved_bytes = max(device.reserved_bytes - slot.bytes, 0)
    if device.busy_until > now:
        device.busy_until = now
    if ok:
        slot.resident = True
        slot.loaded_at = now
        if bytes_seen:
            slot.bytes = bytes_seen
    elif not slot.resident:
        _unhold(slot)


def seen_resident(slot: Slot, now: float) -> None:
    """The engine holds `slot`'s model though we did not load it (it did, or
    another process did)."""
    if not slot.resident:
        slot.resident = True
        slot.loaded_at = now
        _hold(slot)


def evict(slot: Slot) -> None:
    """`slot`'s model left memory."""
    slot.resident = False
    slot.loaded_at = -math.inf
    if not slot.loading:
        _unhold(slot)


def _hold(slot: Slot) -> None:
    for holders in slot.held_in:
        if slot not in holders:
            bisect.insort(holders, slot, key=_static_order)


def _unhold(slot: Slot) -> None:
    for holders in slot.held_in:
        if slot in holders:
            holders.remove(slot)


def _ewma(old: float | None, new: float) -> float:
    return new if old is None else old + EWMA_ALPHA * (new - old)
