"""Who goes next among waiting requests: strict by priority, weighted-fair across
tenants within a priority, bounded per model. Pure data structure, no clock.

Fairness is self-clocked fair queuing: each request gets a finish tag
``max(virtual time, its tenant's last tag) + cost / weight``, and the smallest
tag among requests that could start goes first; the virtual time is the tag
of the last request let through. A tenant that floods only queues behind its
own earlier requests: another tenant's first request is tagged near the
current virtual time and overtakes the flood.

Requests are kept in one FIFO per (priority, tenant, model), so a request
whose model has no free device does not hold up others behind it.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True, eq=False)
class Waiting(Generic[T]):
    """One queued request and its place in line."""

    item: T
    tenant: str
    model: str
    priority: int
    tag: float
    seq: int
    cost: float = 1.0
    gone: bool = field(default=False, repr=False)


class FairQueue(Generic[T]):
    """Waiting requests; see the module docstring."""

    def __init__(self, limit_per_model: int, weights: Mapping[str, float] | None = None) -> None:
        self.limit_per_model = limit_per_model
        self.weights = dict(weights or {})
        self._lines: dict[tuple[int, str, str], deque[Waiting[T]]] = {}
        self._depth: dict[str, int] = {}
        self._last_tag: dict[str, float] = {}
        self._vtime = 0.0
        self._seq = itertools.count()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def depth(self, model: str) -> int:
        """Requests waiting for `model`."""
        return self._depth.get(model, 0)

    def full(self, model: str) -> bool:
        """Whether one more request for `model` would be refused."""
        return self.depth(model) >= self.limit_per_model

    def push(
        self, item: T, *, tenant: str, model: str, priority: int = 0, cost: float = 1.0
    ) -> Waiting[T] | None:
        """Queue `item`; None (and nothing queued) when `model`'s queue is full."""
        if self.full(model):
            return None
        weight = self.weights.get(tenant, 1.0)
        start = max(self._vtime, self._last_tag.get(tenant, -math.inf))
        tag = start + cost / max(weight, 1e-9)
        self._last_tag[tenant] = tag
        entry = Waiting(item, tenant, model, priority, tag, next(self._seq), cost)
        self._lines.setdefault((priority, tenant, model), deque()).append(entry)
        self._depth[model] = self._depth.get(model, 0) + 1
        self._size += 1
        return entry

    def pop(self, ready: Callable[[T], bool] = lambda _item: True) -> T | None:
        """The next request that `ready` says can start now, taken out of line.

        `ready` is asked of line heads only, best first, until one says yes.
        """
        heads = sorted(
            self._lines.items(), key=lambda kv: (-kv[1][0].priority, kv[1][0].tag, kv[1][0].seq)
        )
        best_key = next((key for key, line in heads if ready(line[0].item)), None)
        if best_key is None:
            return None
        line = self._lines[best_key]
        entry = line.popleft()
        if not line:
            del self._lines[best_key]
        self._vtime = max(self._vtime, entry.tag)
        self._forget(entry)
        return entry.item

    def remove(self, entry: Waiting[T]) -> bool:
        """Take a request out of line (its client gave up); False if it already left."""
        if entry.gone:
            return False
        key = (entry.priority, entry.tenant, entry.model)
        line = self._lines.get(key)
        if line is None:
            return False
        try:
            line.remove(entry)
        except ValueError:
            return False
        if not line:
            del self._lines[key]
        self._forget(entry)
        return True

    def waiting(self) -> Iterator[Waiting[T]]:
        """Every queued request, in no particular order."""
        for line in self._lines.values():
            yield from line

    def _forget(self, entry: Waiting[T]) -> None:
        entry.gone = True
        self._size -= 1
        left = self._depth[entry.model] - 1
        if left:
            self._depth[entry.model] = left
        else:
            del self._depth[entry.model]


def retry_after(depth: int, service_s: float, parallel: int) -> int:
    """Whole seconds a refused client should wait: the queue ahead, served in parallel."""
    return max(1, math.ceil(depth * service_s / max(parallel, 1)))


class Shares:
    """How many places (requests in flight, fleet-wide) each tenant may hold while
    other tenants are active, so a flood cannot take the places a quiet tenant's
    next request needs.

    A tenant is active for `window_s` after its last request. The places are
    shared max-min fairly by weight among the active tenants: each asks for what
    it holds plus what it has waiting, and at least its reserve (the most it held
    at once within the window, at least one), so a quiet tenant finds its usual
    places free when its next request comes. Alone, a tenant may use everything.
    """

    def __init__(self, weights: Mapping[str, float] | None = None, window_s: float = 60.0):
        self.weights = dict(weights or {})
        self.window_s = window_s
        self._inflight: dict[str, int] = {}
        self._waiting: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._peak: dict[str, tuple[int, float]] = {}  # tenant -> (peak in flight, since)

    def seen(self, tenant: str, now: float) -> None:
        """A request of `tenant` arrived."""
        self._last[tenant] = now

    def waiting(self, tenant: str, delta: int) -> None:
        """A request of `tenant` joined (+1) or left (-1) the queue."""
        self._waiting[tenant] = self._waiting.get(tenant, 0) + delta

    def started(self, tenant: str, now: float) -> None:
        """A request of `tenant` took a place."""
        held = self._inflight.get(tenant, 0) + 1
        self._inflight[tenant] = held
        peak, since = self._peak.get(tenant, (0, now))
        if held >= peak or now - since > self.window_s:
            self._peak[tenant] = (held, now)

    def ended(self, tenant: str) -> None:
        """A request of `tenant` gave its place back."""
        self._inflight[tenant] = self._inflight.get(tenant, 0) - 1

    def cap(self, tenant: str, now: float, places: int) -> float:
        """The places `tenant` may hold now (max-min fair by weight)."""
        wants: list[tuple[float, float, str]] = []
        for who, last in self._last.items():
            if who != tenant and now - last > self.window_s:
                continue
            peak, since = self._peak.get(who, (0, now))
            reserve = max(1, peak) if now - since <= self.window_s else 1
            demand = self._inflight.get(who, 0) + self._waiting.get(who, 0)
            if who == tenant:
                demand += 1  # the request asking
            weight = max(self.weights.get(who, 1.0), 1e-9)
            wants.append((max(demand, reserve) / weight, weight, who))
        if len(wants) <= 1:
            return float(places)
        left, total = float(places), sum(w for _, w, _ in wants)
        for need, weight, who in sorted(wants):
            share = min(need * weight, left * weight / total)
            if who == tenant:
                return max(share, 1.0)
            left -= share
            total -= weight
        return 1.0

    def may_start(self, tenant: str, now: float, places: int) -> bool:
        """Whether `tenant` may take one more of the fleet's `places` now."""
        return self._inflight.get(tenant, 0) + 1 <= self.cap(tenant, now, places) + 1e-9
