"""The scheduler's one decision: `choose(ask, snapshot, policy, tuning) -> Decision`.

Pure: it reads a `FleetSnapshot` and returns plain data; it does no I/O, reads
no clock (the ask carries `now`) and changes nothing. The live server, the
ComfyUI job worker and the simulator call this same function, so a policy that
wins in simulation is the policy that runs.

For every device that can serve the model the policy allows, it plans the
steps (evict idle models if memory is short, load the model if it is cold,
run) and estimates them::

    first token = wait for a free place + (cold ? load queue + load : 0) + prefill
    completion  = work ahead / places + (cold ? load queue + load : 0) + service
    cost        = completion + harm of the plan's evictions

Service time is the planner's estimate times the correction observed for this
model on this device. Evictions take the idle resident models that are
cheapest to lose first (request rate x reload time); a model with work in
flight, one being loaded, or one loaded less than `tuning.min_resident_s` ago
is never evicted (no thrash: the request waits or goes elsewhere). An
eviction's harm is the victim's reload plus one missed request, times the
chance it is asked for again within `tuning.horizon_s`.

Plans that meet the ask's objectives (first token, deadline) come first,
cheapest first, then the late ones. Waiting for a full device that holds the
model is weighed against loading it elsewhere (`_better_to_wait`): a refusal
with `Refusal.NO_ROOM` tells the caller to queue and ask again.

Cloud (off-premises) devices are candidates only where the policy allows them,
and only when no local plan, nor waiting, meets the ask's objectives; then
they come first, the cheapest first, and local plans follow as fallbacks.
A route longer than `tuning.scan` is sampled: a few slots that hold the model,
spread over them, and a few cold ones, from a start that moves with the clock.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from sparkplane.fleet.snapshot import DEFAULT_SERVICE_S, DeviceState, FleetSnapshot, Slot
from sparkplane.scheduler.evict import eviction_harm, evictions
from sparkplane.scheduler.policy import Policy, Refusal

# Seconds an engine takes to drop a model from memory.
UNLOAD_S = 0.5


@dataclass(frozen=True, slots=True)
class Ask:
    """A request as the policy sees it."""

    model: str  # the public name
    now: float = 0.0
    tenant: str = ""
    prompt_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    deadline_s: float | None = None  # seconds from `now` the caller needs it done in
    ttft_s: float | None = None  # seconds from `now` the first token is wanted in
    queued: int = 0  # requests for the same model already waiting (a replica serves them too)

    def late(self, first_token_s: float, done_s: float) -> bool:
        """Whether an answer with this first token and completion misses the objectives."""
        return (self.ttft_s is not None and first_token_s > self.ttft_s) or (
            self.deadline_s is not None and done_s > self.deadline_s
        )


@dataclass(frozen=True, slots=True)
class Tuning:
    """The policy's knobs (settings in the server, flags in the simulator)."""

    min_resident_s: float = 60.0  # a model loaded this recently is not evicted for a cold one
    horizon_s: float = 300.0  # how far ahead an evicted model's next request counts
    miss_s: float = 100.0  # what one request that misses its objectives costs, in seconds
    allow_load: bool = True  # False: only resident models are candidates
    max_plans: int = 3  # alternatives kept for retries before the first byte
    saturation: int = 4  # queue depth (x parallel) past which a device is full
    scan: int = 32  # a route longer than this is sampled (see `_sample`)
    sample: int = 4  # on a sampled route: slots holding the model planned
    cold_candidates: int = 3  # on a sampled route: cold slots planned
    chat_share: float = 0.5  # of a device serving chat and images, the places images leave


class StepKind(StrEnum):
    """What dispatch does on the chosen device, in order."""

    EVICT = "evict"
    LOAD = "load"
    RUN = "run"


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a plan."""

    kind: StepKind
    model: str  # the device's own name for the model


@dataclass(frozen=True, slots=True)
class Plan:
    """Where and how one request runs, with its estimated completion time."""

    slot: Slot
    steps: tuple[Step, ...]
    wait_s: float
    load_s: float
    service_s: float
    harm_s: float = 0.0  # expected seconds the evictions cost other requests
    prefill_s: float = 0.0  # of service_s, the part before the first token
    start_s: float = 0.0  # of wait_s, the part before the request starts (no free place)

    @property
    def cost_s(self) -> float:
        """What the plan costs the fleet: its own completion plus the harm it does."""
        return self.wait_s + self.load_s + self.service_s + self.harm_s

    @property
    def eta_s(self) -> float:
        """Estimated seconds from now until the request is done."""
        return self.wait_s + self.load_s + self.service_s

    @property
    def first_token_s(self) -> float:
        """Estimated seconds from now until the first token."""
        return self.start_s + self.load_s + self.prefill_s

    @property
    def device(self) -> str:
        """The chosen device's name."""
        return self.slot.device.name

    @property
    def cold(self) -> bool:
        """Whether the model must be loaded first."""
        return len(self.steps) > 1 and self.steps[-2].kind is StepKind.LOAD

    @property
    def evictions(self) -> tuple[str, ...]:
        """Models this plan takes out of memory."""
        return tuple(s.model for s in self.steps if s.kind is StepKind.EVICT)


