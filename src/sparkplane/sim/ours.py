"""sparkplane's own policy in the simulator: `scheduler.choose` and `FairQueue`, unchanged.

Per arrival the router calls `choose()`; the best plan's steps are executed
(evict, then load, queued one at a time per device, then run). A request
`choose()` finds no room for waits in a `FairQueue` (strict priority,
weighted fair across tenants, bounded per model) until a device frees; then
`choose()` is asked again for the request the queue lets through. A request
waiting past the client timeout leaves the queue as a miss.

Nothing here decides placement: that is all `choose()`.
"""

from __future__ import annotations

from sparkplane.scheduler.choose import Ask, Plan, StepKind, Tuning, choose
from sparkplane.scheduler.fairshare import FairQueue, Shares, Waiting
from sparkplane.scheduler.policy import Refusal
from sparkplane.scheduler.split import split
from sparkplane.sim.engine import OOM, REJECTED, TIMED_OUT, Engine, Job, Node

# The simulator's default tuning: a device takes no more than it can start at
# once (saturation 1), so waiting happens in the fair queue, where priority and
# fair share apply, not in an engine's FIFO. It never retries a request on another
# device, so only the best plan is kept (max_plans 1).
SIM_TUNING = Tuning(saturation=1, max_plans=1)
QUEUE_LIMIT = 4096
# While requests wait, the queue is also retried this often: what blocks them may
# end without an event (a model becomes old enough to evict, `min_resident_s`).
RETRY_S = 5.0
_TICK = object()


class Sparkplane:
    """The router that is sparkplane's scheduler."""

    def __init__(
        self, engine: Engine, tuning: Tuning = SIM_TUNING, queue_limit: int = QUEUE_LIMIT
    ) -> None:
        self.engine = engine
        self.tuning = tuning
        self.snapshot = engine.world.snapshot
        self.queue: FairQueue[int] = FairQueue(queue_limit, engine.world.weights)
        self.shares = Shares(engine.world.weights)
        self._places = sum(d.parallel for d in engine.world.devices if not d.off_prem)
        self._ticking = False
        engine.on_release = self._released

    def _released(self, r: int) -> None:
        self.shares.ended(self.engine.trace.tenant[r])

    def _may_start(self, r: int) -> bool:
        return self.shares.may_start(self.engine.trace.tenant[r], self.engine.now, self._places)

    def _ask(self, r: int) -> Ask:
        e = self.engine
        tr = e.trace
        info = e.world.models.get(tr.model[r])
        deadline = ttft = None
        if info is not None:
            deadline = info.deadline_s if info.image else info.ttft_s + tr.output[r] * info.tpot_s
            ttft = None if info.image else info.ttft_s
        # Objectives count from the arrival: time already spent queued is gone.
        spent = e.now - tr.t[r]
        return Ask(
            tr.model[r], e.now, tr.tenant[r], tr.prompt[r], tr.output[r], tr.images[r],
            None if deadline is None else deadline - spent, None if ttft is None else ttft - spent,
            self.queue.depth(tr.model[r]),
        )  # fmt: skip

    def arrive(self, r: int) -> None:
        """Place request `r` by `choose()`, or queue it, or refuse it."""
        e = self.engine
        tr = e.trace
        model = tr.model[r]
        slots = self.snapshot.routes.get(model)
        if slots:
            slots[0].demand.note(e.now)  # one Demand per model, shared by its slots
        self.shares.seen(tr.tenant[r], e.now)
        decision = choose(self._ask(r), self.snapshot, e.world.policy(tr.tenant[r]), self.tuning)
        plan = decision.best
        fair = self._may_start(r)
        if plan is not None and fair:
            self._execute(r, plan)
            return
        if not fair or decision.refusal in (Refusal.NO_ROOM, Refusal.NONE_HEALTHY):
            entry = self.queue.push(
                r,
                tenant=tr.tenant[r],
                model=model,
                priority=tr.priority[r] + (0 if tr.images[r] else 1),
            )
            if entry is not None:
                self.shares.waiting(tr.tenant[r], 1)
                e.timer(tr.t[r] + e.world.timeout_s, entry)
                if not self._ticking:
                    self._ticking = True
                    e.timer(e.now + RETRY_S, _TICK)
                return
        e.refuse(r, REJECTED)

    def freed(self, node: Node | None) -> None:
        """A device may take more: let the fair queue's next requests through `choose()`."""
        if not self.queue:
            return
        e = self.engine
        plans: dict[int, Plan] = {}
        no_room: set[tuple[str, bool]] = set()  # (model, cloud allowed) found full this pass

        near = None if node is None else node.state.slots

        def ready(r: int) -> bool:
            model = e.trace.model[r]
            if near is not None and model not in near:
                return (
                    False  # the freed device cannot serve it (the periodic retry covers the rest)
                )
            policy = e.world.policy(e.trace.tenant[r])
            key = (model, policy.allow_off_prem)
            if key in no_room or not self._may_start(r):
                return False
            plan = choose(self._ask(r), self.snapshot, policy, self.tuning).best
            if plan is None:
                no_room.add(key)
                return False
            plans[r] = plan
            return True

        while self.queue:
            r = self.queue.pop(ready)
            if r is None:
                return
            self.shares.waiting(e.trace.tenant[r], -1)
            self._execute(r, plans.pop(r))
            # What was full stays full: placing a request only takes capacity.
            plans.clear()

    def timer(self, payload: object) -> None:
        """A queued request's client timed out, or the periodic retry is due."""
        if payload is _TICK:
            self.freed(None)
            self._ticking = bool(self.queue)
            if self._ticking:
                self.engine.timer(self.engine.now + RETRY_S, _TICK)
            return
        assert isinstance(payload, Waiting)
        if self.queue.remove(payload):
            self.shares.waiting(payload.tenant, -1)
            self.engine.refuse(payload.item, TIMED_OUT)

    def prepare(self, node: Node, job: Job) -> None:
        """Not used: sparkplane's nodes are not FIFO (loads are planned by `choose()`)."""

    def _execute(self, r: int, plan: Plan) -> None:
        e = self.engine
        if e.trace.images[r] > 1:
            tenant = e.trace.tenant[r]
            parts = split(self._ask(r), self.snapshot, e.world.policy(tenant), self.tuning)
            if parts:
                for part in parts:  # each part takes a place, as a request does
                    if not self._steps(r, part.plan):
                        return
                    self.shares.started(tenant, e.now)
                    e.dispatch(r, part.plan.slot, part.service_s, part.images)
                return
        if self._steps(r, plan):
            self.shares.started(e.trace.tenant[r], e.now)
            e.dispatch(r, plan.slot, plan.service_s)

    def _steps(self, r: int, plan: Plan) -> bool:
        """Evict and load as `plan` says; False (an OOM, counted) if a load does not fit."""
        e = self.engine
        slot = plan.slot
        device = slot.device
        for step in plan.steps:
            if step.kind is StepKind.EVICT:
                e.evict(device.slots[step.model])
            elif step.kind is StepKind.LOAD and not e.load(slot):
                e.refuse(r, OOM)  # choose() said it fits: counted, never expected
                e.oom += 1
                return False
        return True
