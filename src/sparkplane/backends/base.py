"""The contract every engine adapter implements.

The gateway speaks OpenAI's HTTP API to clients and hands each request to a
`Backend` as an `InferenceRequest`. The backend talks its engine's own
protocol and answers with an `Upstream` whose body is again OpenAI-format:
JSON for a plain response, `text/event-stream` chunks (`data: {...}\\n\\n`,
ending with `data: [DONE]`) for a stream. Adapters never retry, pick devices
or record metrics; dispatch does that for all of them.

Failures are reported in two ways:
- the engine answered: `Upstream.status` carries its HTTP status, and the body
  an OpenAI-format error (dispatch retries 5xx on another device, passes 4xx);
- the engine could not be reached or went silent: the adapter raises
  `DeviceUnreachable` or `sparkplane.errors.UpstreamTimeout`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import orjson

from sparkplane.errors import UpstreamError


class Operation(StrEnum):
    """What a client asked for: the OpenAI endpoint it called."""

    CHAT = "chat"
    COMPLETION = "completion"
    EMBEDDING = "embedding"


@dataclass(slots=True)
class InferenceRequest:
    """A validated client request, kept as received so it can be forwarded as is."""

    op: Operation
    model: str
    raw: bytes
    stream: bool
    _payload: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def payload(self) -> dict[str, Any]:
        """The body as a dict (parsed on first use: the common path never needs it)."""
        if self._payload is None:
            self._payload = orjson.loads(self.raw)
        return self._payload

    def body_for(self, model: str) -> bytes:
        """The JSON body to forward, naming the model as the device knows it.

        The client's bytes are reused untouched when no rename is needed, which
        keeps the common path free of a re-serialisation.
        """
        if model == self.model:
            return self.raw
        return orjson.dumps({**self.payload, "model": model})


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Time limits for one attempt on one device (seconds; None is no limit)."""

    connect: float
    first_byte: float
    idle: float
    response: float | None


@dataclass(slots=True)
class ProbeResult:
    """What a health probe learned about a device."""

    kind: str
    models: list[str]
    latency_s: float
    version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class DeviceUnreachable(UpstreamError):
    """The device refused or dropped the connection before answering."""

    code = "device_unreachable"


class Upstream(Protocol):
    """An engine's answer, already in OpenAI format."""

    status: int
    content_type: str

    async def read(self) -> bytes:
        """The whole body (for non-streaming requests and error answers)."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, for streaming requests (SSE bytes)."""
        ...

    def close(self) -> None:
        """Release the connection; safe to call more than once."""
        ...


class Backend(Protocol):
    """One engine endpoint. Implementations live one per module in backends/."""

    kind: str
    url: str

    async def probe(self) -> ProbeResult:
        """Check the device is alive and list the models it serves.

        Raises `DeviceUnreachable` or `UpstreamTimeout` when it is not.
        """
        ...

    async def send(self, request: InferenceRequest, model: str, timeouts: Timeouts) -> Upstream:
        """Send `request` for `model` (the device's own name for it).

        Returns once the response head has arrived (status known). Reading the
        body, and the first-byte and idle limits on it, are the caller's.
        """
        ...