@dataclass(frozen=True, slots=True)
class Decision:
    """Plans in the order to try them, or why there are none."""

    plans: tuple[Plan, ...]
    refusal: Refusal | None = None

    @property
    def best(self) -> Plan | None:
        """The plan to try first."""
        return self.plans[0] if self.plans else None


def choose(ask: Ask, snapshot: FleetSnapshot, policy: Policy, tuning: Tuning) -> Decision:
    """Plans for `ask`, best first; see the module docstring."""
    slots = snapshot.routes.get(ask.model)
    if not slots:
        return Decision((), Refusal.NO_DEVICE)
    allowed = policy.allowed_devices
    order = _by_cost if ask.deadline_s is None and ask.ttft_s is None else _by_objective(ask)
    local: list[Plan] = []
    cloud: list[Plan] = []
    excluded = full = False  # an available device the policy rules out; a device too busy
    unknown: float | None = None  # service time assumed where nothing is planned or observed
    worst_kept: list[float] = []  # max-heap (negated) of the best max_plans local costs
    # By waiting for a full device that has the model: (first token, completion), soonest.
    waiting = (math.inf, math.inf)
    sampled = len(slots) > tuning.scan
    if sampled:
        slots = _sample(ask, snapshot, slots, tuning)
    for slot in slots:
        device = slot.device
        if (allowed is not None and device.name not in allowed) or (
            device.off_prem and not policy.allow_off_prem
        ):
            excluded = excluded or device.available
            continue
        if not device.available:
            continue
        if not device.off_prem and len(worst_kept) >= tuning.max_plans:
            # No slot of this model was ever seen faster than planned x min_correction:
            # one whose floor (plus its load, if cold) cannot beat the plans kept is
            # skipped, and a full route, sorted fastest planned first, stops there.
            floor = slot.planned_s(ask.prompt_tokens, ask.output_tokens, ask.images)
            if floor is not None:
                floor *= min(slot.demand.min_correction, 1.0)
                cold = not (slot.resident or slot.loading)
                if floor + (slot.load_s if cold else 0.0) >= -worst_kept[0]:
                    if sampled or cold:
                        continue
                    break
        if unknown is None and slot.decode_tps is None and slot.image_s is None:
            unknown = _unknown_s(slots)
        guess = DEFAULT_SERVICE_S if unknown is None else unknown
        plan = _plan(ask, slot, tuning, guess)
        if plan is None:
            full = True
            if not device.off_prem and (slot.resident or slot.loading):
                waiting = min(waiting, _waiting(ask, slot, guess), key=lambda w: w[1])
        elif device.off_prem:
            cloud.append(plan)
        else:
            local.append(plan)
            if len(worst_kept) < tuning.max_plans:
                heapq.heappush(worst_kept, -plan.cost_s)
            elif plan.cost_s < -worst_kept[0]:
                heapq.heapreplace(worst_kept, -plan.cost_s)
    local = sorted(local, key=order)[: tuning.max_plans]  # a handful: sorted beats a heap
    cloud.sort(key=lambda p: (p.slot.device.price_per_mtok, p.eta_s, p.device))
    best = local[0] if local else None
    local_late = best is None or ask.late(best.first_token_s, best.eta_s)
    wait_late = waiting[1] == math.inf or ask.late(*waiting)
    if cloud and local_late and wait_late:
        return Decision(tuple(cloud[: tuning.max_plans] + local))
    if best is not None and not _better_to_wait(ask, best, local_late, waiting[1], wait_late):
        return Decision(tuple(local))
    if full:
        # Waiting for a device that has the model beats loading it elsewhere (or
        # nothing else can take it): the caller queues the request and asks again.
        return Decision((), Refusal.NO_ROOM)
    return Decision((), Refusal.POLICY if excluded else Refusal.NONE_HEALTHY)


def _sample(
    ask: Ask, snapshot: FleetSnapshot, slots: tuple[Slot, ...], tuning: Tuning
) -> tuple[Slot, ...]:
    """A large route's candidates (power of d choices): `tuning.sample` of the slots
    that hold the model (the fastest half, the rest spread over the others), and
    the first `tuning.cold_candidates` cold ones of a window of `tuning.scan`;
    spread from a start that moves with the clock (deterministic for the same ask)."""
    tick = int(ask.now * 1000.0)
    held = snapshot.holders.get(ask.model, [])  # fastest first
    head = tuning.sample // 2
    picked = held[:head]
    rest = len(held) - head
    if rest > 0:
        count = min(tuning.sample - head, rest)
        step = rest / count
        start = tick % rest
        picked += [held[head + (start + int(i * step)) % rest] for i in range(count)]
    start = tick % len(slots)
    cold = 0
    for i in range(min(tuning.scan, len(slots))):
        slot = slots[(start + i) % len(slots)]
        if not (slot.resident or slot.loading):
            picked.append(slot)
            cold += 1
            if cold >= tuning.cold_candidates:
                break
    return tuple(picked)


