"""Residency as data: which model sits in which device's memory, and each
device's history of loads and evictions. Named operations over the
`residency` and `device_events` tables; the health loop and the load steps
write, the API and the CLI read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sparkplane.db.models import DeviceEventRow, ResidencyRow, utcnow


class EventKind(StrEnum):
    """What happened to a device's memory."""

    LOAD = "load"
    LOAD_FAILED = "load_failed"
    EVICT = "evict"
    EVICT_FAILED = "evict_failed"
    SEEN_LOADED = "seen_loaded"  # the engine loaded it by itself (or another process did)
    SEEN_UNLOADED = "seen_unloaded"  # the engine let it go by itself (its own keep-alive)


@dataclass(frozen=True, slots=True)
class Resident:
    """A model in a device's memory."""

    model: str
    bytes: int
    source: str  # "engine" when the engine said how much, "planner" for our estimate
    seen_at: datetime | None = None

    def public(self) -> dict[str, Any]:
        """For the API and `--json`."""
        return {
            "model": self.model,
            "bytes": self.bytes,
            "source": self.source,
            "seen_at": self.seen_at.isoformat() if self.seen_at else None,
        }


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """One entry of a device's history."""

    device_id: str
    kind: EventKind
    model: str = ""
    bytes: int = 0
    seconds: float | None = None
    detail: str = ""
    at: datetime | None = None

    def public(self) -> dict[str, Any]:
        """For the API and `--json`."""
        return {
            "at": self.at.isoformat() if self.at else None,
            "kind": self.kind.value,
            "model": self.model,
            "bytes": self.bytes,
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "detail": self.detail,
        }


class ResidencyStore:
    """The residency and device history tables."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def replace(self, device_id: str, residents: Sequence[Resident]) -> None:
        """Make `residents` the device's whole residency."""
        now = utcnow()
        async with self._sessions.begin() as session:
            await session.execute(delete(ResidencyRow).where(ResidencyRow.device_id == device_id))
            session.add_all(
                ResidencyRow(
                    device_id=device_id, model=r.model, bytes=r.bytes, source=r.source, seen_at=now
                )
                for r in residents
            )

    async def residents(self, device_id: str) -> list[Resident]:
        """The device's residency as last written, by model name."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ResidencyRow)
                .where(ResidencyRow.device_id == device_id)
                .order_by(ResidencyRow.model)
            )
            return [Resident(r.model, r.bytes, r.source, r.seen_at) for r in rows]

    async def record(self, events: Sequence[DeviceEvent]) -> None:
        """Append to devices' history."""
        if not events:
            return
        async with self._sessions.begin() as session:
            session.add_all(
                DeviceEventRow(
                    device_id=e.device_id,
                    at=e.at or utcnow(),
                    kind=e.kind.value,
                    model=e.model,
                    bytes=e.bytes,
                    seconds=e.seconds,
                    detail=e.detail[:500],
                )
                for e in events
            )

    async def history(self, device_id: str, limit: int = 20) -> list[DeviceEvent]:
        """The device's latest events, newest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(DeviceEventRow)
                .where(DeviceEventRow.device_id == device_id)
                .order_by(DeviceEventRow.seq.desc())
                .limit(limit)
            )
            return [
                DeviceEvent(
                    r.device_id, EventKind(r.kind), r.model, r.bytes, r.seconds, r.detail, r.at
                )
                for r in rows
            ]
