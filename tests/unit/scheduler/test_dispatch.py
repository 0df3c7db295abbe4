"""Dispatch over fake devices: retries, limits, streams and the accounting after."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from sparkplane.backends.base import DeviceUnreachable, InferenceRequest, Operation, Timeouts
from sparkplane.errors import (
    ModelNotFound,
    NoHealthyDevice,
    PolicyForbids,
    UpstreamError,
    UpstreamTimeout,
)
from sparkplane.fleet.device import Device
from sparkplane.metrics import Metrics
from sparkplane.scheduler.budget import RetryBudget
from sparkplane.scheduler.dispatch import Answer, Dispatcher, GatewayLimits
from sparkplane.scheduler.policy import Policy
from tests.fakes.backend import FakeBackend, FakeClock, Reply
from tests.fakes.fleet import FakeFleet, record
from tests.support import scheduling

SHORT = 0.2  # seconds: timeouts the fakes are made to exceed (fast replies stay far below)
CHUNKS = (b'data: {"n": 1}\n\n', b'data: {"n": 2}\n\n', b'data: {"n": 3}\n\n')


def error_body(n: int) -> bytes:
    return orjson.dumps({"error": {"message": f"engine {n} failed", "type": "server_error"}})


@dataclass
class Rig:
    """A dispatcher over named fake devices, tried in the order given."""

    dispatcher: Dispatcher
    backends: dict[str, FakeBackend]
    fake: FakeFleet
    budget: RetryBudget
    metrics: Metrics
    clock: FakeClock

    def device(self, name: str) -> Device:
        found = self.fake.fleet.by_name(name)
        assert found is not None
        return found

    def inflight(self) -> dict[str, int]:
        return {d.name: d.inflight for d in self.fake.fleet.devices()}

    def retries(self, reason: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "sparkplane_retries_total", {"reason": reason}
        )
        return value or 0.0

    async def open(self, stream: bool = False, model: str = "m", **policy: Any) -> Answer:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
        request = InferenceRequest(
            op=Operation.CHAT, model=model, raw=orjson.dumps(body), stream=stream
        )
        return await self.dispatcher.open(request, model, Policy(**policy))


def rig(
    replies: Mapping[str, Sequence[Reply]],
    *,
    max_attempts: int = 3,
    budget: RetryBudget | None = None,
    threshold: int = 3,
    total: float | None = None,
    models: Mapping[str, Sequence[str]] | None = None,
    aliases: Mapping[str, Sequence[str]] | None = None,
    off_prem: Sequence[str] = (),
) -> Rig:
    """Devices named in `replies` get descending priority so they are tried in order."""
    backends = {name: FakeBackend(replies=list(r)) for name, r in replies.items()}
    clock = FakeClock()
    fake = FakeFleet(backends, aliases=aliases, threshold=threshold, cooldown_s=30.0)
    count = len(replies)
    fake.fleet.sync(
        record(
            name,
            (models or {}).get(name, ("m",)),
            priority=count - i,
            off_prem=name in off_prem,
        )
        for i, name in enumerate(replies)
    )
    limits = GatewayLimits(
        max_attempts=max_attempts,
        timeouts=Timeouts(connect=SHORT, first_byte=SHORT, idle=SHORT, response=SHORT),
        total=total,
    )
    budget = budget or RetryBudget(0.2, 3)
    metrics = Metrics(fake.fleet.devices)
    dispatcher, *_ = scheduling.dispatcher(fake.fleet, limits, budget, metrics, clock=clock)
    return Rig(dispatcher, backends, fake, budget, metrics, clock)


def tried(r: Rig) -> list[str]:
    return [name for name, b in r.backends.items() for _ in b.sent]


async def drain(r: Rig, answer: Answer) -> list[bytes]:
    return [chunk async for chunk in r.dispatcher.relay(answer)]


# -- plain answers ----------------------------------------------------------


async def test_first_device_answers_and_accounting_settles_on_finish() -> None:
    r = rig({"a": [Reply(body=b'{"ok": 1}')], "b": [Reply()]})
    answer = await r.open()
    assert (answer.status, answer.body, answer.attempts) == (200, b'{"ok": 1}', 1)
    assert answer.device.name == "a"
    assert r.inflight() == {"a": 1, "b": 0}
    r.clock.advance(2.0)
    r.dispatcher.finish(answer)
    r.dispatcher.finish(answer)  # settling twice changes nothing
    assert r.inflight() == {"a": 0, "b": 0}
    assert r.device("a").ewma_s == 2.0
    assert (r.budget.active, r.budget.retrying) == (0, 0)


async def test_5xx_is_retried_on_the_next_device() -> None:
    r = rig({"a": [Reply(status=500, body=error_body(1))], "b": [Reply(body=b"fine")]})
    answer = await r.open()
    assert (answer.device.name, answer.status, answer.body, answer.attempts) == (
        "b",
        200,
        b"fine",
        2,
    )
    assert tried(r) == ["a", "b"]
    assert r.retries("upstream_5xx") == 1
    r.dispatcher.finish(answer)
    assert r.inflight() == {"a": 0, "b": 0}


async def test_unreachable_device_is_retried_on_the_next() -> None:
    r = rig({"a": [Reply(raises=DeviceUnreachable("refused"))], "b": [Reply()]})
    answer = await r.open()
    assert answer.device.name == "b"
    assert r.retries("device_unreachable") == 1
    r.dispatcher.finish(answer)
    assert r.inflight() == {"a": 0, "b": 0}


@pytest.mark.parametrize("stream", [False, True])
async def test_device_silent_before_the_first_byte_is_retried(stream: bool) -> None:
    r = rig({"a": [Reply(head_delay_s=10, chunks=CHUNKS)], "b": [Reply(chunks=CHUNKS)]})
    answer = await r.open(stream=stream)
    assert answer.device.name == "b"
    assert r.retries("upstream_timeout") == 1
    r.dispatcher.finish(answer)
    assert r.inflight() == {"a": 0, "b": 0}


async def test_stream_whose_first_chunk_never_comes_is_retried_and_closed() -> None:
    r = rig({"a": [Reply(chunks=CHUNKS, hang_after=0)], "b": [Reply(chunks=CHUNKS)]})
    answer = await r.open(stream=True)
    assert answer.device.name == "b"
    assert r.backends["a"].upstreams[0].closed
    assert await drain(r, answer) == list(CHUNKS)
    assert r.inflight() == {"a": 0, "b": 0}


async def test_stream_that_ends_before_any_data_is_retried() -> None:
    r = rig({"a": [Reply(chunks=())], "b": [Reply(chunks=CHUNKS)]})
    answer = await r.open(stream=True)
    assert answer.device.name == "b"
    assert r.backends["a"].upstreams[0].closed


async def test_client_errors_pass_through_without_retry() -> None:
    body = orjson.dumps({"error": {"message": "bad temperature", "code": "invalid"}})
    r = rig({"a": [Reply(status=400, body=body)], "b": [Reply()]})
    answer = await r.open()
    assert (answer.status, answer.body, answer.attempts) == (400, body, 1)
    assert tried(r) == ["a"]
    r.dispatcher.finish(answer)
    assert r.inflight() == {"a": 0, "b": 0}
    # A client's mistake says nothing about the device's health.
    assert r.device("a").breaker.failures == 0


async def test_never_more_than_max_attempts() -> None:
    replies = {n: [Reply(status=503, body=error_body(i))] for i, n in enumerate("abcde")}
    r = rig(replies, max_attempts=2)
    answer = await r.open()
    assert tried(r) == ["a", "b"]
    assert (answer.status, answer.attempts) == (503, 2)


async def test_when_every_device_fails_the_last_engine_error_is_returned() -> None:
    r = rig({n: [Reply(status=500 + i, body=error_body(i))] for i, n in enumerate("abc")})
    answer = await r.open()
    assert tried(r) == ["a", "b", "c"]
    assert (answer.device.name, answer.status, answer.body, answer.attempts) == (
        "c",
        502,
        error_body(2),
        3,
    )
    r.dispatcher.finish(answer)
    assert r.inflight() == {"a": 0, "b": 0, "c": 0}


async def test_an_engine_error_body_is_preferred_to_a_later_connection_failure() -> None:
    r = rig(
        {"a": [Reply(status=500, body=error_body(1))], "b": [Reply(raises=DeviceUnreachable("x"))]}
    )
    answer = await r.open()
    assert (answer.device.name, answer.status, answer.body) == ("a", 500, error_body(1))
    r.dispatcher.finish(answer)
    assert r.inflight() == {"a": 0, "b": 0}


@pytest.mark.parametrize("stream", [False, True])
async def test_when_every_device_times_out_the_client_gets_504(stream: bool) -> None:
    r = rig({n: [Reply(head_delay_s=10, chunks=CHUNKS)] for n in "abc"})
    with pytest.raises(UpstreamTimeout) as info:
        await r.open(stream=stream)
    assert info.value.status == 504
    assert tried(r) == ["a", "b", "c"]
    assert r.inflight() == {"a": 0, "b": 0, "c": 0}
    assert (r.budget.active, r.budget.retrying) == (0, 0)


async def test_when_every_device_is_unreachable_the_client_gets_502() -> None:
    r = rig({n: [Reply(raises=DeviceUnreachable(f"{n} refused"))] for n in "ab"})
    with pytest.raises(UpstreamError) as info:
        await r.open()
    assert info.value.status == 502
    assert r.inflight() == {"a": 0, "b": 0}


async def test_exhausted_retry_budget_stops_retrying() -> None:
    budget = RetryBudget(ratio=0.2, minimum=3)
    budget.retrying = 3  # other requests hold every retry
    r = rig({"a": [Reply(status=500, body=error_body(1))], "b": [Reply()]}, budget=budget)
    answer = await r.open()
    assert tried(r) == ["a"]
    assert (answer.status, answer.body, answer.attempts) == (500, error_body(1), 1)
    assert r.retries("budget_exhausted") == 1
    assert budget.retrying == 3


async def test_retries_hold_the_budget_only_while_they_run() -> None:
    budget = RetryBudget(ratio=0.0, minimum=1)
    r = rig({"a": [Reply(status=500)], "b": [Reply(status=500)], "c": [Reply()]}, budget=budget)
    answer = await r.open()
    # One retry may be in flight at a time: b's retry ends before c's starts.
    assert answer.device.name == "c"
    assert budget.retrying == 0


async def test_cancelled_request_gives_its_in_flight_slot_back() -> None:
    r = rig({"a": [Reply(head_delay_s=10)]})
    r.dispatcher._limits = GatewayLimits(  # a long first-byte limit: the client gives up first
        max_attempts=1, timeouts=Timeouts(5, 60, 60, 60), total=None
    )
    task = asyncio.create_task(r.open())
    await r.backends["a"].arrived.wait()
    assert r.inflight() == {"a": 1}
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert r.inflight() == {"a": 0}
    assert (r.budget.active, r.budget.retrying) == (0, 0)


# -- choosing devices ---------------------------------------------------------


async def test_unknown_model_is_model_not_found() -> None:
    r = rig({"a": [Reply()]})
    with pytest.raises(ModelNotFound):
        await r.open(model="nope")
    assert tried(r) == []


async def test_no_available_device_is_no_healthy_device() -> None:
    r = rig({"a": [Reply()]})
    r.device("a").breaker.trip(r.clock())
    with pytest.raises(NoHealthyDevice):
        await r.open()
    assert tried(r) == []


async def test_off_prem_device_needs_the_policy_to_allow_it() -> None:
    r = rig({"cloud": [Reply()]}, off_prem=["cloud"])
    with pytest.raises(PolicyForbids):
        await r.open()
    answer = await r.open(allow_off_prem=True)
    assert answer.device.name == "cloud"


async def test_alias_is_sent_under_the_devices_own_model_name() -> None:
    r = rig(
        {"box": [Reply()]},
        models={"box": ["llama3.1:8b"]},
        aliases={"chat": ["ollama:llama3.1:8b", "llama3.1:8b"]},
    )
    answer = await r.open(model="chat")
    sent = r.backends["box"].sent[0]
    assert sent.model == "llama3.1:8b"
    assert orjson.loads(sent.body)["model"] == "llama3.1:8b"
    assert answer.model == "chat"


async def test_load_moves_requests_to_the_less_busy_device() -> None:
    r = rig({"a": [Reply()], "b": [Reply()]})
    first = await r.open()
    second = await r.open()
    assert (first.device.name, second.device.name) == ("a", "b")


# -- the breaker --------------------------------------------------------------


async def test_repeated_failures_open_the_breaker_and_the_device_is_skipped() -> None:
    r = rig({"a": [Reply(status=500)], "b": [Reply()]}, threshold=2)
    for _ in range(2):
        r.dispatcher.finish(await r.open())
    assert not r.device("a").available
    assert r.device("a").record.health == "unhealthy"
    r.dispatcher.finish(await r.open())
    assert tried(r) == ["a", "a", "b", "b", "b"]


async def test_a_success_forgets_earlier_failures() -> None:
    r = rig({"a": [Reply(status=500), Reply(), Reply(status=500)], "b": [Reply()]}, threshold=2)
    for _ in range(3):
        r.dispatcher.finish(await r.open())
    assert tried(r).count("a") == 3
    assert r.device("a").available


# -- streams ------------------------------------------------------------------


async def test_stream_is_relayed_whole_and_settles_at_the_end() -> None:
    r = rig({"a": [Reply(chunks=CHUNKS)]})
    answer = await r.open(stream=True)
    assert answer.body == CHUNKS[0]
    assert r.inflight() == {"a": 1}
    r.clock.advance(3.0)
    assert await drain(r, answer) == list(CHUNKS)
    assert r.inflight() == {"a": 0}
    assert r.backends["a"].upstreams[0].closed
    assert r.device("a").ewma_s == 3.0


async def test_consumer_that_stops_early_still_settles_and_closes_the_device_stream() -> None:
    r = rig({"a": [Reply(chunks=CHUNKS * 10)]})
    answer = await r.open(stream=True)
    relay = r.dispatcher.relay(answer)
    assert await anext(relay) == CHUNKS[0]
    assert await anext(relay) == CHUNKS[1]
    await relay.aclose()  # type: ignore[attr-defined]
    assert r.inflight() == {"a": 0}
    assert r.backends["a"].upstreams[0].closed
    assert r.backends["a"].upstreams[0].chunks_sent < len(CHUNKS) * 10


def parse_events(tail: bytes) -> list[object]:
    events = [e.removeprefix(b"data: ") for e in tail.split(b"\n\n") if e]
    return [e.decode() if e == b"[DONE]" else orjson.loads(e) for e in events]


async def test_stream_broken_after_first_chunk_ends_with_an_error_event_and_done() -> None:
    r = rig({"a": [Reply(chunks=CHUNKS, break_after=2)], "b": [Reply(chunks=CHUNKS)]})
    answer = await r.open(stream=True)
    chunks = await drain(r, answer)
    assert chunks[:2] == list(CHUNKS[:2])
    assert len(chunks) == 3
    error, done = parse_events(chunks[2])
    assert done == "[DONE]"
    assert isinstance(error, dict)
    assert error["error"]["type"] == "upstream_error"
    assert error["error"]["code"] == "device_unreachable"
    assert set(error["error"]) == {"message", "type", "param", "code"}
    # Bytes already reached the client: no retry elsewhere.
    assert tried(r) == ["a"]
    assert r.inflight() == {"a": 0, "b": 0}
    assert r.device("a").breaker.failures == 1
    assert r.device("a").ewma_s is None


async def test_idle_timeout_ends_a_silent_stream() -> None:
    r = rig({"a": [Reply(chunks=CHUNKS, hang_after=1)]})
    answer = await r.open(stream=True)
    chunks = await asyncio.wait_for(drain(r, answer), 5)
    assert chunks[0] == CHUNKS[0]
    error, done = parse_events(chunks[-1])
    assert isinstance(error, dict)
    assert error["error"]["code"] == "upstream_timeout"
    assert done == "[DONE]"
    assert r.inflight() == {"a": 0}
    assert r.backends["a"].upstreams[0].closed


async def test_total_request_limit_ends_a_long_stream() -> None:
    r = rig({"a": [Reply(chunks=CHUNKS, chunk_delay_s=0.001)]}, total=10.0)
    answer = await r.open(stream=True)
    r.clock.advance(11.0)
    chunks = await drain(r, answer)
    assert chunks[0] == CHUNKS[0]
    error, _ = parse_events(chunks[-1])
    assert isinstance(error, dict)
    assert error["error"]["code"] == "upstream_timeout"
    assert r.inflight() == {"a": 0}


async def test_stream_error_status_is_answered_as_a_body_not_a_stream() -> None:
    r = rig({"a": [Reply(status=429, body=b'{"error": {}}', chunks=CHUNKS)]})
    answer = await r.open(stream=True)
    assert answer.stream is None
    assert (answer.status, answer.body) == (429, b'{"error": {}}')
    r.dispatcher.finish(answer)
    assert r.inflight() == {"a": 0}
