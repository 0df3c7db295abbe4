"""Process lifecycle: counting requests in flight and draining on SIGTERM."""

from __future__ import annotations

import asyncio


class Lifecycle:
    """Whether the process takes new work, and how much work is still running."""

    __slots__ = ("_idle", "active", "draining")

    def __init__(self) -> None:
        self.draining = False
        self.active = 0
        self._idle: asyncio.Event | None = None

    def enter(self) -> None:
        """A request started."""
        self.active += 1

    def leave(self) -> None:
        """A request ended (its last byte was sent or it failed)."""
        self.active -= 1
        if self.active == 0 and self._idle is not None:
            self._idle.set()

    def begin_drain(self) -> None:
        """Stop taking new work; readiness turns false."""
        self.draining = True

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is in flight; False if `timeout` passed first."""
        if self.active == 0:
            return True
        self._idle = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True
