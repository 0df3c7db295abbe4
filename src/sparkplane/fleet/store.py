"""Named database operations on devices. Routes and the health loop call these;
nothing else builds device queries."""

from __future__ import annotations

import uuid
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sparkplane.db.models import DeviceRow, utcnow
from sparkplane.errors import Conflict, NotFound
from sparkplane.fleet.device import DeviceRecord

_FIELDS = tuple(f.name for f in fields(DeviceRecord))
EDITABLE = frozenset({"url", "kind", "priority", "off_prem", "enabled", "api_key", "extra"})


def _record(row: DeviceRow) -> DeviceRecord:
    return DeviceRecord(**{name: getattr(row, name) for name in _FIELDS})


class DeviceStore:
    """Devices in the database."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def list_devices(self) -> list[DeviceRecord]:
        """Every registered device, by name."""
        async with self._sessions() as session:
            rows = await session.scalars(select(DeviceRow).order_by(DeviceRow.name))
            return [_record(r) for r in rows]

    async def get(self, name: str) -> DeviceRecord:
        """The device called `name`; NotFound if there is none."""
        async with self._sessions() as session:
            row = await session.scalar(select(DeviceRow).where(DeviceRow.name == name))
            if row is None:
                raise NotFound(f"no device named {name!r}", code="device_not_found")
            return _record(row)

    async def add(
        self,
        *,
        name: str,
        url: str,
        kind: str,
        priority: int = 0,
        off_prem: bool = False,
        api_key: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> DeviceRecord:
        """Register a device; Conflict if the name is taken."""
        row = DeviceRow(
            id=uuid.uuid4().hex,
            name=name,
            url=url,
            kind=kind,
            priority=priority,
            off_prem=off_prem,
            enabled=True,
            api_key=api_key,
            extra=extra or {},
            created_at=utcnow(),
            health="unknown",
            models=[],
        )
        async with self._sessions() as session:
            session.add(row)
            try:
                await session.commit()
            except IntegrityError as exc:
                raise Conflict(f"a device named {name!r} exists", code="device_exists") from exc
            return _record(row)

    async def edit(self, name: str, **changes: Any) -> DeviceRecord:
        """Change a device's settings (only the EDITABLE fields)."""
        unknown = set(changes) - EDITABLE
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        if not changes:  # an UPDATE with an empty SET is a syntax error
            return await self.get(name)
        async with self._sessions() as session:
            result = await session.execute(
                update(DeviceRow).where(DeviceRow.name == name).values(**changes)
            )
            await session.commit()
        if getattr(result, "rowcount", 0) == 0:
            raise NotFound(f"no device named {name!r}", code="device_not_found")
        return await self.get(name)

    async def remove(self, name: str) -> None:
        """Unregister a device; NotFound if there is none."""
        async with self._sessions() as session:
            result = await session.execute(delete(DeviceRow).where(DeviceRow.name == name))
            await session.commit()
        if getattr(result, "rowcount", 0) == 0:
            raise NotFound(f"no device named {name!r}", code="device_not_found")

    async def save_probes(self, records: list[DeviceRecord], when: datetime | None = None) -> None:
        """Write the last probe of several devices in one transaction."""
        if not records:
            return
        when = when or utcnow()
        async with self._sessions() as session:
            for r in records:
                await session.execute(
                    update(DeviceRow)
                    .where(DeviceRow.id == r.id)
                    .values(
                        health=r.health,
                        models=r.models,
                        latency_ms=r.latency_ms,
                        engine_version=r.engine_version,
                        last_error=r.last_error,
                        probed_at=when,
                    )
                )
            await session.commit()
