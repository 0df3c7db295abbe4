"""Rate limits and quotas per API key and per tenant.

    admit(principal, tokens=estimate)  -> Ticket   (or RateLimited, counting nothing)
    settle(ticket, tokens=real, images=real)       (slot back, estimate replaced by real)

Per-minute limits (requests, tokens) are token buckets kept as one number
each, the "theoretical arrival time" of GCRA: a bucket holds a minute's
allowance, refills continuously, and tells exactly when a refused request
would pass. Concurrency is a count of held slots; monthly quotas are totals
per calendar month (UTC) seeded from usage_records at start. docs/security.md
explains the choices. `LocalLimiter` keeps the counters in this process;
`limits_redis.RedisLimiter` keeps them in Redis so replicas share them.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import NamedTuple, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sparkplane.errors import RateLimited
from sparkplane.security.principal import Principal
from sparkplane.security.tenancy import Limits
from sparkplane.usage.store import MonthTotals, UsageStore

WINDOW_S = 60.0  # the "per minute" of requests_per_minute and tokens_per_minute
CONCURRENCY_RETRY_S = 1.0  # nobody knows when a slot frees; ask the client to try soon
_SLACK = 1e-6  # float rounding: 7 requests of 60/7 s each still fit in 60 s


class Kind(StrEnum):
    """The limits a key or tenant may carry, as messages name them."""

    REQUESTS = "requests per minute"
    TOKENS = "tokens per minute"
    CONCURRENT = "concurrent requests"
    MONTHLY_TOKENS = "monthly tokens"
    MONTHLY_IMAGES = "monthly images"


class Scope(NamedTuple):
    """One holder of limits: a key (`k:<id>`) or a tenant (`t:<id>`)."""

    id: str
    label: str  # how a refusal names it: "API key" or "tenant 'acme'"
    limits: Limits


@dataclass(slots=True)
class Ticket:
    """An admitted request: what was counted for it, to be settled exactly once."""

    id: str  # names its concurrency lease in Redis; "" in process
    month: str  # the month ("2026-11") its estimate was counted in
    tokens: int  # estimate counted (0 when nothing was counted at admission)
    images: int
    scopes: tuple[Scope, ...]  # monthly totals kept for these
    counted: bool  # the estimate went into the monthly totals and token buckets
    slots: tuple[str, ...] = ()  # scope ids holding a concurrency slot
    settled: bool = False


class Limiter(Protocol):
    """Admission against limits; both implementations keep this contract.

    `admit` checks every limit of the caller's key and tenant and, only if all
    pass, counts the request (one request, the token and image estimate, one
    concurrency slot) and returns a Ticket. Otherwise it raises `RateLimited`
    with the seconds until the request could pass, counting nothing.
    `settle` must follow every ticket (also on failure, with what was really
    used): it frees the slot and replaces the estimate by the real counts.
    A caller with no limits costs no I/O at admission.
    """

    async def admit(self, principal: Principal, *, tokens: int, images: int = 0) -> Ticket:
        """Count the request or raise RateLimited."""
        ...

    async def settle(self, ticket: Ticket, *, tokens: int, images: int) -> None:
        """Release the ticket's slot; real counts replace the estimate. Never raises."""
        ...

    async def seed_month(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Load this month's totals per tenant and key from usage_records."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


# -- shared pieces -------------------------------------------------------------


def has_limits(limits: Limits) -> bool:
    """Whether any limit is set."""
    return (
        limits.requests_per_minute is not None
        or limits.tokens_per_minute is not None
        or limits.concurrent is not None
        or limits.monthly_tokens is not None
        or limits.monthly_images is not None
    )


def scopes_of(principal: Principal) -> tuple[Scope, ...]:
    """The key and the tenant of a caller (a keyless caller has none)."""
    scopes: list[Scope] = []
    if principal.key_id:
        scopes.append(Scope(f"k:{principal.key_id}", "API key", principal.key_limits))
    if principal.tenant_id:
        label = f"tenant '{principal.tenant}'"
        scopes.append(Scope(f"t:{principal.tenant_id}", label, principal.tenant_limits))
    return tuple(scopes)


def month_of(now: float) -> tuple[str, float]:
    """The calendar month (UTC) of `now` and the timestamp when it ends."""
    day = datetime.fromtimestamp(now, UTC)
    nxt = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=UTC)
    return f"{day.year:04d}-{day.month:02d}", nxt.timestamp()


