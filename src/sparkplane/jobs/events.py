"""The one place a finished job is reported: `JobFinished`, and the callbacks that get it.

Metering and audit subscribe here (`Runtime.comfy.events.subscribe(callback)`).
Callbacks run after the job's outcome is stored, never on the job's own path: a
plain function is called soon on the event loop, a coroutine function runs as a
task; an exception in one is logged and does not reach the job or the others.
Exactly one process reports a job (the one whose attempt recorded the outcome).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

log = structlog.get_logger("sparkplane.jobs")


@dataclass(frozen=True, slots=True)
class JobFinished:
    """A workflow job reached a final state."""

    job_id: str
    prompt_id: str
    tenant_id: str
    key_id: str
    device: str | None  # the device of the last attempt (None: never placed)
    status: str  # success, error, interrupted, cancelled
    images: int  # output files recorded
    started_at: datetime | None
    ended_at: datetime
    duration_s: float  # from submission to the end
    device_seconds: float  # execution time on the device (the attempt that counted)
    attempts: int


Callback = Callable[[JobFinished], Awaitable[None] | None]


class JobEvents:
    """Subscribers to `JobFinished`."""

    def __init__(self) -> None:
        self._callbacks: list[Callback] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def subscribe(self, callback: Callback) -> None:
        """Call `callback` for every job this process finishes."""
        self._callbacks.append(callback)

    def emit(self, event: JobFinished) -> None:
        """Hand `event` to every subscriber without waiting for any."""
        loop = asyncio.get_running_loop()
        for callback in self._callbacks:
            if inspect.iscoroutinefunction(callback):
                task = loop.create_task(self._await(callback, event))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                loop.call_soon(self._call, callback, event)

    async def _await(self, callback: Callback, event: JobFinished) -> None:
        try:
            result = callback(event)
            if result is not None:
                await result
        except Exception:
            log.exception("job_callback_failed", action="jobs.finished", job=event.job_id)

    def _call(self, callback: Callback, event: JobFinished) -> None:
        try:
            callback(event)
        except Exception:
            log.exception("job_callback_failed", action="jobs.finished", job=event.job_id)

    async def drain(self) -> None:
        """Wait for callbacks still running (at shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
