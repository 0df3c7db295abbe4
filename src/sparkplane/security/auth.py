"""Authenticating API keys without a database trip per request.

Verified keys are cached for `ttl` seconds (default 2): a revoked or expired
key, or a changed tenant policy, takes effect in every process sharing the
database within that time. Unknown keys are cached as refusals just as
briefly, so a flood of bad keys costs one query per key per period.
"""

from __future__ import annotations

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

    async def authenticate(self, key: str | None) -> Principal:
        """The caller behind `key`; Unauthorized if missing, unknown, revoked or expired."""
        if not key:
            raise Unauthorized("an API key is required (Authorization: Bearer sp-...)")
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            principal = await self._verify(key)
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[key] = (now + self._ttl, principal)
        if principal is None:
            raise Unauthorized("the API key is not valid (unknown, revoked or expired)")
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
        )

    def forget(self) -> None:
        """Drop every cached decision (after a local revoke, so it applies at once here)."""
        self._cache.clear()
