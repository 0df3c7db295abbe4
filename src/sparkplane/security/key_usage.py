"""When each API key was last used, kept off the request path.

    usage = KeyUsage(key_store, interval=30.0)
    usage.start()
    usage.note("0a1b2c3d4e5f")   # on every authenticated request: a dict write, no I/O
    await usage.flush()          # one transaction for every key seen since the last
    await usage.stop()           # flushes what is left

The request path only overwrites one dict entry per key; a background task
writes the batch every `interval` seconds (one UPDATE per key seen, in one
transaction), so `last_used_at` is at most `interval` behind and a busy key
costs one write per interval, not one per request. A failed write keeps the
batch for the next round (a later time for a key wins).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from sparkplane.security.store import KeyStore

log = structlog.get_logger("sparkplane.keys")

DEFAULT_INTERVAL_S = 30.0


class KeyUsage:
    """Last-used times of keys, batched into the database."""

    def __init__(
        self,
        store: KeyStore,
        interval: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._interval = interval
        self._clock = clock
        self._seen: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def note(self, key_id: str) -> None:
        """`key_id` was used now."""
        self._seen[key_id] = self._clock()

    def start(self) -> None:
        """Start writing batches every `interval` seconds."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="key-usage")

    async def stop(self) -> None:
        """Stop, writing what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Write every key seen since the last flush (kept for the next on failure)."""
        batch, self._seen = self._seen, {}
        if not batch:
            return
        try:
            await self._store.touch({k: datetime.fromtimestamp(t, UTC) for k, t in batch.items()})
        except Exception as exc:  # noqa: BLE001 - any failure: keep the batch, try later
            for key_id, at in batch.items():
                self._seen[key_id] = max(at, self._seen.get(key_id, at))
            log.warning(
                "key_usage_write_failed",
                action="keys.last_used",
                error=f"{type(exc).__name__}: {exc}"[:300],
                keys=len(self._seen),
            )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()
