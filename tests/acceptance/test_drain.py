"""SIGTERM on `sparkplane serve`: readiness turns 503 at once, new requests get an
OpenAI-format 503, streams in flight finish, then the process exits 0 by itself;
the drain has a time limit; a second SIGTERM exits at once."""

from __future__ import annotations

import asyncio
import json
import signal
from dataclasses import dataclass, field

import httpx
import pytest

from tests.fakes.openai_engine import EngineBehaviour, FakeOpenAIEngine
from tests.support.cli import Cli, Served, serving

pytestmark = pytest.mark.slow

CHUNK_DELAY_S = 0.3


def slow_engine(chunks: int) -> FakeOpenAIEngine:
    """An engine that streams `chunks` words, one every CHUNK_DELAY_S."""
    reply = " ".join(f"w{i}" for i in range(chunks))
    return FakeOpenAIEngine(
        EngineBehaviour(reply=reply, chunks=chunks, chunk_delay_s=CHUNK_DELAY_S)
    )


@dataclass
class Stream:
    """A streaming chat request running in the background."""

    events: list[str] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None

    @property
    def text(self) -> str:
        """The content the chunks carried."""
        parts = []
        for event in self.events:
            if event != "[DONE]":
                for choice in json.loads(event).get("choices", []):
                    parts.append(choice.get("delta", {}).get("content") or "")
        return "".join(parts)


async def _consume(url: str, headers: httpx.Headers, stream: Stream) -> None:
    body = {"model": "fake-model", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    try:
        async with (
            httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as client,
            client.stream("POST", "/v1/chat/completions", json=body) as response,
        ):
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    stream.events.append(line.removeprefix("data: "))
                    stream.started.set()
    except (httpx.TransportError, AssertionError) as exc:
        stream.error = exc
        stream.started.set()


async def _begin_stream(server: Served) -> tuple[Stream, asyncio.Task[None]]:
    stream = Stream()
    task = asyncio.create_task(_consume(server.url, server.client.headers, stream))
    await asyncio.wait_for(stream.started.wait(), 20)
    assert stream.error is None, stream.error
    return stream, task


async def _until_draining(server: Served) -> httpx.Response:
    """/readyz right after the signal (polled briefly: the signal itself is async)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 1.0
    while True:
        r = await server.client.get("/readyz")
        if r.status_code != 200 or loop.time() > deadline:
            return r
        await asyncio.sleep(0.02)


async def _register(cli: Cli, engine: FakeOpenAIEngine) -> None:
    added = await cli("devices", "add", engine.url, "--name", "slow")
    assert added.code == 0, added


async def test_sigterm_drains_streams_then_exits_zero(cli: Cli) -> None:
    chunks = 10
    async with slow_engine(chunks) as engine:
        await _register(cli, engine)
        async with serving(cli, "--no-discover") as server:
            stream, task = await _begin_stream(server)
            server.signal(signal.SIGTERM)

            ready = await _until_draining(server)
            assert ready.status_code == 503
            assert ready.json() == {"status": "draining"}
            r = await server.client.post(
                "/v1/chat/completions",
                json={"model": "fake-model", "messages": [{"role": "user", "content": "x"}]},
            )
            assert r.status_code == 503
            assert r.json() == {
                "error": {
                    "message": "sparkplane is shutting down",
                    "type": "service_unavailable",
                    "param": None,
                    "code": "shutting_down",
                }
            }
            assert len(stream.events) < chunks, "the stream ended before the signal"
            assert server.process.returncode is None, "exited with a stream in flight"

            await asyncio.wait_for(task, 20)
            assert stream.error is None, stream.error
            assert stream.events[-1] == "[DONE]"
            assert len(stream.events) == chunks + 2  # words, the finish chunk, [DONE]
            assert stream.text == engine.behaviour.reply
            assert await server.wait(10) == 0, server.log_text()


async def test_drain_ends_after_its_time_limit(cli: Cli) -> None:
    cli.settings["DRAIN_TIMEOUT_S"] = "1"
    async with slow_engine(60) as engine:  # an 18 s stream
        await _register(cli, engine)
        async with serving(cli, "--no-discover") as server:
            stream, task = await _begin_stream(server)
            loop = asyncio.get_running_loop()
            sent = loop.time()
            server.signal(signal.SIGTERM)
            code = await server.wait(15)
            took = loop.time() - sent
            await asyncio.wait_for(task, 10)
    assert code == 0, server.log_text()
    assert "[DONE]" not in stream.events  # the stream was cut, not finished
    assert "drain_timeout" in server.log_text()
    assert took >= 0.8, "did not wait for the drain"
    assert took < 3.0, f"exited {took:.1f} s after SIGTERM with a 1 s drain limit"


async def test_second_sigterm_exits_at_once(cli: Cli) -> None:
    async with slow_engine(60) as engine:  # an 18 s stream, a 600 s drain limit
        await _register(cli, engine)
        async with serving(cli, "--no-discover") as server:
            stream, task = await _begin_stream(server)
            server.signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            assert server.process.returncode is None, "the first SIGTERM did not drain"
            loop = asyncio.get_running_loop()
            sent = loop.time()
            server.signal(signal.SIGTERM)
            code = await server.wait(15)
            took = loop.time() - sent
            await asyncio.wait_for(task, 10)
    assert "[DONE]" not in stream.events
    assert took < 2.0, f"exited {took:.1f} s (status {code}) after the second SIGTERM"
