"""The meter: takes usage records on the hot path without waiting, writes them
to usage_records in the background in batches (one transaction each).

    record(r)  -> appended to a queue, nothing else (no I/O, no await)
    writer     -> every `interval_s`, or at once when `batch` records wait,
                  writes up to `batch` rows per transaction
    stop()     -> the writer finishes and everything left is flushed

Energy is filled in when written: device-seconds x the device's power (watts,
from `power_of(device)`) / 3600, and the record says where the watts came from
(`energy_source`): `measured` (its node's agent reported them), `configured`
(`extra["power_w"]`), `planner` (its planner profile), or `reported` when the
record carried its own energy.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sparkplane.usage.records import UsageRecord
from sparkplane.usage.store import UsageStore

log = structlog.get_logger("sparkplane.usage")


@dataclass(frozen=True, slots=True)
class Power:
    """A device's power draw in watts and where the figure comes from."""

    watts: float
    source: str  # "measured", "configured" or "planner"


# A bare number is a configured figure (`extra["power_w"]`).
PowerOf = Callable[[str], Power | float | None]


def _no_power(_: str) -> Power | float | None:
    return None


def power_figure(extra: Mapping[str, Any]) -> float | None:
    """The watts a device's settings give (`extra["power_w"]`), if a usable number."""
    value = extra.get("power_w")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        watts = float(value)
    except ValueError:
        return None
    return watts if math.isfinite(watts) and watts > 0 else None


def energy_wh(device_seconds: float, power_w: float | None) -> float:
    """Watt-hours used by `device_seconds` of work at `power_w` (0 when unknown)."""
    if not power_w or power_w < 0:
        return 0.0
    return device_seconds * power_w / 3600.0


class Meter:
    """Batches usage records into the database off the request path."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        power_of: PowerOf = _no_power,
        *,
        interval_s: float = 0.1,
        batch: int = 500,
        max_pending: int = 100_000,
    ) -> None:
        self._store = UsageStore(sessions)
        self._power_of = power_of
        self._interval = interval_s
        self._batch = batch
        self._max_pending = max_pending
        self._pending: deque[UsageRecord] = deque()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.dropped = 0
        self.written = 0

    @property
    def pending(self) -> int:
        """Records waiting to be written."""
        return len(self._pending)

    def record(self, record: UsageRecord) -> None:
        """Queue one record; never blocks. Over `max_pending` (database down) it is dropped."""
        if len(self._pending) >= self._max_pending:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("usage_dropped", action="usage.record", dropped=self.dropped)
            return
        self._pending.append(record)
        if len(self._pending) >= self._batch:
            self._wake.set()

    def start(self) -> None:
        """Start the background writer (inside the running event loop)."""
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._run(), name="usage-meter")

    async def stop(self) -> None:
        """Let the writer finish its batch, then write everything still queued."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()
        if self._pending:
            log.error("usage_lost", action="usage.stop", records=len(self._pending))

    async def flush(self) -> None:
        """Write every queued record now (stops at the first database failure)."""
        # The writer takes a batch off the queue before inserting it: wait for one
        # in flight, or a record recorded before this call could be unwritten yet.
        async with self._lock:
            pass
        while self._pending:
            if not await self._write_batch():
                return

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            while self._pending and not self._closing:
                if not await self._write_batch():
                    break  # database trouble: try again next round
                if len(self._pending) < self._batch:
                    break  # a partial batch waits for the next tick

    async def _write_batch(self) -> bool:
        async with self._lock:
            taken = [self._pending.popleft() for _ in range(min(self._batch, len(self._pending)))]
            if not taken:
                return True
            try:
                await self._store.insert_many([self._row(r) for r in taken])
            except Exception as exc:  # noqa: BLE001 - keep the records, retry later
                self._pending.extendleft(reversed(taken))
                log.warning("usage_write_failed", action="usage.write", error=str(exc)[:200])
                return False
            except BaseException:
                self._pending.extendleft(reversed(taken))
                raise
            self.written += len(taken)
            return True

    def _energy(self, r: UsageRecord) -> tuple[float, str]:
        if r.energy_wh is not None:
            return r.energy_wh, "reported"
        power = self._power_of(r.device) if r.device else None
        if isinstance(power, int | float):
            power = Power(float(power), "configured")
        energy = energy_wh(r.device_seconds, power.watts if power is not None else None)
        return energy, power.source if power is not None and energy else "none"

    def _row(self, r: UsageRecord) -> dict[str, Any]:
        energy, source = self._energy(r)
        return {
            "at": r.at,
            "tenant_id": r.tenant_id or None,
            "key_id": r.key_id or None,
            "kind": r.kind,
            "model": r.model[:256],
            "device": r.device,
            "status": r.status,
            "tokens_in": r.tokens_in,
            "tokens_out": r.tokens_out,
            "images": r.images,
            "duration_s": r.duration_s,
            "device_seconds": r.device_seconds,
            "energy_wh": energy,
            "energy_source": source,
            "estimated": r.estimated,
        }
