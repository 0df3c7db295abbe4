"""Limits kept in Redis so that several replicas share them exactly.

Each admission is one Lua script (atomic in Redis): it checks every counter
of the caller's key and tenant and writes only if all pass, so two replicas
can never both take the last unit. Keys, under `prefix` (default
`sparkplane:limits`), all expire:

    {prefix}:r:{scope}               requests bucket (GCRA arrival time)      TTL: until full
    {prefix}:t:{scope}               tokens bucket                            TTL: until full
    {prefix}:c:{scope}               concurrency leases (sorted set)          TTL: last lease
    {prefix}:m:{YYYY-MM}:{unit}:{scope}  month total, unit tokens|images      TTL: month + 7 days

A scope is `k:<key id>` or `t:<tenant id>`. Times come from the replica's
clock (replicas are expected to run NTP); a concurrency slot is a lease so a
replica that dies holding slots frees them after `lease_s`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sparkplane.errors import Unavailable
from sparkplane.security.limits import (
    CONCURRENCY_RETRY_S,
    WINDOW_S,
    Kind,
    Scope,
    Ticket,
    has_limits,
    interval_of,
    month_of,
    new_ticket_id,
    refusal,
    scope_totals,
    scopes_of,
    too_large,
)
from sparkplane.security.principal import Principal
from sparkplane.usage.store import UsageStore

log = structlog.get_logger("sparkplane.limits")

MONTH_GRACE_S = 7 * 86_400  # month totals outlive their month (late settles, inspection)

# ARGV: now, ticket id, lease seconds, month ttl seconds, window, seconds left in
# the month, then per KEY
# three values: kind (g bucket | c concurrency | m month total), limit, cost.
# Returns {1} when admitted, else {0, index of the longest wait, wait as text}.
_ADMIT = """
local now, id, lease, mttl, window, left = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]),
  tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local worst, worst_i, new = 0, 0, {}
for i = 1, #KEYS do
  local kind, limit, cost = ARGV[3 * i + 4], tonumber(ARGV[3 * i + 5]), tonumber(ARGV[3 * i + 6])
  local wait = 0
  if kind == 'g' then
    local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
    if tat < now then tat = now end
    new[i] = tat + cost * limit
    wait = new[i] - now - window
  elseif kind == 'c' then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    if redis.call('ZCARD', KEYS[i]) >= limit then wait = cost end
  elseif kind == 'm' and limit >= 0 and cost > 0 then
    local used = tonumber(redis.call('GET', KEYS[i]) or '0')
    if used + cost > limit then wait = left end
  end
  if wait > 1e-6 and wait > worst then worst, worst_i = wait, i end
end
if worst_i > 0 then return {0, worst_i, string.format('%.6f', worst)} end
for i = 1, #KEYS do
  local kind, cost = ARGV[3 * i + 4], tonumber(ARGV[3 * i + 6])
  if kind == 'g' then
    redis.call('SET', KEYS[i], string.format('%.6f', new[i]),
      'PX', math.ceil((new[i] - now) * 1000) + 1000)
  elseif kind == 'c' then
    redis.call('ZADD', KEYS[i], now + lease, id)
    redis.call('EXPIRE', KEYS[i], math.ceil(lease))
  elseif cost > 0 then
    redis.call('INCRBY', KEYS[i], cost)
    redis.call('EXPIRE', KEYS[i], math.ceil(mttl))
  end
end
return {1}
"""

# ARGV: now, ticket id, month ttl, then per KEY two values: kind, amount.
# g: move the bucket by `amount` seconds (never below empty); c: drop the lease;
# m: add `amount` to the month total.
_SETTLE = """
local now, id, mttl = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
for i = 1, #KEYS do
  local kind, amount = ARGV[2 * i + 2], tonumber(ARGV[2 * i + 3])
  if kind == 'g' then
    local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
    if tat < now then tat = now end
    tat = tat + amount
    if tat <= now then redis.call('DEL', KEYS[i]) else
      redis.call('SET', KEYS[i], string.format('%.6f', tat),
        'PX', math.ceil((tat - now) * 1000) + 1000)
    end
  elseif kind == 'c' then
    redis.call('ZREM', KEYS[i], id)
  elseif amount ~= 0 then
    redis.call('INCRBY', KEYS[i], amount)
    redis.call('EXPIRE', KEYS[i], math.ceil(mttl))
  end
