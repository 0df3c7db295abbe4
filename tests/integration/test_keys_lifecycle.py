"""Key lifecycle on SQLite and PostgreSQL: a rotation's old secret works through
its overlap window and not after; revocation ends both secrets; last-used times
reach the table in batches, never from the request path; a revoke made through
one replica is refused by another within its auth cache time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sparkplane.db import migrate
from sparkplane.db.engine import create_engine, session_factory
from sparkplane.db.models import ApiKeyRow
from sparkplane.errors import KeyRefused
from sparkplane.security.auth import Authenticator
from sparkplane.security.key_usage import KeyUsage
from sparkplane.security.rbac import Role
from sparkplane.security.store import KeyLookup, KeyStore, TenantStore


class Counting(KeyStore):
    """A key store that counts what the request path asks of the database."""

    lookups = 0
    touches: list[dict[str, datetime]]
    sessions: async_sessionmaker[AsyncSession]

    async def lookup(self, key_id: str) -> KeyLookup | None:
        self.lookups += 1
        return await super().lookup(key_id)

    async def touch(self, used: dict[str, datetime]) -> None:
        self.touches.append(dict(used))
        await super().touch(used)


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[tuple[Counting, TenantStore, str]]:
    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    sessions = session_factory(engine)
    store = Counting(sessions)
    store.touches, store.sessions = [], sessions
    try:
        yield store, TenantStore(sessions), database_url
    finally:
        await engine.dispose()


async def _refused(auth: Authenticator, key: str) -> str:
    with pytest.raises(KeyRefused) as refused:
        await auth.authenticate(key)
    return refused.value.reason


async def test_a_rotation_overlaps_then_the_old_secret_stops(
    stores: tuple[Counting, TenantStore, str],
) -> None:
    keys, tenants, _ = stores
    tenant = await tenants.create("acme")
    record, old = await keys.create(tenant, Role.MEMBER)
    rotated, new = await keys.rotate(record.id, timedelta(hours=1))
    assert rotated.previous_until is not None
    assert rotated.public()["previous_secret_until"] is not None
    auth = Authenticator(keys, ttl=0.01)
    assert (await auth.authenticate(old)).key_id == record.id  # inside the window
    assert (await auth.authenticate(new)).key_id == record.id

    # The window ends: the old secret is refused, the new one goes on.
    async with keys.sessions() as session:
        await session.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.id == record.id)
            .values(previous_until=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    await asyncio.sleep(0.02)
    assert await _refused(auth, old) == "wrong_secret"
    assert (await auth.authenticate(new)).key_id == record.id

    # Rotating again inside a window drops the oldest secret for good; no overlap: at once.
    _, third = await keys.rotate(record.id, timedelta(hours=1))
    _, fourth = await keys.rotate(record.id)
    await asyncio.sleep(0.02)
    for gone in (new, third):
        assert await _refused(auth, gone) == "wrong_secret"
    assert (await auth.authenticate(fourth)).key_id == record.id


async def test_revoking_ends_both_secrets(stores: tuple[Counting, TenantStore, str]) -> None:
    keys, tenants, _ = stores
    tenant = await tenants.create("acme")
    record, old = await keys.create(tenant, Role.MEMBER)
    _, new = await keys.rotate(record.id, timedelta(days=1))
    await keys.revoke(record.id)
    auth = Authenticator(keys, ttl=0.01)
    assert await _refused(auth, old) == "revoked"
    assert await _refused(auth, new) == "revoked"


async def test_last_used_is_written_in_batches_off_the_request_path(
    stores: tuple[Counting, TenantStore, str],
) -> None:
    keys, tenants, _ = stores
    tenant = await tenants.create("acme")
    a, key_a = await keys.create(tenant, Role.MEMBER)
    b, key_b = await keys.create(tenant, Role.MEMBER)
    usage = KeyUsage(keys, interval=3600)
    auth = Authenticator(keys, ttl=60, usage=usage)
    for _ in range(500):
        await auth.authenticate(key_a)
        await auth.authenticate(key_b)
    # 1,000 requests: one lookup per key, and not one write.
    assert keys.lookups == 2
    assert keys.touches == []
    assert (await keys.get(a.id)).last_used_at is None
    before = datetime.now(UTC)
    await usage.flush()
    assert len(keys.touches) == 1
    assert sorted(keys.touches[0]) == sorted([a.id, b.id])
    for key_id in (a.id, b.id):
        used = (await keys.get(key_id)).last_used_at
        assert used is not None
        assert before - timedelta(seconds=5) < used <= datetime.now(UTC)
    await usage.flush()  # nothing new: nothing written
    assert len(keys.touches) == 1
    await usage.stop()


async def test_a_revoke_reaches_another_replica_within_its_cache_time(
    stores: tuple[Counting, TenantStore, str],
) -> None:
    keys, tenants, url = stores
    tenant = await tenants.create("acme")
    record, key = await keys.create(tenant, Role.MEMBER)
    other_engine = create_engine(url)
    try:
        # Another replica: its own connection pool and its own cache.
        replica = Authenticator(KeyStore(session_factory(other_engine)), ttl=1.0)
        await replica.authenticate(key)
        revoked = time.monotonic()
        await keys.revoke(record.id)
        while True:
            try:
                await replica.authenticate(key)
            except KeyRefused:
                break
            await asyncio.sleep(0.02)
        took = time.monotonic() - revoked
        print(f"revocation seen by the other replica after {took:.2f} s (auth_cache_s 1.0)")
        assert took <= 1.0 + 0.5
    finally:
        await other_engine.dispose()
