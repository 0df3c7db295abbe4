"""The tamper-evident audit log: events queued in memory, journaled to the local
disk, chained and written to the database in the background, verified and
exported on demand.

    audit = AuditLog(AuditStore(sessions), journal=Journal(home / "audit-journal"))
    await audit.start()                  # replays what an earlier run left in the journal
    audit.raise_if_closed()              # before serving a request: 503 if entries cannot be kept
    ticket = audit.record(InferenceEvent(...))   # no I/O: queued, stamped, given an id
    await audit.durable(ticket)          # before the answer leaves: journaled or stored
    await audit.flush()                  # when the caller must know the entry is in the database
    await audit.stop()                   # writes what is left; the journal keeps the rest

Two background tasks take entries from the queue in order. The journal task
appends them to the write-ahead journal (`audit_journal.py`) and fsyncs, one
fsync for everything that arrived meanwhile; an entry is *durable* once it is
there or in the database. The writer lets a batch gather for `interval`
seconds and stores it in one transaction (`AuditStore.append`); a failed write
is retried with backoff, and entries are never dropped. Each entry carries an
id the table stores once, so a batch retried after a lost acknowledgement, or
replayed from the journal after a restart, makes no double.

The log is not `accepting` (with `fail_closed`, the default, callers refuse
new requests) while neither the database nor the journal can be written, or
while more than `max_backlog` entries wait unjournaled (`max_journaled` in all).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import uuid
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
from sparkplane.security.audit_journal import Journal, JournalBusy
from sparkplane.security.audit_store import AuditStore

log = structlog.get_logger("sparkplane.audit")

DEFAULT_MAX_BACKLOG = 10_000
DEFAULT_MAX_JOURNALED = 200_000
DEFAULT_DURABLE_TIMEOUT = 5.0
# While the journal fails, try it again this often (the database carries the entries).
_JOURNAL_RETRY_S = 1.0


def _now() -> datetime:
    return datetime.now(UTC)


def to_entry(event: AuditEvent, at: datetime, entry_id: str | None = None) -> Entry:
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
        entry_id=entry_id,
    )


def audit_unavailable() -> Unavailable:
    """The refusal while entries cannot be kept (503 `audit_unavailable`)."""
    return Unavailable(
        "the audit log cannot be written; requests are refused until it can",
        code="audit_unavailable",
    )


class AuditLog:
    """Records events into the hash chain without blocking the caller on the database."""

    def __init__(
        self,
        store: AuditStore,
        *,
        journal: Journal | None = None,
        fail_closed: bool = True,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        max_journaled: int = DEFAULT_MAX_JOURNALED,
        batch_size: int = 500,
        interval: float = 0.05,
        max_backoff: float = 5.0,
        durable_timeout: float = DEFAULT_DURABLE_TIMEOUT,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.journal = journal
        self.fail_closed = fail_closed
        self._max_backlog = max_backlog
        self._max_journaled = max_journaled
        self._batch_size = batch_size
        self._interval = interval
        self._max_backoff = max_backoff
        self._durable_timeout = durable_timeout
        self._clock = clock
        # Entries not yet in the database, in order; the first is entry number `_written`.
        self._pending: deque[Entry] = deque()
        self._recorded = 0  # entries ever queued (replayed ones first)
        self._written = 0  # entries ever stored (always a prefix of the queue)
        self._journaled = 0  # every entry before this number is journaled or stored
        self._failing = False
        self._journal_failing = False
        self._journal_retry_at = 0.0
        self._warned_backlog = False
        self._wake = asyncio.Event()
        self._journal_wake = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._journal_lock = asyncio.Lock()
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._waiter_ids = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self._journal_task: asyncio.Task[None] | None = None

    # -- the request path ---------------------------------------------------

    def record(self, event: AuditEvent) -> int:
        """Queue `event`, stamped now; returns its ticket for `durable()`.

        It is journaled within about an fsync and stored within about `interval`.
        """
        # An event may name itself (a job: one entry per job however often reported).
        entry_id = getattr(event, "entry_id", None) or uuid.uuid4().hex
        self._pending.append(to_entry(event, self._clock(), entry_id))
        self._recorded += 1
        if self.journal is not None:
            self._journal_wake.set()
        if len(self._pending) == 1 or len(self._pending) >= self._batch_size:
            self._wake.set()
        if self._over_backlog() and not self._warned_backlog:
            self._warned_backlog = True
            log.warning(
                "audit_backlog",
                action="audit.backlog",
                pending=len(self._pending),
                unjournaled=self._unjournaled,
                limit=self._max_backlog,
                refusing=self.fail_closed,
            )
        return self._recorded

    async def durable(self, ticket: int) -> None:
        """Return once the entry `ticket` (and every one before it) is journaled or stored.

        Unavailable (503 `audit_unavailable`) at once when neither the journal nor
        the database can be written, or after `durable_timeout` seconds.
        """
        if ticket <= self._durable_mark:
            return
        if not self._keepable:
            raise audit_unavailable()
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (ticket, next(self._waiter_ids), future))
        try:
            async with asyncio.timeout(self._durable_timeout):
                await future
        except TimeoutError:
            raise audit_unavailable() from None

    async def settled(self) -> None:
        """`durable()` for everything recorded so far (the admin routes' answer waits here)."""
        await self.durable(self._recorded)

    @property
    def healthy(self) -> bool:
        """Whether entries can be kept (database or journal) and the backlog is within bounds."""
        return self._keepable and not self._over_backlog()

    @property
    def accepting(self) -> bool:
        """Whether new requests may be served: always when not fail-closed."""
        return self.healthy or not self.fail_closed

    @property
    def pending(self) -> int:
        """Entries queued and not yet in the database."""
        return len(self._pending)

    def raise_if_closed(self) -> None:
        """Raise Unavailable (503, `audit_unavailable`) when requests must be refused.

        Call it before serving a request. Do not record the refusals it causes:
        during an outage they would only grow the queue that cannot be written.
        """
        if not self.accepting:
            raise audit_unavailable()

    @property
    def _durable_mark(self) -> int:
        return max(self._journaled, self._written)

    @property
    def _unjournaled(self) -> int:
        return self._recorded - self._durable_mark

    @property
    def _keepable(self) -> bool:
        journal_ok = self.journal is not None and not self._journal_failing
        return journal_ok or not self._failing

    def _over_backlog(self) -> bool:
        return self._unjournaled > self._max_backlog or len(self._pending) > self._max_journaled

    def _wake_waiters(self) -> None:
        mark = self._durable_mark
        while self._waiters and self._waiters[0][0] <= mark:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)

    # -- the background tasks ---------------------------------------------------

    async def start(self) -> None:
        """Open the journal (queueing what it holds, first), then start the tasks."""
        if self.journal is not None and self._journal_task is None:
            await self._open_journal()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="audit-writer")
        if self.journal is not None and self._journal_task is None:
            self._journal_task = asyncio.create_task(self._journal_run(), name="audit-journal")

    async def _open_journal(self) -> None:
        assert self.journal is not None
        if self._recorded:
            raise RuntimeError("start the audit log before recording (the journal replays first)")
        try:
            left = await asyncio.to_thread(self.journal.open)
        except JournalBusy as exc:
            log.warning("audit_journal_busy", action="audit.journal", error=str(exc))
            self.journal = None
            return
        except OSError as exc:
            log.warning("audit_journal_unusable", action="audit.journal", error=str(exc)[:300])
            self.journal = None
            return
        self._pending.extend(left)
        self._recorded = self._journaled = len(left)
        if left:
            log.info("audit_replay", action="audit.journal", entries=len(left))
            self._wake.set()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop after journaling everything and storing it (giving up on the database
        after `timeout`: what it has not stored stays in the journal for the next start)."""
        if self._journal_task is not None:
            self._journal_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._journal_task
            self._journal_task = None
            await self._journal_pending()
        try:
            await self.flush(timeout)
        except TimeoutError:
            kept = self._durable_mark - self._written
            lost = len(self._pending) - kept
            log.error(
                "audit_unwritten",
                action="audit.stop",
                pending=len(self._pending),
                journaled=kept,
                lost=lost,
                hint="the database could not be reached; journaled entries are written "
                "at the next start, the others are lost",
            )
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.journal is not None:
            self.journal.close()

    async def run(self) -> None:
        """Write queued entries in batches until cancelled."""
        while True:
            await self._wake.wait()
            if len(self._pending) < self._batch_size:
                # Let a batch gather: one transaction for many requests.
                await asyncio.sleep(self._interval)
            self._wake.clear()
            await self._drain()

    async def _journal_run(self) -> None:
        """Journal queued entries until cancelled: one fsync for all that wait."""
        while True:
            await self._journal_wake.wait()
            self._journal_wake.clear()
            await self._journal_pending()

    async def _journal_pending(self) -> None:
        journal = self.journal
        if journal is None:
            return
        async with self._journal_lock:
            while self._durable_mark < self._recorded:
                loop = asyncio.get_running_loop()
                if self._journal_failing and loop.time() < self._journal_retry_at:
                    return  # the database carries them meanwhile; retried after a pause
                start, end = self._durable_mark, self._recorded
                offset = start - self._written
                batch = list(itertools.islice(self._pending, offset, offset + end - start))
                try:
                    await asyncio.to_thread(journal.append, batch, end)
                except OSError as exc:
                    self._note_journal_failure(exc)
                    self._journal_retry_at = loop.time() + _JOURNAL_RETRY_S
                    return
                if self._journal_failing:
                    log.warning("audit_journal_recovered", action="audit.journal")
                    self._journal_failing = False
                self._journaled = max(self._journaled, end)
                self._wake_waiters()

    async def flush(self, timeout: float | None = None) -> None:
        """Return once every entry queued before the call is in the database.

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
            batch = list(itertools.islice(self._pending, count))
            try:
                await self.store.append(batch)
            except Exception as exc:  # noqa: BLE001 - any failure: keep the entries, retry
                self._note_failure(exc)
                return False
            for _ in range(count):
                self._pending.popleft()
            self._written += count
            self._wake_waiters()
            if self.journal is not None:
                await asyncio.to_thread(self.journal.committed, self._written)
            if self._failing:
                log.warning("audit_recovered", action="audit.write", pending=len(self._pending))
            self._failing = False
            if not self._over_backlog():
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
                journaled=self.journal is not None and not self._journal_failing,
                refusing=self.fail_closed and not self._keepable,
            )

    def _note_journal_failure(self, exc: OSError) -> None:
        if not self._journal_failing:
            log.warning(
                "audit_journal_failed",
                action="audit.journal",
                error=f"{type(exc).__name__}: {exc}"[:300],
                refusing=self.fail_closed and self._failing,
            )
        self._journal_failing = True

    # -- reading --------------------------------------------------------------

    async def verify(
        self, batch: int = 2000, tenant_id: str | None = None, expect_head: str | None = None
    ) -> VerifyReport:
        """Check the whole chain, or with `tenant_id` that tenant's chain (see `verify`)."""
        if tenant_id is not None:
            return await verify_tenant(self.store, tenant_id, batch, expect_head=expect_head)
        return await verify(self.store, batch, expect_head=expect_head)

    def export(
        self, since: datetime, until: datetime | None = None, tenant_id: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Entries with `since <= at < until`, oldest first, as JSON-ready dicts
        (with `tenant_id`, that tenant's as its own chain numbers them)."""
        return export(self.store, since, until, tenant_id=tenant_id)


async def verify(
    store: AuditStore, batch: int = 2000, *, expect_head: str | None = None
) -> VerifyReport:
    """Read the table in `seq` order, `batch` entries at a time, and check every link and hash.

    Reports the first entry that does not hold: an edited entry fails its hash,
    a deleted one leaves a gap, a moved one fails its link. With `expect_head`
    (a head hash kept off the box), the chain must also hold that entry: a chain
    cut short or rewritten from an entry on, which no link shows, fails there.
    """
    verifier = Verifier(expect_head)
    async with contextlib.aclosing(store.scan(batch)) as pages:
        async for page in pages:
            if not verifier.feed(page):
                break
            # Hashing is CPU work on the event loop: let other tasks in between pages.
            await asyncio.sleep(0)
    return verifier.report()


async def verify_tenant(
    store: AuditStore, tenant_id: str, batch: int = 2000, *, expect_head: str | None = None
) -> VerifyReport:
    """Check one tenant's chain: its entries in `tenant_seq` order, each linked to the one
    before it and matching its hash, reading no other tenant's entries.

    An edited entry fails its hash; a deleted one (or one moved to another tenant)
    leaves a gap in the tenant's numbering; entries re-ordered break links. The
    report's `seq` numbers are the tenant chain's; `expect_head` as for `verify`.
    """
    verifier = Verifier(expect_head)
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
