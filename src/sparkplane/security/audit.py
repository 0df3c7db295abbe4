"""The tamper-evident audit log: events queued in memory, chained and written
in the background, verified and exported on demand.

    audit = AuditLog(AuditStore(sessions), fail_closed=settings.audit_fail_closed)
    await audit.start()
    audit.raise_if_closed()          # before serving a request: 503 if entries cannot be written
    audit.record(InferenceEvent(...))  # no I/O: the request path never waits for the database
    await audit.flush()              # when the caller must know the entry is stored
    await audit.stop()               # writes what is left

`record()` only appends to a queue. A writer task wakes when entries arrive,
lets a batch gather for `interval` seconds (less when the batch fills), and
writes it in one transaction (`AuditStore.append`). A failed write is retried
with backoff and the entries are kept, never dropped. While the last write
failed, or more than `max_backlog` entries wait, the log is not `accepting`:
with `fail_closed` (the default) callers refuse new requests; without it they
go on and a warning is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from sparkplane.errors import Unavailable
from sparkplane.security.audit_chain import (
    Entry,
    StoredEntry,
    Verifier,
    VerifyReport,
    clean_data,
    clean_field,
)
from sparkplane.security.audit_events import AuditEvent
from sparkplane.security.audit_store import AuditStore

log = structlog.get_logger("sparkplane.audit")

DEFAULT_MAX_BACKLOG = 10_000


def _now() -> datetime:
    return datetime.now(UTC)


def to_entry(event: AuditEvent, at: datetime) -> Entry:
    """The entry an event becomes: ids fitted to their columns, data cleaned of secrets."""
    try:
        data = clean_data(event.data())
    except Exception as exc:  # noqa: BLE001 - one bad event must not stop the writer
        # Keep the fact that something happened even if its details cannot be stored.
        reason = f"{type(exc).__name__}: {exc}".encode(errors="backslashreplace").decode()
        data = {"unrecordable": reason[:200]}
    return Entry(
        at=at,
        action=clean_field("action", event.action) or "unknown",
        tenant_id=clean_field("tenant_id", event.tenant_id),
        key_id=clean_field("key_id", event.key_id),
        data=data,
    )


class AuditLog:
    """Records events into the hash chain without blocking the caller."""

    def __init__(
        self,
        store: AuditStore,
        *,
        fail_closed: bool = True,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        batch_size: int = 500,
        interval: float = 0.05,
        max_backoff: float = 5.0,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.fail_closed = fail_closed
        self._max_backlog = max_backlog
        self._batch_size = batch_size
        self._interval = interval
        self._max_backoff = max_backoff
        self._clock = clock
        self._pending: deque[tuple[datetime, AuditEvent]] = deque()
        self._recorded = 0  # entries ever queued
        self._written = 0  # entries ever written (always a prefix of the queue)
        self._failing = False
        self._warned_backlog = False
        self._wake = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # -- the request path ---------------------------------------------------

    def record(self, event: AuditEvent) -> None:
        """Queue `event`, stamped now; it is written within about `interval` seconds."""
        self._pending.append((self._clock(), event))
        self._recorded += 1
        if len(self._pending) == 1 or len(self._pending) >= self._batch_size:
            self._wake.set()
        if len(self._pending) > self._max_backlog and not self._warned_backlog:
            self._warned_backlog = True
            log.warning(
                "audit_backlog",
                action="audit.backlog",
                pending=len(self._pending),
                limit=self._max_backlog,
                refusing=self.fail_closed,
            )

    @property
    def healthy(self) -> bool:
        """Whether entries are being written and the backlog is within bounds."""
        return not self._failing and len(self._pending) <= self._max_backlog

    @property
    def accepting(self) -> bool:
        """Whether new requests may be served: always when not fail-closed."""
        return self.healthy or not self.fail_closed

    @property
    def pending(self) -> int:
        """Entries queued and not yet written."""
        return len(self._pending)

    def raise_if_closed(self) -> None:
        """Raise Unavailable (503, `audit_unavailable`) when requests must be refused.

        Call it before serving a request. Do not record the refusals it causes:
        during an outage they would only grow the queue that cannot be written.
        """
        if not self.accepting:
            raise Unavailable(
                "the audit log cannot be written; requests are refused until it can",
                code="audit_unavailable",
            )

    # -- the writer -----------------------------------------------------------

    async def start(self) -> None:
        """Start the background writer."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="audit-writer")

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the writer after writing everything queued (giving up after `timeout`)."""
        try:
            await self.flush(timeout)
        except TimeoutError:
            log.error(
                "audit_unwritten",
                action="audit.stop",
                pending=len(self._pending),
                hint="the database could not be reached; these entries are lost",
            )
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        """Write queued entries in batches until cancelled."""
        while True:
            await self._wake.wait()
            if len(self._pending) < self._batch_size:
                # Let a batch gather: one transaction for many requests.
                await asyncio.sleep(self._interval)
            self._wake.clear()
            await self._drain()

    async def flush(self, timeout: float | None = None) -> None:
        """Return once every entry queued before the call is written.

        Writes them itself (the writer need not run); a failing database is
        retried with backoff until `timeout` (TimeoutError) or forever.
        """
        target = self._recorded
        async with asyncio.timeout(timeout):
            while self._written < target:
                await self._drain(until=target)

    async def _drain(self, until: int | None = None) -> None:
        """Write batches until the queue (or entry number `until`) is written."""
        backoff = 0.05
        while self._pending and (until is None or self._written < until):
            if await self._write_batch():
                backoff = 0.05
            else:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)

    async def _write_batch(self) -> bool:
        async with self._write_lock:
            count = min(len(self._pending), self._batch_size)
            if count == 0:
                return True
            batch = [to_entry(event, at) for at, event in list(self._pending)[:count]]
            try:
                await self.store.append(batch)
            except Exception as exc:  # noqa: BLE001 - any failure: keep the entries, retry
                self._note_failure(exc)
                return False
            for _ in range(count):
                self._pending.popleft()
            self._written += count
            if self._failing:
                log.warning("audit_recovered", action="audit.write", pending=len(self._pending))
            self._failing = False
            if len(self._pending) <= self._max_backlog:
                self._warned_backlog = False
            return True

    def _note_failure(self, exc: Exception) -> None:
        first = not self._failing
        self._failing = True
        if first:
            log.warning(
                "audit_write_failed",
                action="audit.write",
                error=f"{type(exc).__name__}: {exc}"[:500],
                pending=len(self._pending),
                refusing=self.fail_closed,
            )

    # -- reading --------------------------------------------------------------

    async def verify(self, batch: int = 2000, tenant_id: str | None = None) -> VerifyReport:
        """Check the whole chain, or with `tenant_id` that tenant's chain (see `verify`)."""
        if tenant_id is not None:
            return await verify_tenant(self.store, tenant_id, batch)
        return await verify(self.store, batch)

    def export(
        self, since: datetime, until: datetime | None = None, tenant_id: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Entries with `since <= at < until`, oldest first, as JSON-ready dicts
        (with `tenant_id`, that tenant's as its own chain numbers them)."""
        return export(self.store, since, until, tenant_id=tenant_id)


async def verify(store: AuditStore, batch: int = 2000) -> VerifyReport:
    """Read the table in `seq` order, `batch` entries at a time, and check every link and hash.

    Reports the first entry that does not hold: an edited entry fails its hash,
    a deleted one leaves a gap, a moved one fails its link.
    """
    verifier = Verifier()
    async with contextlib.aclosing(store.scan(batch)) as pages:
        async for page in pages:
            if not verifier.feed(page):
                break
            # Hashing is CPU work on the event loop: let other tasks in between pages.
            await asyncio.sleep(0)
    return verifier.report()


async def verify_tenant(store: AuditStore, tenant_id: str, batch: int = 2000) -> VerifyReport:
    """Check one tenant's chain: its entries in `tenant_seq` order, each linked to the one
    before it and matching its hash, reading no other tenant's entries.

    An edited entry fails its hash; a deleted one (or one moved to another tenant)
    leaves a gap in the tenant's numbering; entries re-ordered break links. The
    report's `seq` numbers are the tenant chain's.
    """
    verifier = Verifier()
    async with contextlib.aclosing(store.scan_tenant(tenant_id, batch)) as pages:
        async for page in pages:
            if not verifier.feed(e.in_tenant_chain() for e in page):
                break
            await asyncio.sleep(0)
    return verifier.report()


async def export(
    store: AuditStore,
    since: datetime,
    until: datetime | None = None,
    batch: int = 2000,
    *,
    tenant_id: str | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Entries with `since <= at < until`, oldest first, as JSON-ready dicts (for JSONL).

    With `tenant_id`, only that tenant's entries, numbered and linked as its own
    chain (`tenant_public`), so the export re-checks with the same rule and shows
    nothing of other tenants.
    """
    async for page in store.between(since, until, batch, tenant_id=tenant_id):
        for entry in page:
            yield entry.tenant_public() if tenant_id is not None else entry.public()


__all__ = [
    "AuditLog",
    "StoredEntry",
    "VerifyReport",
    "export",
    "to_entry",
    "verify",
    "verify_tenant",
]