def new_ticket_id() -> str:
    """A unique id for a ticket (names its concurrency lease in Redis)."""
    return uuid.uuid4().hex


def interval_of(limit: int) -> float:
    """Seconds one unit takes to refill in a bucket of `limit` a minute (0: never fits)."""
    return WINDOW_S / limit if limit else 2 * WINDOW_S


def bucket_wait(tat: float, now: float, cost: float, interval: float) -> tuple[float, float]:
    """GCRA: the bucket's next arrival time after `cost`, and the wait (0: it fits now)."""
    new = max(tat, now) + cost * interval
    wait = new - now - WINDOW_S
    return new, wait if wait > _SLACK else 0.0


def refusal(scope: Scope, kind: Kind, limit: int, wait: float) -> RateLimited:
    """The 429 for one exhausted limit; names the limit, never a secret."""
    quota = kind in (Kind.MONTHLY_TOKENS, Kind.MONTHLY_IMAGES)
    what = "quota" if quota else "limit"
    message = f"{kind.value} {what} of the {scope.label} reached (limit {limit})"
    if quota:
        message += "; it renews at the start of next month (UTC)"
    else:
        message += f"; retry after {max(1, math.ceil(wait))} s"
    code = "insufficient_quota" if quota else "rate_limit_exceeded"
    return RateLimited(message, retry_after=wait, code=code)


def too_large(scopes: tuple[Scope, ...], tokens: int, images: int) -> RateLimited | None:
    """A request that could never pass a per-minute or monthly limit on its own."""
    for scope in scopes:
        limits = scope.limits
        for kind, limit, cost in (
            (Kind.TOKENS, limits.tokens_per_minute, tokens),
            (Kind.MONTHLY_TOKENS, limits.monthly_tokens, tokens),
            (Kind.MONTHLY_IMAGES, limits.monthly_images, images),
        ):
            if limit is not None and cost > limit:
                return RateLimited(
                    f"this request ({cost} estimated) is larger than the {kind.value} "
                    f"limit of the {scope.label} ({limit}); make it smaller",
                    retry_after=WINDOW_S,
                    code="request_too_large",
                )
    return None


# -- in process ---------------------------------------------------------------

_PRUNE_FLOOR = 10_000


