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
