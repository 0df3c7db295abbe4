"""Dispatch: ask the policy for an order, try devices in it, retry before the
first byte reached the client, and relay streams with idle limits.

A request's life: `open()` picks and tries devices until one answers (status
known, for streams also the first chunk); the API then returns the body or
relays the stream with `relay()`; `finish()` always runs last and settles the
accounting (in-flight counts, latency average, breaker, metrics, log).
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
    PolicyForbids,
    SparkplaneError,
    UpstreamError,
    UpstreamTimeout,
)
from sparkplane.fleet.catalog import Route
from sparkplane.fleet.device import Device
from sparkplane.fleet.registry import Fleet
from sparkplane.metrics import Metrics
from sparkplane.scheduler.budget import RetryBudget
from sparkplane.scheduler.policy import Candidate, Policy, Refusal, rank

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
        limits: GatewayLimits,
        budget: RetryBudget,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fleet = fleet
        self._limits = limits
        self._budget = budget
        self._metrics = metrics
        self._clock = clock

    def plan(self, model: str, policy: Policy) -> tuple[Route, ...]:
        """The routes to try for `model`, best first; raises when there are none."""
        routes = self._fleet.catalog.routes(model)
        if routes is None:
            raise ModelNotFound(f"The model '{model}' does not exist", param="model")
        candidates = [
            Candidate(
                index=i,
                name=r.device.name,
                priority=r.device.record.priority,
                inflight=r.device.inflight,
                seconds_per_request=r.device.ewma_s,
                off_prem=r.device.record.off_prem,
                available=r.device.available,
            )
            for i, r in enumerate(routes)
        ]
        decision = rank(candidates, policy)
        if decision.refusal is Refusal.POLICY:
            raise PolicyForbids(
                f"the policy of {policy.owner} allows no device that can serve '{model}' now "
                "(allowed devices, allow_off_prem); nothing was sent elsewhere",
                param="model",
            )
        if decision.refusal is not None:
            raise NoHealthyDevice(f"no healthy device serves '{model}' now", param="model")
        return tuple(routes[c.index] for c in decision.ranked)

    async def open(self, request: InferenceRequest, model: str, policy: Policy) -> Answer:
        """Try devices in order until one answers; the caller must `finish()` the answer."""
        routes = self.plan(model, policy)
        started = self._clock()
        last: SparkplaneError | None = None
        failed: Answer | None = None
        attempts = 0
        self._budget.active += 1
        try:
            for route in routes[: self._limits.max_attempts]:
                retry = attempts > 0
                if retry and not self._budget.try_acquire():
                    self._metrics.retries.labels("budget_exhausted").inc()
                    break
                attempts += 1
                try:
                    answer = await self._attempt(request, model, route, attempts, started)
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
            return failed
        if last is None:
            raise NoHealthyDevice(f"no attempt on '{model}' was allowed", param="model")
        self._metrics.requests.labels(model, "none", str(last.status)).inc()
        raise last

    async def _attempt(
        self, request: InferenceRequest, model: str, route: Route, attempts: int, started: float
    ) -> Answer | SparkplaneError:
        device = route.device
        limits = self._limits
        device.inflight += 1
        upstream: Upstream | None = None
        try:
            wait = limits.timeouts.first_byte if request.stream else limits.timeouts.response
            async with asyncio.timeout(wait):
                upstream = await device.backend.send(request, route.model, limits.timeouts)
                answer = Answer(model, device, upstream, upstream.status, attempts, started)
                if request.stream and upstream.status == 200:
                    answer.stream = upstream.chunks()
                    answer.body = await anext(answer.stream)
                    self._metrics.first_byte.labels(model, device.name).observe(
                        self._clock() - started
                    )
                else:
                    answer.body = await upstream.read()
        except (TimeoutError, StopAsyncIteration, UpstreamError) as exc:
            if upstream is not None:
                upstream.close()
            device.inflight -= 1
            self._fail(device)
            return _as_error(exc, device)
        except BaseException:
            # Cancelled (the client or the server went away): give the slot back.
            if upstream is not None:
                upstream.close()
            device.inflight -= 1
            raise
        if answer.status >= 500:
            device.inflight -= 1
            answer.released = True
            self._fail(device)
        return answer

    def _fail(self, device: Device) -> None:
        if device.breaker.record_failure(self._clock()):
            device.record.health = device.health
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
        if not answer.released:
            answer.released = True
            device.inflight -= 1
        status = answer.status if status is None else status
        answer.outcome = status
        elapsed = self._clock() - answer.started
        if status < 500:
            device.observe(elapsed)
            device.breaker.reset_failures()
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
