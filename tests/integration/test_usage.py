"""The meter writing usage_records and the month report reading them back, on
SQLite and PostgreSQL; the in-process limiter seeded from those records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sparkplane.db import migrate
from sparkplane.db.engine import create_engine, session_factory
from sparkplane.db.models import UsageRow
from sparkplane.errors import RateLimited
from sparkplane.security.limits import LocalLimiter
from sparkplane.security.store import TenantStore
from sparkplane.security.tenancy import Limits, Prices
from sparkplane.usage.meter import Meter
from sparkplane.usage.records import UsageRecord
from sparkplane.usage.report import month_report
from sparkplane.usage.store import UsageStore
from tests.support.limiter_contract import START, FakeClock, caller

NOV = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
OCT = datetime(2026, 10, 31, 23, 59, tzinfo=UTC)
POWER = {"spark": 240.0, "rtx4090": 450.0}


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    yield session_factory(engine)
    await engine.dispose()


def use(tenant: str | None, model: str, device: str | None, **kw: Any) -> UsageRecord:
    values: dict[str, Any] = {"key_id": "key1", "kind": "chat", "status": 200, "at": NOV}
    values.update(kw)
    return UsageRecord(tenant_id=tenant, model=model, device=device, **values)


async def rows(sessions: async_sessionmaker[AsyncSession]) -> list[UsageRow]:
    async with sessions() as session:
        return list(await session.scalars(select(UsageRow).order_by(UsageRow.id)))


async def test_meter_writes_in_batches_in_the_background(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    meter = Meter(sessions, POWER.get, interval_s=0.05, batch=10)
    meter.start()
    try:
        for i in range(25):
            meter.record(use("t1", "llama", "spark", tokens_in=i, device_seconds=1800))
        for _ in range(250):  # the writer runs on its own; wait up to 5 s for it
            if meter.written == 25:
                break
            await asyncio.sleep(0.02)
        assert meter.written == 25
    finally:
        await meter.stop()
    written = await rows(sessions)
    assert [r.tokens_in for r in written] == list(range(25))
    assert written[0].energy_wh == pytest.approx(120.0)  # 30 min at 240 W
    assert written[0].at == NOV


async def test_flush_waits_for_the_batch_the_writer_has_in_flight(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A report read right after flush() must count every request recorded before it,
    # even one the background writer had already taken off the queue.
    gate = asyncio.Event()
    insert = UsageStore.insert_many

    async def slow(self: UsageStore, batch: list[dict[str, Any]]) -> None:
        await gate.wait()
        await insert(self, batch)

    monkeypatch.setattr(UsageStore, "insert_many", slow)
    meter = Meter(sessions, POWER.get, interval_s=0.01, batch=1)
    meter.start()
    try:
        meter.record(use("t1", "m", "spark"))
        for _ in range(250):  # until the writer holds the record
            if meter.pending == 0:
                break
            await asyncio.sleep(0.01)
        assert (meter.pending, meter.written) == (0, 0)
        flushed = asyncio.create_task(meter.flush())
        await asyncio.sleep(0.05)
        assert not flushed.done()  # still waiting for the insert in flight
        gate.set()
        await flushed
        assert len(await rows(sessions)) == 1
    finally:
        gate.set()
        await meter.stop()


async def test_energy_uses_the_device_figure_or_what_the_record_says(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    meter = Meter(sessions, POWER.get)
    meter.record(use("t1", "m", "rtx4090", device_seconds=8.0))
    meter.record(use("t1", "m", "unknown-box", device_seconds=8.0))
    meter.record(use("t1", "m", "spark", device_seconds=8.0, energy_wh=0.25))
    meter.record(use("t1", "m", None, device_seconds=8.0))
    await meter.stop()  # never started: stop still writes everything
    assert [r.energy_wh for r in await rows(sessions)] == pytest.approx([1.0, 0.0, 0.25, 0.0])


async def test_records_wait_while_the_database_cannot_take_them(database_url: str) -> None:
    engine = create_engine(database_url)  # not migrated yet: no usage_records table
    try:
        meter = Meter(session_factory(engine))
        for _ in range(3):
            meter.record(use("t1", "m", "d"))
        await meter.flush()
        assert meter.pending == 3
        await migrate.upgrade(engine)
        await meter.flush()
        assert meter.pending == 0
        assert len(await rows(session_factory(engine))) == 3
    finally:
        await engine.dispose()


async def test_month_report_aggregates_and_prices(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenants = TenantStore(sessions)
    prices = Prices(per_1k_input_tokens=0.2, per_1k_output_tokens=0.6, per_image=0.05,
                    per_device_hour=1.2)  # fmt: skip
    acme = await tenants.create("acme", prices=prices)
    beta = await tenants.create("beta")
    await tenants.create("idle")
    meter = Meter(sessions, POWER.get)
    meter.record(use(acme.id, "llama", "spark", tokens_in=3000, tokens_out=1000,
                     device_seconds=1800))  # fmt: skip
    meter.record(use(acme.id, "llama", "rtx4090", tokens_in=1000, tokens_out=1000,
                     device_seconds=360, status=200))  # fmt: skip
    meter.record(use(acme.id, "sdxl", "rtx4090", kind="workflow", images=4, device_seconds=40))
    meter.record(use(acme.id, "llama", "spark", status=502))
    meter.record(use(acme.id, "llama", "spark", tokens_in=10**6, at=OCT))  # last month
    meter.record(use(beta.id, "llama", "spark", tokens_in=500))
    await meter.flush()

    report = await month_report(sessions, "2026-11", acme)
    assert [t.tenant for t in report.tenants] == ["acme"]
    usage = report.tenants[0]
    assert (usage.total.requests, usage.total.errors) == (4, 1)
    assert (usage.total.tokens_in, usage.total.tokens_out, usage.total.images) == (4000, 2000, 4)
    assert usage.by_model["llama"].requests == 3
    assert usage.by_device["rtx4090"].device_seconds == pytest.approx(400)
    assert usage.total.energy_wh == pytest.approx(120 + 45 + 5)
    cost = 4 * 0.2 + 2 * 0.6 + 4 * 0.05 + 2200 / 3600 * 1.2
    assert usage.total.cost == pytest.approx(cost)

    everyone = await month_report(sessions, "2026-11")
    assert [t.tenant for t in everyone.tenants] == ["acme", "beta"]
    assert everyone.tenants[1].total.tokens_in == 500
    october = await month_report(sessions, "2026-10", acme)
    assert october.tenants[0].total.tokens_in == 10**6


async def test_local_limiter_seeds_month_totals_from_usage(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    meter = Meter(sessions)
    at = datetime.fromtimestamp(START, UTC)
    meter.record(use("t1", "m", "d", key_id="key1", tokens_in=400, tokens_out=300, at=at))
    meter.record(use("t1", "m", "d", key_id="key2", tokens_in=100, images=3, at=at))
    meter.record(use("t1", "m", "d", key_id="key1", tokens_in=10**6, at=OCT))
    await meter.flush()
    limiter = LocalLimiter(FakeClock())  # a restart in the middle of November
    await limiter.seed_month(sessions)
    assert limiter.month_total("t:t1") == (800, 3)
    assert limiter.month_total("k:key1") == (700, 0)
    who = caller(tenant_limits=Limits(monthly_tokens=1000))
    with pytest.raises(RateLimited):
        await limiter.admit(who, tokens=201)
    await limiter.admit(who, tokens=200)
