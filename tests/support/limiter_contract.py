"""What every Limiter must do, as one suite: `tests/unit/security/test_limits.py`
runs it on LocalLimiter, `tests/integration/test_limits_redis.py` on RedisLimiter.

A subclass provides the `limiter` fixture, built on the `clock` fixture."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from sparkplane.errors import RateLimited
from sparkplane.security.limits import Limiter, Ticket
from sparkplane.security.principal import Principal
from sparkplane.security.rbac import Role
from sparkplane.security.tenancy import Limits

START = datetime(2026, 11, 15, 12, 0, tzinfo=UTC).timestamp()
UNTIL_DECEMBER = datetime(2026, 12, 1, tzinfo=UTC).timestamp() - START


class FakeClock:
    """Seconds since the epoch that move only when told."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def caller(
    key: str = "key1",
    tenant: str = "t1",
    *,
    key_limits: Limits | None = None,
    tenant_limits: Limits | None = None,
) -> Principal:
    """A member key of tenant `tenant` with the given limits."""
    return Principal(
        key_id=key,
        tenant_id=tenant,
        tenant=f"name-{tenant}",
        role=Role.MEMBER,
        key_limits=key_limits or Limits(),
        tenant_limits=tenant_limits or Limits(),
    )


async def refused(limiter: Limiter, who: Principal, **kwargs: Any) -> RateLimited:
    """The refusal admit raises (fails the test if it admits)."""
    with pytest.raises(RateLimited) as info:
        await limiter.admit(who, **kwargs)
    return info.value