end
return 1
"""


class RedisLimiter:
    """The Limiter contract over Redis (`redis.asyncio`), shared by every replica."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "sparkplane:limits",
        lease_s: float = 900.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._lease = lease_s
        self._clock = clock
        self._admit = redis.register_script(_ADMIT)
        self._settle = redis.register_script(_SETTLE)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisLimiter:
        """A limiter on the Redis at `url` (redis://host:port/db)."""
        return cls(Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0), **kwargs)

    def _month_key(self, month: str, unit: str, scope_id: str) -> str:
        return f"{self._prefix}:m:{month}:{unit}:{scope_id}"

    async def admit(self, principal: Principal, *, tokens: int, images: int = 0) -> Ticket:
        """Count the request in Redis, or raise RateLimited (nothing counted)."""
        scopes = scopes_of(principal)
        now = self._clock()
        month, month_end = month_of(now)
        if not any(has_limits(s.limits) for s in scopes):
            return Ticket("", month, 0, 0, scopes, counted=False)
        big = too_large(scopes, tokens, images)
        if big is not None:
            raise big
        keys: list[str] = []
        args: list[Any] = []
        what: list[tuple[Scope, Kind, int]] = []
        slots: list[str] = []
        for s in scopes:
            lim = s.limits
            for kind, letter, limit, cost in (
                (Kind.REQUESTS, "r", lim.requests_per_minute, 1),
                (Kind.TOKENS, "t", lim.tokens_per_minute, tokens),
            ):
                if limit is not None:
                    keys.append(f"{self._prefix}:{letter}:{s.id}")
                    args += ["g", interval_of(limit), cost]
                    what.append((s, kind, limit))
            if lim.concurrent is not None:
                keys.append(f"{self._prefix}:c:{s.id}")
                args += ["c", lim.concurrent, CONCURRENCY_RETRY_S]
                what.append((s, Kind.CONCURRENT, lim.concurrent))
                slots.append(s.id)
            for kind, unit, quota, cost in (
                (Kind.MONTHLY_TOKENS, "tokens", lim.monthly_tokens, tokens),
                (Kind.MONTHLY_IMAGES, "images", lim.monthly_images, images),
            ):
                keys.append(self._month_key(month, unit, s.id))
                args += ["m", -1 if quota is None else quota, cost]
                what.append((s, kind, -1 if quota is None else quota))
        ticket_id = new_ticket_id() if slots else ""
        mttl = month_end - now + MONTH_GRACE_S
        try:
            result = await self._admit(
                keys,
                [now, ticket_id, self._lease, mttl, WINDOW_S, month_end - now, *args],
            )
        except RedisError as exc:
            log.error("limits_unreachable", action="limits.admit", error=str(exc)[:200])
            raise Unavailable(
                "the rate-limit counters are unreachable; retry shortly", code="limits_unavailable"
            ) from exc
        if int(result[0]) != 1:
            scope, kind, limit = what[int(result[1]) - 1]
            raise refusal(scope, kind, limit, float(result[2]))
        return Ticket(ticket_id, month, tokens, images, scopes, counted=True, slots=tuple(slots))

    async def settle(self, ticket: Ticket, *, tokens: int, images: int) -> None:
        """Give the slot back and replace the estimate by the real counts (one round trip)."""
        if ticket.settled:
            return
        ticket.settled = True
        delta_tokens = tokens - ticket.tokens if ticket.counted else tokens
        delta_images = images - ticket.images if ticket.counted else images
        keys: list[str] = []
        args: list[Any] = []
        for s in ticket.scopes:
            limit = s.limits.tokens_per_minute
            if ticket.counted and limit and delta_tokens:
                keys.append(f"{self._prefix}:t:{s.id}")
                args += ["g", delta_tokens * WINDOW_S / limit]
            if s.id in ticket.slots:
                keys.append(f"{self._prefix}:c:{s.id}")
                args += ["c", 0]
            for unit, delta in (("tokens", delta_tokens), ("images", delta_images)):
                if delta:
                    keys.append(self._month_key(ticket.month, unit, s.id))
                    args += ["m", delta]
        if not keys:
            return
        now = self._clock()
        _, month_end = month_of(now)
        mttl = max(month_end - now, 0) + MONTH_GRACE_S
        try:
            await self._settle(keys, [now, ticket.id, mttl, *args])
        except RedisError as exc:
            # The answer is already on its way: log, and let the lease expire the slot.
            log.error("limits_settle_failed", action="limits.settle", error=str(exc)[:200])

    async def seed_month(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Load this month's totals from usage_records into Redis where none are kept yet.

        A counter that exists was kept by a running replica (it also holds
        estimates in flight) and is left alone; a missing one (first start,
        or a Redis that lost its data) is set from the database.
        """
        now = self._clock()
        month, month_end = month_of(now)
        totals = scope_totals(await UsageStore(sessions).month_totals(month))
        ttl = math.ceil(month_end - now + MONTH_GRACE_S)
        async with self._redis.pipeline(transaction=False) as pipe:
            for scope_id, (tokens, images) in totals.items():
                pipe.set(self._month_key(month, "tokens", scope_id), tokens, nx=True, ex=ttl)
                pipe.set(self._month_key(month, "images", scope_id), images, nx=True, ex=ttl)
            await pipe.execute()

    async def month_total(self, scope_id: str) -> tuple[int, int]:
        """This month's (tokens, images) for a scope id, as Redis holds them."""
        month, _ = month_of(self._clock())
        tokens, images = await self._redis.mget(
            self._month_key(month, "tokens", scope_id), self._month_key(month, "images", scope_id)
        )
        return int(tokens or 0), int(images or 0)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()
