"""Authenticating API keys without a database trip per request.

Verified keys are cached for `ttl` seconds (default 2): a revoked or expired
key, or a changed tenant policy, takes effect in every process sharing the
database within that time. Each accepted request notes its key's use in
`KeyUsage` (a dict write; the database is written in batches). Unknown keys
are cached as refusals just as briefly, so a flood of bad keys costs one query
per key per period. A rotated key's old secret passes until its overlap ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sparkplane.errors import KeyRefused
from sparkplane.security import keys
from sparkplane.security.key_usage import KeyUsage
from sparkplane.security.principal import Principal
from sparkplane.security.store import KeyLookup, KeyStore

_MAX_CACHED = 10_000


class Authenticator:
    """Turns a presented key into a Principal, or refuses it."""

    def __init__(
        self,
        store: KeyStore,
        ttl: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        usage: KeyUsage | None = None,
    ) -> None:
        self._store = store
        self._usage = usage
        self._ttl = ttl
        self._clock = clock
        # key -> (good until, the caller or why it was refused)
        self._cache: dict[str, tuple[float, Principal | str]] = {}
        self._pending: dict[str, asyncio.Future[Principal | str]] = {}

    async def authenticate(self, key: str | None) -> Principal:
        """The caller behind `key`; KeyRefused (401) if missing, unknown, revoked or expired.

        The refusal's `reason` says which for the audit log; its message does not.
        """
        if not key:
            raise KeyRefused(
                "an API key is required (Authorization: Bearer sp-...)", reason="missing"
            )
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self._clock():
            found = cached[1]
        else:
            found = await self._verify_once(key)
        if isinstance(found, str):
            raise KeyRefused("the API key is not valid (unknown, revoked or expired)", reason=found)
        if self._usage is not None:
            self._usage.note(found.key_id)
        return found

    def trusted(self, key: str | None) -> bool:
        """Whether `key` was verified good within the cache time (no I/O)."""
        if not key:
            return False
        cached = self._cache.get(key)
        return cached is not None and cached[0] > self._clock() and not isinstance(cached[1], str)

    async def _verify_once(self, key: str) -> Principal | str:
        """Verify against the database, one lookup per key however many requests
        are waiting (when a busy key's cache entry expires, all its requests at
        that moment share one query instead of each making its own)."""
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        pending = asyncio.ensure_future(self._verify(key))
        self._pending[key] = pending
        try:
            found = await asyncio.shield(pending)
        finally:
            self._pending.pop(key, None)
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (self._clock() + self._ttl, found)
        return found

    async def _verify(self, key: str) -> Principal | str:
        key_id = keys.key_id_of(key)
        if key_id is None:
            return "malformed"
        found = await self._store.lookup(key_id)
        if found is None:
            return "unknown_key"
        record, tenant, now = found.record, found.tenant, datetime.now(UTC)
        if not keys.matches(key, found.digest) and not _previous_matches(key, found, now):
            return "wrong_secret"
        if record.revoked_at is not None:
            return "revoked"
        if not record.usable(now):
            return "expired"
        if tenant.disabled:
            return "tenant_disabled"
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


def _previous_matches(key: str, found: KeyLookup, now: datetime) -> bool:
    """Whether `key` is the secret a rotation replaced, inside its overlap window."""
    until = found.record.previous_until
    return (
        found.previous_digest is not None
        and until is not None
        and until > now
        and keys.matches(key, found.previous_digest)
    )
