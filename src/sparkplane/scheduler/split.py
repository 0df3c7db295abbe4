"""Splitting an image batch across devices: `split(ask, snapshot, policy, tuning)`.

Pure, as `choose()`: a job of several images may finish sooner as parts on
several devices, each part's batch no larger than fits the device's free
memory. The candidates are `choose()`'s own plans for one image (so the same
feasibility, evictions, loads and tenant policy apply); the images are dealt
one at a time to the part that would finish it soonest, which balances the
parts' completion times given each device's wait, load and seconds per image.

Returns the parts, or nothing when one device does as well (or only one can
take the job): the caller then runs `choose()`'s plan as it is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sparkplane.fleet.snapshot import FleetSnapshot
from sparkplane.scheduler.choose import Ask, Plan, Tuning, choose
from sparkplane.scheduler.policy import Policy

# Devices one batch is spread over at most.
MAX_PARTS = 4


@dataclass(frozen=True, slots=True)
class Part:
    """Some of a job's images, on one device."""

    plan: Plan  # planned for one image; `service_s` below is for the part
    images: int
    service_s: float

    @property
    def eta_s(self) -> float:
        """Estimated seconds from now until this part's images are done."""
        return self.plan.wait_s + self.plan.load_s + self.service_s


def split(ask: Ask, snapshot: FleetSnapshot, policy: Policy, tuning: Tuning) -> tuple[Part, ...]:
    """The parts of `ask`'s image batch, soonest finish first; () to run it whole."""
    if ask.images < 2:
        return ()
    one = dataclasses.replace(ask, images=1)
    wider = dataclasses.replace(tuning, max_plans=max(tuning.max_plans, MAX_PARTS))
    plans = [p for p in choose(one, snapshot, policy, wider).plans if p.slot.image_s is not None]
    plans = plans[:MAX_PARTS]
    if len(plans) < 2:
        return ()
    per = [p.service_s for p in plans]
    start = [p.wait_s + p.load_s for p in plans]
    cap = [_cap(p) for p in plans]
    counts = [0] * len(plans)
    for _ in range(ask.images):
        best = min(
            (i for i in range(len(plans)) if counts[i] < cap[i]),
            key=lambda i: (start[i] + (counts[i] + 1) * per[i], i),
            default=None,
        )
        if best is None:
            return ()  # the batch does not fit even spread out: run it whole, as planned
        counts[best] += 1
    parts = [Part(plans[i], n, n * per[i]) for i, n in enumerate(counts) if n]
    if len(parts) < 2:
        return ()
    return tuple(sorted(parts, key=lambda part: (part.eta_s, part.plan.device)))


def _cap(plan: Plan) -> int:
    """Images one batch of `plan` can hold: free memory once its steps are done."""
    slot = plan.slot
    device = slot.device
    freed = sum(device.slots[m].bytes for m in plan.evictions if m in device.slots)
    taken = 0 if slot.resident or slot.loading else slot.bytes
    return slot.batch_cap(device.free_bytes + freed - taken)