def _waiting(ask: Ask, slot: Slot, unknown_s: float) -> tuple[float, float]:
    device = slot.device
    left = max(device.busy_until - ask.now, 0.0) if slot.loading else 0.0
    service = slot.service_s(ask.prompt_tokens, ask.output_tokens, ask.images, unknown_s)
    first = device.start_s() + left + slot.prefill_s(ask.prompt_tokens)
    return first, device.wait_s() + left + service


def _better_to_wait(ask: Ask, best: Plan, best_late: bool, waiting: float, wait_late: bool) -> bool:
    """Whether queueing for a full device that has the model beats `best` (a load
    elsewhere, usually).

    A new replica serves this request and, once loaded, those waiting behind it
    (up to the device's parallel places): it wins when the time they all save
    outweighs the harm of its evictions, or when it fits in free memory while
    waiting would miss the objectives. Otherwise waiting wins when it meets the
    objectives `best` misses, or meets them as well and costs the fleet less.
    """
    if best.cold:
        served = min(max(ask.queued + 1, 1), max(best.slot.device.parallel, 1))
        if served * (waiting - best.eta_s) > best.harm_s and not (wait_late is False and best_late):
            return False
        if not best.evictions and wait_late:
            return False
    if wait_late != best_late:
        return best_late
    return waiting < best.cost_s


def _by_cost(plan: Plan) -> tuple[float, int, bool, bool, str]:
    # Ties: higher priority, a resident model, one never measured (so it gets
    # measured), then the name (stable results).
    slot = plan.slot
    measured = slot.pace_s is not None
    return (plan.cost_s, -slot.device.priority, plan.cold, measured, plan.device)


def _by_objective(ask: Ask) -> Callable[[Plan], tuple[bool, float, int, bool, bool, str]]:
    # Plans that meet the objectives (first token, deadline) first, cheapest for the
    # fleet first; then the others, soonest first (late is still better than never).
    def key(plan: Plan) -> tuple[bool, float, int, bool, bool, str]:
        late = ask.late(plan.first_token_s, plan.eta_s)
        slot = plan.slot
        measured = slot.pace_s is not None
        return (late, plan.cost_s, -slot.device.priority, plan.cold,
                measured, plan.device)  # fmt: skip

    return key


def _unknown_s(slots: tuple[Slot, ...]) -> float:
    # A device never measured is assumed as fast as the fastest measured one, so it
    # gets traffic and a measurement instead of being starved.
    known = [s.pace_s for s in slots if s.pace_s is not None]
    return min(known) if known else DEFAULT_SERVICE_S


def _plan(ask: Ask, slot: Slot, tuning: Tuning, unknown_s: float) -> Plan | None:
    """The plan for `ask` on `slot`, or None when the device cannot take it now."""
    device = slot.device
    service = slot.service_s(ask.prompt_tokens, ask.output_tokens, ask.images, unknown_s)
    if device.inflight >= device.parallel * tuning.saturation:
        return None
    if ask.images and _images_crowd(device, tuning):
        return None
    wait = device.wait_s()
    prefill = slot.prefill_s(ask.prompt_tokens)
    start = device.start_s()
    run = (Step(StepKind.RUN, slot.model),)
    if slot.resident:
        return Plan(slot, run, wait, 0.0, service, prefill_s=prefill, start_s=start)
    if slot.loading:
        # Someone else's load of this model is under way: wait for it.
        left = max(device.busy_until - ask.now, 0.0)
        return Plan(slot, run, wait, left, service, prefill_s=prefill, start_s=start)
    if not (tuning.allow_load and device.can_load):
        return None
    victims = evictions(slot, ask.now, tuning.min_resident_s)
    if victims is None:
        return None
    steps = tuple(Step(StepKind.EVICT, v.model) for v in victims)
    steps += (Step(StepKind.LOAD, slot.model), Step(StepKind.RUN, slot.model))
    queue = max(device.busy_until - ask.now, 0.0)
    load = queue + slot.load_s + UNLOAD_S * len(victims)
    harm = sum(eviction_harm(v, ask.now, tuning.horizon_s, tuning.miss_s) for v in victims)
    return Plan(slot, steps, wait, load, service, harm, prefill, start)


def _images_crowd(device: DeviceState, tuning: Tuning) -> bool:
    """Whether an image job would take a place `tuning.chat_share` keeps for chat on
    a device that serves both: an image holds its place for a minute or more, and
    chat requests queued behind images miss their first-token objective. At least
    one place is always open to images."""
    images = chat = 0
    for s in device.slots.values():
        if s.image_s is not None:
            images += s.inflight
        elif s.decode_tps is not None:
            chat = 1
    if not chat:
        return False
    return images >= max(1, math.floor(device.parallel * (1.0 - tuning.chat_share)))
