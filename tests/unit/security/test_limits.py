"""LocalLimiter against the Limiter contract, plus what is particular to it."""

from __future__ import annotations

import pytest

from sparkplane.security.limits import LocalLimiter, month_of
from sparkplane.security.tenancy import Limits
from tests.support.limiter_contract import START, FakeClock, LimiterContract, caller


class TestLocalLimiter(LimiterContract):
    @pytest.fixture
    def limiter(self, clock: FakeClock) -> LocalLimiter:
        return LocalLimiter(clock)


def test_month_of_gives_the_month_and_its_end() -> None:
    assert month_of(START) == ("2026-11", 1796083200.0)
    december = month_of(1796083200.0)
    assert december[0] == "2026-12"
    assert month_of(december[1])[0] == "2027-01"


async def test_month_totals_follow_settled_counts() -> None:
    limiter = LocalLimiter(FakeClock())
    who = caller(tenant_limits=Limits(monthly_tokens=10_000, monthly_images=10))
    ticket = await limiter.admit(who, tokens=1000, images=2)
    assert limiter.month_total("t:t1") == (1000, 2)
    await limiter.settle(ticket, tokens=420, images=1)
    assert limiter.month_total("t:t1") == (420, 1)
    assert limiter.month_total("k:key1") == (420, 1)


async def test_idle_buckets_are_forgotten() -> None:
    clock = FakeClock()
    limiter = LocalLimiter(clock)
    for i in range(10_050):
        await limiter.admit(caller(f"k{i}", key_limits=Limits(requests_per_minute=60)), tokens=1)
    clock.advance(2)  # every bucket refilled its one request
    await limiter.admit(caller("last", key_limits=Limits(requests_per_minute=60)), tokens=1)
    for i in range(10_050):
        await limiter.admit(caller(f"j{i}", key_limits=Limits(requests_per_minute=60)), tokens=1)
    assert len(limiter._tat) < 15_000
