"""A dispatcher over a fleet with the scheduler's real parts, for unit tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sparkplane.fleet.load import LoadBook, LoadSettings, ModelFigures
from sparkplane.fleet.registry import Fleet
from sparkplane.fleet.residency import DeviceEvent
from sparkplane.metrics import Metrics
from sparkplane.planner import DeviceProfile, builtin_profiles
from sparkplane.scheduler.admission import Admission
from sparkplane.scheduler.budget import RetryBudget
from sparkplane.scheduler.choose import Tuning
from sparkplane.scheduler.dispatch import Dispatcher, GatewayLimits
from sparkplane.scheduler.steps import Loader


class MemoryHistory:
    """Device history kept in a list (the residency store's `record`)."""

    def __init__(self) -> None:
        self.events: list[DeviceEvent] = []

    async def record(self, events: Sequence[DeviceEvent]) -> None:
        self.events.extend(events)


def no_figures(model: str, profile: DeviceProfile, quant: str | None) -> ModelFigures | None:
    """A planner that knows nothing: pace comes from observation only."""
    return None


def dispatcher(
    fleet: Fleet,
    limits: GatewayLimits,
    budget: RetryBudget,
    metrics: Metrics,
    *,
    clock: Callable[[], float] = time.monotonic,
    tuning: Tuning | None = None,
    queue_limit: int = 64,
    queue_wait_s: float = 5.0,
    weights: Mapping[str, float] | None = None,
    figures: Any = no_figures,
    load_timeout_s: float = 5.0,
) -> tuple[Dispatcher, LoadBook, Admission, MemoryHistory]:
    """A `Dispatcher` wired as `runtime.scheduling` wires it, history in memory."""
    tuning = tuning or Tuning(min_resident_s=0.0)
    book = LoadBook(fleet, builtin_profiles(), LoadSettings(), figures, clock=clock)
    fleet.listeners.append(book.rebuild)
    book.rebuild()
    admission = Admission(
        book, tuning, queue_limit=queue_limit, queue_wait_s=queue_wait_s, weights=weights
    )
    history = MemoryHistory()
    loader = Loader(book, history, metrics, tuning, load_timeout_s, clock=clock)  # type: ignore[arg-type]
    loader.changed = admission.wake
    return (
        Dispatcher(fleet, book, admission, loader, limits, budget, metrics, clock=clock),
        book,
        admission,
        history,
    )
