"""Admission: a request either gets a plan at once, waits its fair turn, or is
refused with 429 and `Retry-After` because its model's queue is full.

A request gets a place when `choose()` finds a device that can take it now; the
first plan's slot is acquired in the same step, with no await in between, so
two requests never take the one free place. When every device that could
serve it is full (`Refusal.NO_ROOM`), or others are already waiting for the
same model, it waits in a `FairQueue`: strict by priority, weighted-fair
across tenants, bounded per model. Each time a request ends or a load
finishes, `wake()` lets waiting requests through in fair order while some
device can take them. Across tenants, `Shares` keeps a flood from taking the
places a quiet tenant's next request needs (max-min fair by weight).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from sparkplane.errors import NoHealthyDevice, PolicyForbids, RateLimited, Unavailable
from sparkplane.fleet.load import LoadBook
from sparkplane.scheduler.choose import Ask, Decision, Tuning, choose
from sparkplane.scheduler.fairshare import FairQueue, Shares, Waiting, retry_after
from sparkplane.scheduler.policy import Policy, Refusal


@dataclass(slots=True, eq=False)
class Admitted:
    """A request's plans; the first one's slot is already acquired with `estimate_s`."""

    ask: Ask
    decision: Decision
    estimate_s: float


@dataclass(slots=True, eq=False)
class _Ticket:
    ask: Ask
    policy: Policy
    done: asyncio.Future[Admitted] = field(repr=False)


class Admission:
    """See the module docstring."""

    def __init__(
        self,
        book: LoadBook,
        tuning: Tuning,
        *,
        queue_limit: int,
        queue_wait_s: float,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        self._book = book
        self.tuning = tuning
        self._wait_s = queue_wait_s
        self._queue: FairQueue[_Ticket] = FairQueue(queue_limit, weights)
        self._shares = Shares(weights)

    def waiting(self, model: str) -> int:
        """Requests waiting for `model`."""
        return self._queue.depth(model)

    async def admit(self, ask: Ask, policy: Policy, priority: int = 0) -> Admitted:
        """Plans for `ask` with the first slot acquired; waits its turn if need be."""
        self._shares.seen(ask.tenant, ask.now)
        if not self._queue.depth(ask.model) and self._fair(ask):
            decision = choose(ask, self._book.snapshot, policy, self.tuning)
            if decision.plans:
                return self._take(ask, decision)
            if decision.refusal is not Refusal.NO_ROOM:
                raise refusal_error(decision.refusal, ask.model, policy)
        loop = asyncio.get_running_loop()
        ticket = _Ticket(ask, policy, loop.create_future())
        entry = self._queue.push(ticket, tenant=ask.tenant, model=ask.model, priority=priority)
        if entry is None:
            raise self._full(ask, policy)
        self._shares.waiting(ask.tenant, 1)
        try:
            async with asyncio.timeout(self._wait_s):
                return await asyncio.shield(ticket.done)
        except TimeoutError:
            if not self._left(entry) and ticket.done.done():
                return ticket.done.result()  # admitted as the timer fired: keep the place
            raise Unavailable(
                f"no device could take a request for '{ask.model}' within {self._wait_s:g}s",
                code="queue_timeout",
            ) from None
        except BaseException:
            # The client went away while waiting: leave the line, or give back the place.
            if not self._left(entry) and ticket.done.done() and not ticket.done.cancelled():
                self.give_back(ticket.done.result())
            raise

    def _left(self, entry: Waiting[_Ticket]) -> bool:
        if not self._queue.remove(entry):
            return False
        self._shares.waiting(entry.tenant, -1)
        return True

    def _fair(self, ask: Ask) -> bool:
        places = sum(
            d.parallel * self.tuning.saturation
            for d in self._book.snapshot.devices.values()
            if d.available and not d.off_prem
        )
        return self._shares.may_start(ask.tenant, ask.now, max(places, 1))

    def wake(self) -> None:
        """Let waiting requests through, in fair order, while devices can take them."""
        decisions: dict[int, Decision] = {}

        def ready(ticket: _Ticket) -> bool:
            if not self._fair(ticket.ask):
                return False
            found = choose(ticket.ask, self._book.snapshot, ticket.policy, self.tuning)
            decisions[id(ticket)] = found
            return bool(found.plans)

        while len(self._queue):
            decisions.clear()
            ticket = self._queue.pop(ready)
            if ticket is None:
                return
            self._shares.waiting(ticket.ask.tenant, -1)
            admitted = self._take(ticket.ask, decisions[id(ticket)])
            if ticket.done.done():  # its waiter is gone
                self.give_back(admitted)
            else:
                ticket.done.set_result(admitted)

    def give_back(self, admitted: Admitted) -> None:
        """Release the place an admitted request never used."""
        plan = admitted.decision.best
        if plan is not None:
            self._book.release(plan.slot, admitted.estimate_s)
        self.ended(admitted.ask)

    def ended(self, ask: Ask) -> None:
        """An admitted request is over (answered, failed or abandoned): its tenant's
        place is free; let waiting requests through."""
        self._shares.ended(ask.tenant)
        self.wake()

    def _take(self, ask: Ask, decision: Decision) -> Admitted:
        plan = decision.plans[0]
        estimate = plan.service_s
        self._book.acquire(plan.slot, estimate)
        self._shares.started(ask.tenant, ask.now)
        return Admitted(ask, decision, estimate)

    def _full(self, ask: Ask, policy: Policy) -> RateLimited:
        depth = self._queue.depth(ask.model)
        pace, parallel = 1.0, 1
        slots = self._book.snapshot.routes.get(ask.model, ())
        usable = [s for s in slots if s.device.available and s.resident]
        if usable:
            pace = min(
                s.service_s(ask.prompt_tokens, ask.output_tokens, ask.images) for s in usable
            )
            parallel = sum(s.device.parallel for s in usable)
        return RateLimited(
            f"{depth} requests are already waiting for '{ask.model}'; try again later",
            retry_after=retry_after(depth, pace, parallel),
            code="model_queue_full",
        )


def refusal_error(refusal: Refusal | None, model: str, policy: Policy) -> Unavailable:
    """The error a client gets when no device can ever take the request now."""
    if refusal is Refusal.POLICY:
        return PolicyForbids(
            f"the policy of {policy.owner} allows no device that can serve '{model}' now "
            "(allowed devices, allow_off_prem); nothing was sent elsewhere",
            param="model",
        )
    return NoHealthyDevice(f"no healthy device serves '{model}' now", param="model")
