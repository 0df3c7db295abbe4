"""Dispatch: admit a request (a plan from `choose()`, or a fair wait), carry out
its plan (evict, load, run), retry the next plan before the first byte reached
the client, and relay streams with idle limits.

A request's life: `open()` is admitted and tries plans until a device answers
(status known, for streams also the first chunk); the API then returns the
body or relays the stream with `relay()`; `finish()` always runs last and
settles the accounting through the `LoadBook` (in-flight counts, pace per
model and device, breaker), the metrics, and wakes waiting requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass

import orjson
import structlog

from sparkplane.backends.base import DeviceUnreachable, InferenceRequest, Timeouts, Upstream
from sparkplane.errors import (
    ModelNotFound,
    NoHealthyDevice,
    SparkplaneError,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
)
from sparkplane.fleet.device import Device
from sparkplane.fleet.load import LoadBook
from sparkplane.fleet.registry import Fleet
from sparkplane.fleet.snapshot import Slot
from sparkplane.metrics import Metrics
from sparkplane.scheduler.admission import Admission, Admitted
from sparkplane.scheduler.budget import RetryBudget
from sparkplane.scheduler.choose import Ask, Plan
from sparkplane.scheduler.policy import Policy
from sparkplane.scheduler.steps import Loader

log = structlog.get_logger("sparkplane.gateway")


@dataclass(frozen=True, slots=True)
class GatewayLimits:
    """How hard dispatch tries and how long it waits."""

    max_attempts: int
    timeouts: Timeouts
    total: float | None


@dataclass(slots=True)
class Answer:
    """A device's answer, ready to be sent on: a body, or a stream's first chunk."""

    model: str
    device: Device
    upstream: Upstream
    status: int
    attempts: int
    started: float
    slot: Slot
    ask: Ask
    estimate_s: float  # what the slot was charged in outstanding work
    planned_s: float | None  # the planner's seconds, for the per-model correction
    served_from: float  # when the device got the request (after any load)
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    released: bool = False  # the device's in-flight slot is already given back
    settled: bool = False
    outcome: int | None = None  # the status it ended with (a broken stream: 502/504)


class Dispatcher:
    """Routes inference requests over the fleet."""

    def __init__(
        self,
        fleet: Fleet,
        book: LoadBook,
        admission: Admission,
        loader: Loader,
        limits: GatewayLimits,
        budget: RetryBudget,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fleet = fleet
        self._book = book
        self._admission = admission
        self._loader = loader
        self._limits = limits
        self._budget = budget
        self._metrics = metrics
        self._clock = clock

    async def open(
        self,
        request: InferenceRequest,
        model: str,
        policy: Policy,
        *,
        tenant: str = "",
        max_tokens: int | None = None,
        deadline_s: float | None = None,
    ) -> Answer:
        """Admit the request and try its plans until one answers; the caller must `finish()`."""
        if self._fleet.catalog.routes(model) is None:
            raise ModelNotFound(f"The model '{model}' does not exist", param="model")
        now = self._clock()
        self._book.demand(model).note(now)
        ask = Ask(
            model,
            now,
            tenant,
            prompt_tokens=len(request.raw) // 4,  # ~4 bytes a token; cheaper than tokenising
            output_tokens=max_tokens or 0,
            deadline_s=deadline_s,
        )
        admitted = await self._admission.admit(ask, policy)
        try:
            return await self._try_plans(request, admitted)
        except BaseException:
            self._admission.ended(ask)  # no answer holds the request's place
            raise

    async def _try_plans(self, request: InferenceRequest, admitted: Admitted) -> Answer:
        ask, model = admitted.ask, admitted.ask.model
        started = self._clock()
        last: SparkplaneError | None = None
        failed: Answer | None = None
        attempts = 0
        estimate = admitted.estimate_s
        self._budget.active += 1
        try:
            for index, plan in enumerate(admitted.decision.plans[: self._limits.max_attempts]):
                retry = attempts > 0
                if retry and not self._budget.try_acquire():
                    self._metrics.retries.labels("budget_exhausted").inc()
                    break
                if index:
                    estimate = plan.service_s
                    self._book.acquire(plan.slot, estimate)
                attempts += 1
                try:
                    # Gives the slot back itself on every failure, a raise included.
                    answer = await self._attempt(request, ask, plan, estimate, attempts, started)
                finally:
                    if retry:
                        self._budget.release()
                if isinstance(answer, SparkplaneError):
                    last = answer
                elif answer.status >= 500:
                    failed = answer
                else:
                    return answer
                self._metrics.retries.labels(_reason(answer)).inc()
        finally:
            self._budget.active -= 1
        if failed is not None:
            # The engine's own error body says more than ours would.
            failed.attempts = attempts
            return failed  # finish() ends the request's place
        if last is None:
            raise NoHealthyDevice(f"no attempt on '{model}' was allowed", param="model")
        self._metrics.requests.labels(model, "none", str(last.status)).inc()
        raise last

    def _settle_slot(self, slot: Slot, estimate: float) -> None:
        self._book.release(slot, estimate)
        self._admission.wake()

    async def _attempt(
        self,
        request: InferenceRequest,
        ask: Ask,
        plan: Plan,
        estimate: float,
        attempts: int,
        started: float,
    ) -> Answer | SparkplaneError:
        """One try on `plan`; on failure its slot is already given back."""
        device = self._book.device(plan.slot)
        slot = plan.slot
        limits = self._limits
        upstream: Upstream | None = None
        try:
            if not slot.resident:
                await self._loader.prepare(plan, device)  # its own, longer timeout
            served_from = self._clock()
            wait = limits.timeouts.first_byte if request.stream else limits.timeouts.response
            async with asyncio.timeout(wait):
                upstream = await device.backend.send(request, slot.model, limits.timeouts)
                planned = slot.planned_s(ask.prompt_tokens, ask.output_tokens, ask.images)
                answer = Answer(
                    ask.model, device, upstream, upstream.status, attempts, started,
                    slot, ask, estimate, planned, served_from,
                )  # fmt: skip
                if request.stream and upstream.status == 200:
                    answer.stream = upstream.chunks()
                    answer.body = await anext(answer.stream)
                    self._metrics.first_byte.labels(ask.model, device.name).observe(
                        self._clock() - started
                    )
                else:
                    answer.body = await upstream.read()
        except Unavailable as exc:
            # No room after all (the device changed while this one waited): not its fault.
            self._settle_slot(slot, estimate)
            return exc
        except (TimeoutError, StopAsyncIteration, UpstreamError) as exc:
            if upstream is not None:
                upstream.close()
            self._settle_slot(slot, estimate)
            self._fail(device)
            return _as_error(exc, device)
        except BaseException:
            # Cancelled (the client or the server went away): give the slot back.
            if upstream is not None:
                upstream.close()
            self._settle_slot(slot, estimate)
            raise
        if answer.status >= 500:
            answer.released = True
            self._settle_slot(slot, estimate)
            self._fail(device)
        return answer

    def _fail(self, device: Device) -> None:
        if self._book.failed(device):
            log.warning("circuit_opened", action="gateway.breaker", device=device.name)

    async def relay(self, answer: Answer) -> AsyncGenerator[bytes, None]:
        """Yield a stream's chunks with the idle and total limits; always finishes it.

        A failure after bytes reached the client ends the stream with an
        OpenAI-format error event (and `[DONE]`), never a silent hang.
        """
        assert answer.stream is not None
        status = answer.status
        limits = self._limits
        try:
            yield answer.body
            deadline = None if limits.total is None else answer.started + limits.total
            while True:
                wait = limits.timeouts.idle
                if deadline is not None:
                    wait = min(wait, deadline - self._clock())
                async with asyncio.timeout(wait):
                    chunk = await anext(answer.stream)
                yield chunk
        except StopAsyncIteration:
            pass
        except (TimeoutError, UpstreamError) as exc:
            error = _as_error(exc, answer.device)
            status = error.status
            self._fail(answer.device)
            log.warning(
                "stream_broken", action="gateway.stream", device=answer.device.name, why=error.code
            )
            yield _error_event(error)
        finally:
            answer.upstream.close()
            self.finish(answer, status)

    def finish(self, answer: Answer, status: int | None = None) -> None:
        """Settle a request's accounting exactly once."""
        if answer.settled:
            return
        answer.settled = True
        device = answer.device
        now = self._clock()
        status = answer.status if status is None else status
        answer.outcome = status
        elapsed = now - answer.started
        if status < 500:
            self._book.observe(device, answer.slot, now - answer.served_from, answer.planned_s)
        if not answer.released:
            answer.released = True
            self._book.release(answer.slot, answer.estimate_s)
        self._admission.ended(answer.ask)
        self._metrics.requests.labels(answer.model, device.name, str(status)).inc()
        self._metrics.latency.labels(answer.model, device.name).observe(elapsed)


def _as_error(exc: BaseException, device: Device) -> SparkplaneError:
    if isinstance(exc, SparkplaneError):
        return exc
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(f"device '{device.name}' did not answer in time")
    return DeviceUnreachable(f"device '{device.name}' closed the stream before any data")


def _reason(answer: Answer | SparkplaneError) -> str:
    if isinstance(answer, SparkplaneError):
        return answer.code
    return "upstream_5xx"


def _error_event(error: SparkplaneError) -> bytes:
    body = {
        "error": {"message": error.message, "type": error.type, "param": None, "code": error.code}
    }
    return b"data: " + orjson.dumps(body) + b"\n\ndata: [DONE]\n\n"
