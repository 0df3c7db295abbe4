"""The authenticator's cache: one database lookup per key and period, however many
requests arrive together; refusals are cached too; revocation shows after the TTL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from sparkplane.errors import Unauthorized
from sparkplane.security import keys
from sparkplane.security.auth import Authenticator
from sparkplane.security.rbac import Role
from sparkplane.security.store import KeyLookup
from sparkplane.security.tenancy import KeyRecord, Limits, Prices, TenantPolicy, TenantRecord
from tests.fakes.backend import FakeClock

NOW = datetime(2026, 11, 24, tzinfo=UTC)
TENANT = TenantRecord("t1", "acme", NOW, False, TenantPolicy(), Limits(), Prices())


class Keys:
    """A key store holding one key, counting lookups (each takes a little while)."""

    def __init__(self) -> None:
        self.key_id, self.key = keys.generate()
        self.lookups = 0
        self.revoked: datetime | None = None

    async def lookup(self, key_id: str) -> KeyLookup | None:
        self.lookups += 1
        await asyncio.sleep(0.01)
        if key_id != self.key_id:
            return None
        record = KeyRecord(key_id, "t1", "", Role.MEMBER, NOW, None, self.revoked, Limits())
        return KeyLookup(record, keys.digest(self.key), TENANT)


async def test_concurrent_requests_share_one_lookup() -> None:
    store = Keys()
    clock = FakeClock()
    auth = Authenticator(store, ttl=2.0, clock=clock)  # type: ignore[arg-type]
    principals = await asyncio.gather(*(auth.authenticate(store.key) for _ in range(50)))
    assert {p.tenant for p in principals} == {"acme"}
    assert store.lookups == 1
    clock.advance(2.5)  # the entry expired: again one lookup for the whole burst
    await asyncio.gather(*(auth.authenticate(store.key) for _ in range(50)))
    assert store.lookups == 2


async def test_revocation_is_seen_after_the_ttl_and_refusals_are_cached() -> None:
    store = Keys()
    clock = FakeClock()
    auth = Authenticator(store, ttl=2.0, clock=clock)  # type: ignore[arg-type]
    await auth.authenticate(store.key)
    store.revoked = NOW
    await auth.authenticate(store.key)  # still cached
    clock.advance(2.1)
    with pytest.raises(Unauthorized):
        await auth.authenticate(store.key)
    lookups = store.lookups
    with pytest.raises(Unauthorized):
        await auth.authenticate(store.key)
    assert store.lookups == lookups
