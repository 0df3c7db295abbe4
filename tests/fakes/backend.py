"""An in-memory `Backend` for unit tests of dispatch and the fleet.

Each call to `send` takes the next `Reply` from the script (the last one
repeats), so a test can say "fail, then succeed" without a network. The fake
records what it was sent and whether each answer was closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from sparkplane.backends.base import (
    DeviceUnreachable,
    InferenceRequest,
    ProbeResult,
    Timeouts,
    Upstream,
)
from sparkplane.errors import SparkplaneError

OK_BODY = b'{"object": "chat.completion", "choices": []}'


@dataclass
class Reply:
    """How the fake answers one `send`."""

    status: int = 200
    body: bytes = OK_BODY
    chunks: Sequence[bytes] = ()  # a stream's chunks, when the request streams
    raises: SparkplaneError | None = None  # raised by `send` instead of answering
    head_delay_s: float = 0.0  # before `send` returns
    chunk_delay_s: float = 0.0  # before every chunk
    break_after: int | None = None  # raise DeviceUnreachable after this many chunks
    hang_after: int | None = None  # go silent (forever) after this many chunks
    content_type: str = "application/json"


@dataclass
class Sent:
    """One request the fake received."""

    model: str
    body: bytes
    stream: bool


class FakeUpstream:
    """An `Upstream` playing back one `Reply`."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.status = reply.status
        self.content_type = reply.content_type
        self.closed = False
        self.chunks_sent = 0

    async def read(self) -> bytes:
        """The whole body."""
        return self.reply.body

    async def chunks(self) -> AsyncIterator[bytes]:
        """The stream's chunks, with the reply's delays and failures."""
        reply = self.reply
        for i, chunk in enumerate(reply.chunks):
            if reply.break_after is not None and i >= reply.break_after:
                raise DeviceUnreachable("fake device dropped the stream")
            if reply.hang_after is not None and i >= reply.hang_after:
                await asyncio.Event().wait()
            if reply.chunk_delay_s:
                await asyncio.sleep(reply.chunk_delay_s)
            self.chunks_sent += 1
            yield chunk

    def close(self) -> None:
        """Mark the answer closed (what tells a real engine to stop)."""
        self.closed = True


@dataclass
class FakeBackend:
    """A scripted engine: `replies` are played in order, the last one repeats."""

    replies: list[Reply] = field(default_factory=lambda: [Reply()])
    models: list[str] = field(default_factory=lambda: ["m"])
    kind: str = "openai"
    url: str = "http://fake.invalid"
    probe_error: SparkplaneError | None = None
    sent: list[Sent] = field(default_factory=list)
    upstreams: list[FakeUpstream] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # set on every `send`

    async def probe(self) -> ProbeResult:
        """The scripted model list, or the scripted probe failure."""
        if self.probe_error is not None:
            raise self.probe_error
        return ProbeResult(kind=self.kind, models=list(self.models), latency_s=0.001)

    async def send(self, request: InferenceRequest, model: str, timeouts: Timeouts) -> Upstream:
        """Answer with the next scripted reply."""
        reply = self.replies[min(len(self.sent), len(self.replies) - 1)]
        self.sent.append(Sent(model, request.body_for(model), request.stream))
        self.arrived.set()
        if reply.head_delay_s:
            await asyncio.sleep(reply.head_delay_s)
        if reply.raises is not None:
            raise reply.raises
        upstream = FakeUpstream(reply)
        self.upstreams.append(upstream)
        return upstream


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds
