"""The accounting around one inference request: limits before, usage after.

`open()` admits the request against the caller's key and tenant limits (429
otherwise) before anything is sent to a device; `close()` runs exactly once
when the request is over, whatever the outcome: it settles the limiter with
the real token counts and hands a usage record to the meter (which writes in
the background: no database work on the request path).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from sparkplane.backends.base import Operation
from sparkplane.security.limits import Limiter, Ticket
from sparkplane.security.principal import Principal
from sparkplane.usage.meter import Meter
from sparkplane.usage.records import UsageRecord
from sparkplane.usage.tokens import (
    StreamTally,
    TokenCount,
    admission_estimate,
    count_body,
    estimate_prompt,
)

NOTHING = TokenCount(0, 0, estimated=False)


@dataclass(slots=True)
class Entry:
    """One admitted request being accounted for."""

    principal: Principal
    op: Operation
    model: str
    request_bytes: int
    ticket: Ticket
    started: float
    closed: bool = False


class Ledger:
    """Limits and metering for inference requests."""

    def __init__(
        self, limiter: Limiter, meter: Meter, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limiter = limiter
        self._meter = meter
        self._clock = clock

    async def open(
        self,
        principal: Principal,
        op: Operation,
        model: str,
        request_bytes: int,
        max_tokens: int | None,
    ) -> Entry:
        """Admit the request (raises RateLimited or Unavailable) and start its entry."""
        if op is Operation.EMBEDDING:
            estimate = estimate_prompt(request_bytes)
        else:
            estimate = admission_estimate(request_bytes, max_tokens)
        ticket = await self._limiter.admit(principal, tokens=estimate)
        return Entry(principal, op, model, request_bytes, ticket, self._clock())

    async def close(
        self, entry: Entry, *, device: str | None, status: int, tokens: TokenCount = NOTHING
    ) -> None:
        """Settle limits with what was really used and record the usage (once)."""
        if entry.closed:
            return
        entry.closed = True
        elapsed = self._clock() - entry.started
        await self._limiter.settle(entry.ticket, tokens=tokens.total, images=0)
        principal = entry.principal
        self._meter.record(
            UsageRecord(
                tenant_id=principal.tenant_id or None,
                key_id=principal.key_id or None,
                kind=entry.op.value,
                model=entry.model,
                device=device,
                status=status,
                tokens_in=tokens.tokens_in,
                tokens_out=tokens.tokens_out,
                duration_s=elapsed,
                device_seconds=elapsed if device is not None else 0.0,
                estimated=tokens.estimated,
            )
        )

    async def close_body(self, entry: Entry, *, device: str, status: int, body: bytes) -> None:
        """Close after a plain answer, counting its tokens."""
        tokens = count_body(body, entry.request_bytes) if status < 400 else NOTHING
        await self.close(entry, device=device, status=status, tokens=tokens)

    async def tallied(
        self, entry: Entry, device: str, stream: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        """Pass a stream through, counting its tokens; closes the entry when it ends."""
        tally = StreamTally(entry.request_bytes)
        try:
            async for chunk in stream:
                tally.feed(chunk)
                yield chunk
        finally:
            # Shielded: a client that leaves cancels this generator, but the limiter
            # must still be settled (a Redis round trip may be in flight).
            await asyncio.shield(
                self.close(entry, device=device, status=200, tokens=tally.result())
            )
