"""Failed authentications and denied actions on the record, and a brake on guessing.

    guard = AuthGuard(authenticator, audit, failures_per_minute=10)
    principal = await guard.authenticate(key, source="10.0.0.9", path="/v1/models")
    guard.denied(principal, source="10.0.0.9", path="/api/devices", status=403)

Every refused key (401) and refused permission (403) becomes an `auth.failed`
audit entry with the path, the status, why (`missing`, `malformed`,
`unknown_key`, `wrong_secret`, `revoked`, `expired`, `tenant_disabled`,
`forbidden`), the source address and the key's public id when the key was
well formed (never the key itself).

Each source address may present `failures_per_minute` refused keys in a burst, then
once every 60/N seconds (a GCRA bucket per address, in this process). A source
past it is answered 429 `auth_throttled` before the key it presents is even
looked at, unless that key was verified good within the auth cache time, so a
client behind the same address that is already working goes on (a request
with no key at all guesses nothing: it is answered 401, unrecorded). The first
refusal of a throttled period is recorded once (`reason: throttled`); the
rest are not, so a flood cannot grow the log by more than N + 1 entries a
minute per address.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from sparkplane.errors import KeyRefused, RateLimited
from sparkplane.security import keys
from sparkplane.security.audit import AuditLog
from sparkplane.security.audit_events import AuthFailedEvent
from sparkplane.security.auth import Authenticator
from sparkplane.security.principal import Principal

DEFAULT_FAILURES_PER_MINUTE = 10
_MAX_SOURCES = 100_000


class FailureBudget:
    """Per-source GCRA buckets of failures: `per_minute` in a burst, refilled evenly."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 60.0 / per_minute
        self._tolerance = 60.0 - self._interval  # a burst of `per_minute` conforms
        self._clock = clock
        self._tat: dict[str, float] = {}  # source -> when its bucket is full again

    def wait(self, source: str) -> float:
        """Seconds until `source` may fail again; 0 when it may now."""
        tat = self._tat.get(source)
        if tat is None:
            return 0.0
        return max(0.0, tat - self._clock() - self._tolerance)

    def failed(self, source: str) -> None:
        """Count one failure of `source`."""
        now = self._clock()
        if len(self._tat) >= _MAX_SOURCES:
            # Forget sources whose buckets are full again: they owe nothing.
            self._tat = {s: t for s, t in self._tat.items() if t > now}
        self._tat[source] = max(self._tat.get(source, now), now) + self._interval


class AuthGuard:
    """Authenticates through the Authenticator, auditing and braking failures."""

    def __init__(
        self,
        authenticator: Authenticator,
        audit: AuditLog,
        failures_per_minute: int = DEFAULT_FAILURES_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.authenticator = authenticator
        self._audit = audit
        self._budget = FailureBudget(failures_per_minute, clock)
        self._throttled: set[str] = set()  # sources whose throttling is already recorded

    async def authenticate(self, key: str | None, *, source: str, path: str) -> Principal:
        """The caller behind `key`; KeyRefused (401), or RateLimited (429
        `auth_throttled`) for a source over its failure budget."""
        wait = self._budget.wait(source)
        if wait > 0 and key and not self.authenticator.trusted(key):
            self._refuse_throttled(key, source, path, wait)
        if wait <= 0:
            self._throttled.discard(source)
        try:
            return await self.authenticator.authenticate(key)
        except KeyRefused as exc:
            if wait <= 0:
                # Over the budget only a keyless request gets here: it guesses nothing,
                # so it is answered 401, but the log has this source's note already.
                self._budget.failed(source)
                self._record(path, 401, exc.reason, key, source)
            raise

    def denied(self, principal: Principal, *, source: str, path: str, status: int = 403) -> None:
        """Record a permission refused to a valid key. Not counted against its source:
        the key is known and accountable (and its own limits bound how often). In the
        fleet chain only, like every `auth.failed`: a tenant's own chain (and what its
        auditor sees) does not change because someone looked where they may not."""
        self._audit.record(
            AuthFailedEvent(
                path=path[:200],
                status=status,
                reason="forbidden",
                key_id=principal.key_id or None,
                client=source,
            )
        )

    def _refuse_throttled(self, key: str | None, source: str, path: str, wait: float) -> None:
        if source not in self._throttled:
            self._throttled.add(source)
            self._record(path, 429, "throttled", key, source)
        raise RateLimited(
            f"too many failed authentications from this address; retry after {math.ceil(wait)} s",
            retry_after=wait,
            code="auth_throttled",
        )

    def _record(self, path: str, status: int, reason: str, key: str | None, source: str) -> None:
        self._audit.record(
            AuthFailedEvent(
                path=path[:200],
                status=status,
                reason=reason,
                key_id=keys.key_id_of(key) if key else None,
                client=source,
            )
        )
