"""What to take out of memory so a model fits: idle residents, cheapest to lose first.

Pure functions over a device's slots, used by `choose()` to plan a load and by
the load steps to re-check the plan on the device right before they act.
"""

from __future__ import annotations

from sparkplane.fleet.snapshot import Slot


def evictions(slot: Slot, now: float, min_resident_s: float) -> tuple[Slot, ...] | None:
    """The resident models to evict so `slot` fits, cheapest to lose first.

    None when it cannot fit: too big for the device, or too little is idle
    and old enough to evict. An empty tuple when it fits as things are.
    """
    device = slot.device
    if device.memory_bytes <= 0:
        return ()
    if slot.bytes > device.memory_bytes - device.pressure_bytes:
        return None
    short = slot.bytes - device.free_bytes
    if short <= 0:
        return ()
    idle = [
        s
        for s in device.slots.values()
        if s.resident
        and s is not slot
        and s.inflight == 0
        and not s.loading
        and now - s.loaded_at >= min_resident_s
    ]
    idle.sort(key=lambda s: (eviction_cost(s, now), s.last_used, s.model))
    chosen: list[Slot] = []
    for victim in idle:
        chosen.append(victim)
        short -= victim.bytes
        if short <= 0:
            return tuple(chosen)
    return None


def eviction_harm(slot: Slot, now: float, horizon_s: float, miss_s: float) -> float:
    """Expected seconds lost by evicting `slot`: its reload and the request that
    misses its objectives waiting for it, times the chance it is asked for again
    within `horizon_s` (counted once); `miss_s` is what one late request costs."""
    chance = min(1.0, slot.demand.rate(now) * horizon_s)
    return chance * (slot.load_s + miss_s)


def eviction_cost(slot: Slot, now: float) -> float:
    """Expected seconds lost by evicting `slot`: its request rate x its reload time."""
    return slot.demand.rate(now) * slot.load_s
