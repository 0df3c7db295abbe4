"""RedisLimiter against a real Redis (127.0.0.1:6379): the Limiter contract,
replicas sharing one limit exactly, keys that expire, and seeding from the
database. Each test uses its own key namespace and removes it afterwards."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.asyncio import Redis

from sparkplane.db import migrate
from sparkplane.db.engine import create_engine, session_factory
from sparkplane.errors import RateLimited, Unavailable
from sparkplane.security.limits import Ticket
from sparkplane.security.limits_redis import RedisLimiter
from sparkplane.security.tenancy import Limits
from sparkplane.usage.meter import Meter
from sparkplane.usage.records import UsageRecord
from tests.support.limiter_contract import START, FakeClock, LimiterContract, caller
from tests.support.services import require_redis

pytestmark = pytest.mark.redis


@pytest.fixture
async def namespace() -> AsyncIterator[str]:
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    url = require_redis()
    prefix = f"sparkplane:limits:test-{uuid.uuid4().hex[:12]}"
    yield prefix
    redis = Redis.from_url(url)
    keys = [k async for k in redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def _limiter(prefix: str, clock: FakeClock) -> RedisLimiter:
    return RedisLimiter.from_url(require_redis(), prefix=prefix, clock=clock)


class TestRedisLimiter(LimiterContract):
    @pytest.fixture
    async def limiter(self, namespace: str, clock: FakeClock) -> AsyncIterator[RedisLimiter]:
        limiter = await _limiter(namespace, clock)
        yield limiter
        await limiter.close()


async def test_two_replicas_share_one_limit_exactly(namespace: str) -> None:
    clock = FakeClock()
    replicas = [await _limiter(namespace, clock), await _limiter(namespace, clock)]
    try:
        who = caller(key_limits=Limits(requests_per_minute=20), tenant_limits=Limits(concurrent=7))
        results = await asyncio.gather(
            *(replicas[i % 2].admit(who, tokens=1) for i in range(50)), return_exceptions=True
        )
        tickets = [r for r in results if isinstance(r, Ticket)]
        assert len(tickets) == 7  # the tenant's concurrency binds first
        assert all(isinstance(r, RateLimited) for r in results if not isinstance(r, Ticket))
        for i, ticket in enumerate(tickets):
            await replicas[i % 2].settle(ticket, tokens=1, images=0)
        more = await asyncio.gather(
            *(replicas[i % 2].admit(who, tokens=1) for i in range(50)), return_exceptions=True
        )
        # 20 a minute in all, across both replicas: 7 earlier + 13 now (7 at a time).
        admitted = [r for r in more if isinstance(r, Ticket)]
        assert len(admitted) == 7
        for i, ticket in enumerate(admitted):
            await replicas[i % 2].settle(ticket, tokens=1, images=0)
        rest = await asyncio.gather(
            *(replicas[i % 2].admit(who, tokens=1) for i in range(50)), return_exceptions=True
        )
        assert sum(isinstance(r, Ticket) for r in rest) == 6
    finally:
        for r in replicas:
            await r.close()


async def test_replicas_share_monthly_totals(namespace: str) -> None:
    clock = FakeClock()
    a, b = await _limiter(namespace, clock), await _limiter(namespace, clock)
    try:
        who = caller(tenant_limits=Limits(monthly_tokens=1000))
        ticket = await a.admit(who, tokens=600)
        with pytest.raises(RateLimited):
            await b.admit(who, tokens=600)
        await a.settle(ticket, tokens=300, images=0)
        await b.admit(who, tokens=600)
        assert await b.month_total("t:t1") == (900, 0)
    finally:
        await a.close()
        await b.close()


async def test_every_key_expires(namespace: str) -> None:
    limiter = await _limiter(namespace, FakeClock())
    try:
        every = Limits(
            requests_per_minute=10,
            tokens_per_minute=10_000,
            concurrent=3,
            monthly_tokens=10**6,
            monthly_images=100,
        )
        await limiter.admit(caller(key_limits=every, tenant_limits=every), tokens=50, images=1)
        redis = Redis.from_url(require_redis())
        keys = [k async for k in redis.scan_iter(match=f"{namespace}:*")]
        ttls = [await redis.ttl(k) for k in keys]
        await redis.aclose()
        assert len(keys) == 2 * 5  # key and tenant: r, t, c and two month totals
        assert all(t > 0 for t in ttls), dict(zip(keys, ttls, strict=True))
        assert max(ttls) < 40 * 86_400
    finally:
        await limiter.close()


async def test_seed_month_loads_totals_once(namespace: str, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'usage.db'}"
    engine = create_engine(url)
    await migrate.upgrade(engine)
    sessions = session_factory(engine)
    meter = Meter(sessions)
    at = datetime.fromtimestamp(START, UTC)
    for tokens in (300, 200):
        meter.record(UsageRecord("t1", "key1", "chat", "m", "d", 200, tokens_in=tokens, at=at))
    meter.record(UsageRecord("t1", "key2", "chat", "m", "d", 200, images=2, at=at))
    october = datetime(2026, 10, 31, tzinfo=UTC)
    meter.record(UsageRecord("t1", "key1", "chat", "m", "d", 200, tokens_in=999, at=october))
    await meter.flush()
    clock = FakeClock()
    first, second = await _limiter(namespace, clock), await _limiter(namespace, clock)
    try:
        await first.seed_month(sessions)
        assert await first.month_total("t:t1") == (500, 2)
        assert await first.month_total("k:key1") == (500, 0)
        ticket = await first.admit(caller(tenant_limits=Limits(monthly_tokens=1000)), tokens=100)
        await second.seed_month(sessions)  # a replica starting later keeps the live count
        assert await second.month_total("t:t1") == (600, 2)
        await first.settle(ticket, tokens=100, images=0)
    finally:
        await first.close()
        await second.close()
        await engine.dispose()


async def test_unreachable_redis_refuses_with_503_not_a_crash() -> None:
    limiter = RedisLimiter.from_url("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(Unavailable) as info:
            await limiter.admit(caller(key_limits=Limits(concurrent=1)), tokens=1)
        assert info.value.status == 503
        ticket = await limiter.admit(caller(), tokens=1)  # no limits: no Redis needed
        await limiter.settle(ticket, tokens=5, images=0)  # logs, does not raise
    finally:
        await limiter.close()
