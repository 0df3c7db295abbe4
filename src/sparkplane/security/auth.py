"""Authenticating API keys without a database trip per request.

Verified keys are cached for `ttl` seconds (default 2): a revoked or expired
key, or a changed tenant policy, takes effect in every process sharing the
database within that time. Unknown keys are cached as refusals just as
briefly, so a flood of bad keys costs one query per key per period.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sparkplane.errors import Unauthorized
from sparkplane.security import keys
from sparkplane.security.principal import Principal
from sparkplane.security.store import KeyStore

_MAX_CACHED = 10_000


class Authenticator:
    """Turns a presented key into a Principal, or refuses it."""

    def __init__(
        self,
        store: KeyStore,
        ttl: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._pending: dict[str, asyncio.Future[Principal | None]] = {}

    async def authenticate(self, key: str | None) -> Principal:
        """The caller behind `key`; Unauthorized if missing, unknown, revoked or expired."""
        if not key:
            raise Unauthorized("an API key is required (Authorization: Bearer sp-...)")
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self._clock():
            principal = cached[1]
        else:
            principal = await self._verify_once(key)
        if principal is None:
            raise Unauthorized("the API key is not valid (unknown, revoked or expired)")
        return principal

    async def _verify_once(self, key: str) -> Principal | None:
        """Verify against the database, one lookup per key however many requests
        are waiting (when a busy key's cache entry expires, all its requests at
        that moment share one query instead of each making its own)."""
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        pending = asyncio.ensure_future(self._verify(key))
        self._pending[key] = pending
        try:
            principal = await asyncio.shield(pending)
        finally:
            self._pending.pop(key, None)
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (self._clock() + self._ttl, principal)
        return principal

    async def _verify(self, key: str) -> Principal | None:
        key_id = keys.key_id_of(key)
        if key_id is None:
            return None
        found = await self._store.lookup(key_id)
        if found is None:
            return None
        record, stored, tenant = found
        if not keys.matches(key, stored):
            return None
        if not record.usable(datetime.now(UTC)) or tenant.disabled:
            return None
        return Principal(
            key_id=record.id,
            tenant_id=tenant.id,
            tenant=tenant.name,
            role=record.role,
            policy=tenant.policy,
            key_limits=record.limits,
            tenant_limits=tenant.limits,
            scope=record.scope,
        )

    def forget(self) -> None:
        """Drop every cached decision (after a local revoke, so it applies at once here)."""
        self._cache.clear()
