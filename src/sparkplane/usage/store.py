"""Named database operations on usage_records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sparkplane.db.engine import insert_rows
from sparkplane.db.models import UsageRow
from sparkplane.errors import BadRequest


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """The first instant of `month` ("2026-11", UTC) and of the month after it."""
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise BadRequest(f"month {month!r} is not YYYY-MM", param="month") from None
    end = datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def current_month(now: datetime | None = None) -> str:
    """This month (UTC) as YYYY-MM."""
    return (now or datetime.now(UTC)).strftime("%Y-%m")


@dataclass(frozen=True, slots=True)
class MonthTotals:
    """Tokens (in + out) and images per tenant id and per key id for one month."""

    by_tenant: dict[str, tuple[int, int]]
    by_key: dict[str, tuple[int, int]]


@dataclass(frozen=True, slots=True)
class UsageGroup:
    """Sums over one tenant's records for one model on one device."""

    tenant_id: str | None
    model: str
    device: str | None
    requests: int
    errors: int
    tokens_in: int
    tokens_out: int
    images: int
    device_seconds: float
    energy_wh: float
    # The part of energy_wh from power its node measured (the rest is estimated).
    energy_measured_wh: float = 0.0


_TABLE = UsageRow.metadata.tables["usage_records"]


class UsageStore:
    """usage_records in the database."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def insert_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Write rows (column -> value) in one transaction."""
        if not rows:
            return
        async with self._sessions() as session:
            # The table, not the mapped class: a plain executemany, without the ORM's
            # bulk-insert bookkeeping for every row.
            await insert_rows(session, _TABLE, rows)
            await session.commit()

    async def month_totals(self, month: str) -> MonthTotals:
        """Tokens and images per tenant and per key in `month`: what quotas count."""
        start, end = month_bounds(month)
        tokens = func.sum(UsageRow.tokens_in + UsageRow.tokens_out)
        images = func.sum(UsageRow.images)
        period = (UsageRow.at >= start, UsageRow.at < end)
        totals: list[dict[str, tuple[int, int]]] = []
        async with self._sessions() as session:
            for column in (UsageRow.tenant_id, UsageRow.key_id):
                result = await session.execute(
                    select(column, tokens, images)
                    .where(*period, column.is_not(None))
                    .group_by(column)
                )
                totals.append({str(r[0]): (int(r[1] or 0), int(r[2] or 0)) for r in result})
        return MonthTotals(by_tenant=totals[0], by_key=totals[1])

    async def groups(self, month: str, tenant_id: str | None = None) -> list[UsageGroup]:
        """Sums per tenant, model and device in `month`; one tenant's only when given."""
        start, end = month_bounds(month)
        query = (
            select(
                UsageRow.tenant_id,
                UsageRow.model,
                UsageRow.device,
                func.count(),
                func.sum(case((UsageRow.status >= 400, 1), else_=0)),
                func.sum(UsageRow.tokens_in),
                func.sum(UsageRow.tokens_out),
                func.sum(UsageRow.images),
                func.sum(UsageRow.device_seconds),
                func.sum(UsageRow.energy_wh),
                func.sum(
                    case((UsageRow.energy_source == "measured", UsageRow.energy_wh), else_=0.0)
                ),
            )
            .where(UsageRow.at >= start, UsageRow.at < end)
            .group_by(UsageRow.tenant_id, UsageRow.model, UsageRow.device)
        )
        if tenant_id is not None:
            query = query.where(UsageRow.tenant_id == tenant_id)
        async with self._sessions() as session:
            result = await session.execute(query)
            return [
                UsageGroup(
                    tenant_id=r[0],
                    model=r[1],
                    device=r[2],
                    requests=int(r[3]),
                    errors=int(r[4] or 0),
                    tokens_in=int(r[5] or 0),
                    tokens_out=int(r[6] or 0),
                    images=int(r[7] or 0),
                    device_seconds=float(r[8] or 0.0),
                    energy_wh=float(r[9] or 0.0),
                    energy_measured_wh=float(r[10] or 0.0),
                )
                for r in result
            ]