class LocalLimiter:
    """Counters in this process: exact for one replica, lost on restart but the
    monthly totals, which `seed_month` reloads from usage_records."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._tat: dict[str, float] = {}  # "r:<scope>" / "t:<scope>" -> bucket's arrival time
        self._held: dict[str, int] = {}  # scope -> concurrency slots held
        self._month, self._month_end = month_of(clock())
        self._totals: dict[str, list[int]] = {}  # scope -> [tokens, images] this month
        self._prune_at = _PRUNE_FLOOR

    async def admit(self, principal: Principal, *, tokens: int, images: int = 0) -> Ticket:
        """Count the request against the key's and tenant's limits, or raise RateLimited."""
        now = self._clock()
        month = self._roll(now)
        scopes = scopes_of(principal)
        if not any(has_limits(s.limits) for s in scopes):
            return Ticket("", month, 0, 0, scopes, counted=False)
        big = too_large(scopes, tokens, images)
        if big is not None:
            raise big
        worst: RateLimited | None = None
        buckets: list[tuple[str, float]] = []
        for scope in scopes:
            for failed in self._check(scope, now, tokens, images, buckets):
                if worst is None or failed.retry_after > worst.retry_after:
                    worst = failed
        if worst is not None:
            raise worst
        # Everything passed: count it all (no await since the checks, so atomic).
        for name, tat in buckets:
            self._tat[name] = tat
        slots = tuple(s.id for s in scopes if s.limits.concurrent is not None)
        for sid in slots:
            self._held[sid] = self._held.get(sid, 0) + 1
        self._add(scopes, tokens, images)
        if len(self._tat) > self._prune_at:
            self._prune(now)
        return Ticket("", month, tokens, images, scopes, counted=True, slots=slots)

    def _check(
        self,
        scope: Scope,
        now: float,
        tokens: int,
        images: int,
        buckets: list[tuple[str, float]],
    ) -> list[RateLimited]:
        failed: list[RateLimited] = []
        limits = scope.limits
        for prefix, kind, limit, cost in (
            ("r:", Kind.REQUESTS, limits.requests_per_minute, 1),
            ("t:", Kind.TOKENS, limits.tokens_per_minute, tokens),
        ):
            if limit is None:
                continue
            name = prefix + scope.id
            new, wait = bucket_wait(self._tat.get(name, now), now, cost, interval_of(limit))
            if wait:
                failed.append(refusal(scope, kind, limit, wait))
            else:
                buckets.append((name, new))
        if limits.concurrent is not None and self._held.get(scope.id, 0) >= limits.concurrent:
            failed.append(refusal(scope, Kind.CONCURRENT, limits.concurrent, CONCURRENCY_RETRY_S))
        used = self._totals.get(scope.id) or [0, 0]
        for kind, quota, index, cost in (
            (Kind.MONTHLY_TOKENS, limits.monthly_tokens, 0, tokens),
            (Kind.MONTHLY_IMAGES, limits.monthly_images, 1, images),
        ):
            if quota is not None and cost and used[index] + cost > quota:
                wait = self._month_end - now
                failed.append(refusal(scope, kind, quota, wait))
        return failed

    async def settle(self, ticket: Ticket, *, tokens: int, images: int) -> None:
        """Give the slot back and replace the estimate by the real counts."""
        if ticket.settled:
            return
        ticket.settled = True
        for sid in ticket.slots:
            held = self._held.get(sid, 0) - 1
            if held > 0:
                self._held[sid] = held
            else:
                self._held.pop(sid, None)
        now = self._clock()
        month = self._roll(now)
        delta_tokens = tokens - ticket.tokens if ticket.counted else tokens
        delta_images = images - ticket.images if ticket.counted else images
        if ticket.counted:
            self._adjust_buckets(ticket, now, delta_tokens)
        if ticket.month == month:
            self._add(ticket.scopes, delta_tokens, delta_images)

    def _adjust_buckets(self, ticket: Ticket, now: float, delta: int) -> None:
        for scope in ticket.scopes:
            limit = scope.limits.tokens_per_minute
            name = "t:" + scope.id
            if not limit:
                continue
            tat = max(self._tat.get(name, now), now) + delta * WINDOW_S / limit
            if tat > now:
                self._tat[name] = tat
            else:
                self._tat.pop(name, None)  # a full bucket is the same as no entry

    async def seed_month(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Replace this month's totals by the sums in usage_records (call at start)."""
        month = self._roll(self._clock())
        totals = await UsageStore(sessions).month_totals(month)
        self._totals = {sid: [t, i] for sid, (t, i) in scope_totals(totals).items()}

    async def close(self) -> None:
        """Nothing to release."""

    def month_total(self, scope_id: str) -> tuple[int, int]:
        """This month's (tokens, images) for a scope id (`k:<id>` or `t:<id>`)."""
        tokens, images = self._totals.get(scope_id) or [0, 0]
        return tokens, images

    def _add(self, scopes: tuple[Scope, ...], tokens: int, images: int) -> None:
        if not (tokens or images):
            return
        for scope in scopes:
            total = self._totals.get(scope.id)
            if total is None:
                self._totals[scope.id] = [tokens, images]
            else:
                total[0] += tokens
                total[1] += images

    def _roll(self, now: float) -> str:
        if now >= self._month_end:
            self._month, self._month_end = month_of(now)
            self._totals = {}
        return self._month

    def _prune(self, now: float) -> None:
        # Buckets whose arrival time passed are full: dropping them changes nothing.
        self._tat = {k: v for k, v in self._tat.items() if v > now}
        self._prune_at = max(_PRUNE_FLOOR, 2 * len(self._tat))


def scope_totals(totals: MonthTotals) -> dict[str, tuple[int, int]]:
    """Month totals by scope id, as the limiters key them."""
    out = {f"t:{tid}": v for tid, v in totals.by_tenant.items()}
    out.update({f"k:{kid}": v for kid, v in totals.by_key.items()})
    return out