class LimiterContract:
    """Behaviours shared by LocalLimiter and RedisLimiter."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    async def test_a_caller_without_limits_is_never_refused(self, limiter: Limiter) -> None:
        who = caller()
        tickets = [await limiter.admit(who, tokens=10**6, images=100) for _ in range(500)]
        assert len(tickets) == 500

    async def test_requests_per_minute_of_a_key(self, limiter: Limiter, clock: FakeClock) -> None:
        who = caller(key_limits=Limits(requests_per_minute=3))
        for _ in range(3):
            await limiter.admit(who, tokens=1)
        error = await refused(limiter, who, tokens=1)
        assert error.retry_after == pytest.approx(20.0, abs=1e-3)  # one request per 20 s
        assert error.code == "rate_limit_exceeded"
        assert "requests per minute" in error.message
        assert "API key" in error.message
        assert "key1" not in error.message
        clock.advance(19.9)
        error = await refused(limiter, who, tokens=1)
        assert error.retry_after == pytest.approx(0.1, abs=1e-3)
        clock.advance(0.1)
        await limiter.admit(who, tokens=1)

    async def test_requests_per_minute_of_a_tenant_is_shared_by_its_keys(
        self, limiter: Limiter
    ) -> None:
        tenant_limits = Limits(requests_per_minute=2)
        first = caller("a", tenant_limits=tenant_limits)
        second = caller("b", tenant_limits=tenant_limits)
        await limiter.admit(first, tokens=1)
        await limiter.admit(second, tokens=1)
        error = await refused(limiter, first, tokens=1)
        assert "tenant 'name-t1'" in error.message
        assert error.retry_after == pytest.approx(30.0, abs=1e-3)

    async def test_tokens_per_minute_and_settle_gives_back_the_unused_estimate(
        self, limiter: Limiter, clock: FakeClock
    ) -> None:
        who = caller(tenant_limits=Limits(tokens_per_minute=1000))
        ticket = await limiter.admit(who, tokens=600)
        error = await refused(limiter, who, tokens=600)
        # 200 tokens too many at 1000 a minute: 12 s.
        assert error.retry_after == pytest.approx(12.0, abs=1e-3)
        assert "tokens per minute" in error.message
        await limiter.settle(ticket, tokens=100, images=0)
        await limiter.admit(who, tokens=600)  # 100 + 600 fit in 1000

    async def test_settle_counts_real_tokens_over_the_estimate(self, limiter: Limiter) -> None:
        who = caller(key_limits=Limits(tokens_per_minute=1000))
        ticket = await limiter.admit(who, tokens=100)
        await limiter.settle(ticket, tokens=900, images=0)
        error = await refused(limiter, who, tokens=200)
        assert error.retry_after == pytest.approx(6.0, abs=1e-3)

    async def test_a_request_over_the_whole_minute_is_refused_as_too_large(
        self, limiter: Limiter
    ) -> None:
        error = await refused(limiter, caller(key_limits=Limits(tokens_per_minute=500)), tokens=501)
        assert error.code == "request_too_large"

    async def test_concurrent_requests(self, limiter: Limiter) -> None:
        who = caller(key_limits=Limits(concurrent=2))
        first = await limiter.admit(who, tokens=1)
        await limiter.admit(who, tokens=1)
        error = await refused(limiter, who, tokens=1)
        assert "concurrent requests" in error.message
        assert error.retry_after == pytest.approx(1.0)
        await limiter.settle(first, tokens=1, images=0)
        await limiter.settle(first, tokens=1, images=0)  # twice frees one slot, not two
        await limiter.admit(who, tokens=1)
        await refused(limiter, who, tokens=1)

    async def test_monthly_token_quota_until_the_month_ends(
        self, limiter: Limiter, clock: FakeClock
    ) -> None:
        who = caller(tenant_limits=Limits(monthly_tokens=1000))
        ticket = await limiter.admit(who, tokens=800)
        error = await refused(limiter, who, tokens=300)
        assert error.code == "insufficient_quota"
        assert "monthly tokens" in error.message
        assert error.retry_after == pytest.approx(UNTIL_DECEMBER, abs=1e-3)
        await limiter.settle(ticket, tokens=500, images=0)
        await limiter.admit(who, tokens=300)  # 500 + 300 <= 1000
        await refused(limiter, who, tokens=300)
        clock.now = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
        await limiter.admit(who, tokens=900)  # a new month, a new quota

    async def test_monthly_image_quota_of_a_key(self, limiter: Limiter) -> None:
        who = caller(key_limits=Limits(monthly_images=3))
        ticket = await limiter.admit(who, tokens=0, images=2)
        error = await refused(limiter, who, tokens=0, images=2)
        assert "monthly images" in error.message
        await limiter.admit(who, tokens=500)  # no images asked: the quota does not apply
        await limiter.settle(ticket, tokens=0, images=1)
        await limiter.admit(who, tokens=0, images=2)

    async def test_a_refusal_counts_nothing(self, limiter: Limiter) -> None:
        who = caller(
            key_limits=Limits(requests_per_minute=2, concurrent=1, monthly_tokens=10_000),
            tenant_limits=Limits(tokens_per_minute=100),
        )
        ticket = await limiter.admit(who, tokens=50)
        await limiter.settle(ticket, tokens=50, images=0)
        for _ in range(3):
            await refused(limiter, who, tokens=80)  # the tenant's tokens per minute
        # The refused requests took no request, no slot and no tokens:
        await limiter.admit(who, tokens=50)

    async def test_retry_after_is_the_longest_wait(self, limiter: Limiter) -> None:
        who = caller(
            key_limits=Limits(requests_per_minute=1),
            tenant_limits=Limits(requests_per_minute=6),
        )
        await limiter.admit(who, tokens=1)
        error = await refused(limiter, who, tokens=1)
        assert error.retry_after == pytest.approx(60.0, abs=1e-3)
        assert "API key" in error.message

    async def test_one_tenant_over_its_limit_does_not_block_another(self, limiter: Limiter) -> None:
        limits = Limits(requests_per_minute=1, concurrent=1, monthly_tokens=100)
        busy = caller("a", "ta", tenant_limits=limits)
        other = caller("b", "tb", tenant_limits=limits)
        await limiter.admit(busy, tokens=100)
        for _ in range(20):
            await refused(limiter, busy, tokens=1)
        ticket = await limiter.admit(other, tokens=100)
        assert isinstance(ticket, Ticket)

    async def test_usage_before_a_quota_was_set_counts_against_it(self, limiter: Limiter) -> None:
        ticket = await limiter.admit(caller(), tokens=0)
        await limiter.settle(ticket, tokens=700, images=0)
        capped = caller(tenant_limits=Limits(monthly_tokens=1000))
        await refused(limiter, capped, tokens=400)
        await limiter.admit(capped, tokens=300)

    async def test_fifty_at_once_against_ten_concurrent_gives_ten(self, limiter: Limiter) -> None:
        who = caller(tenant_limits=Limits(concurrent=10))
        results = await asyncio.gather(
            *(limiter.admit(who, tokens=1) for _ in range(50)), return_exceptions=True
        )
        tickets = [r for r in results if isinstance(r, Ticket)]
        refusals = [r for r in results if isinstance(r, RateLimited)]
        assert (len(tickets), len(refusals)) == (10, 40)
