"""The audit log's hash chain, as pure functions over plain values.

Entry `n` is hashed together with entry `n-1`'s hash:

    canonical(n) = JSON of {"action", "at", "data", "key_id", "seq", "tenant_id"}
                   with sorted keys, no whitespace, UTF-8 (not ASCII-escaped),
                   `at` in UTC as ISO 8601 with microseconds; exactly the bytes of
                   `orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)`
    hash(n)      = sha256(prev_hash(n) + canonical(n)), lower-case hex
    prev_hash(1) = 64 zeros

An edit changes an entry's hash; a deletion leaves a gap in `seq` and a
broken link; moving entries breaks links. The `Verifier` walks entries in
`seq` order and names the first one that does not hold.

Each tenant's entries (those whose `tenant_id` is that tenant) form a second
chain of their own, by the same rule over the tenant's own numbering:

    tenant_hash(n) = sha256(tenant_prev_hash(n) + canonical(entry with seq = tenant_seq(n)))

so a tenant verifies its entries (`Verifier` over `StoredEntry.in_tenant_chain()`)
without reading, or learning the number of, anyone else's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from sparkplane.security.keys import redact

GENESIS = "0" * 64
# Field names whose values are masked wherever they appear in an entry's data.
SECRET_FIELDS = frozenset(
    {
        "api_key",
        "apikey",
        "api-key",
        "secret",
        "password",
        "passwd",
        "authorization",
        "token",
        "access_token",
        "refresh_token",
    }
)
MASK = "…"
# Column widths of the audit_log table.
_WIDTHS = {"action": 60, "tenant_id": 32, "key_id": 32}
_CONTROL = re.compile(r"\x00")


def timestamp(at: datetime) -> str:
    """`at` as the chain writes it: UTC, ISO 8601, always with microseconds."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(
    seq: int,
    at: datetime,
    action: str,
    tenant_id: str | None,
    key_id: str | None,
    data: dict[str, Any],
) -> bytes:
    """The bytes an entry's hash covers (besides the previous hash)."""
    doc = {
        "seq": seq,
        "at": timestamp(at),
        "action": action,
        "tenant_id": tenant_id,
        "key_id": key_id,
        "data": data,
    }
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def entry_hash(
    prev_hash: str,
    seq: int,
    at: datetime,
    action: str,
    tenant_id: str | None,
    key_id: str | None,
    data: dict[str, Any],
) -> str:
    """sha256(prev_hash || canonical entry), hex."""
    digest = hashlib.sha256(prev_hash.encode())
    digest.update(canonical(seq, at, action, tenant_id, key_id, data))
    return digest.hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value) if "sp-" in value else value
    if isinstance(value, dict):
        return {
            _scrub(k): MASK if k.lower() in SECRET_FIELDS and v is not None else _scrub(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


_CLEAN = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
# What may need masking: a key-shaped string or a credential-named field (false alarms are fine).
_SUSPECT = re.compile(b"sp-|" + b"|".join(f'"{f}"'.encode() for f in sorted(SECRET_FIELDS)))


def clean_data(data: dict[str, Any]) -> dict[str, Any]:
    """`data` as it will be stored and hashed: plain JSON values, secrets masked.

    Values JSON cannot hold become strings (datetimes in the chain's format,
    sets sorted lists), NaN and infinities null, so what is hashed now is
    exactly what is read back later. TypeError for data that cannot be stored
    at all (integers beyond 64 bits, unpaired surrogates).
    """
    text = orjson.dumps(data, default=_json_default, option=_CLEAN)
    plain: dict[str, Any] = orjson.loads(text)
    if _SUSPECT.search(text.lower()):
        scrubbed: dict[str, Any] = _scrub(plain)
        return scrubbed
    return plain


def clean_field(name: str, value: str | None) -> str | None:
    """An id or action fitted to its column: empty -> None, no NUL, at most its width."""
    if not value:
        return None
    value = value.encode(errors="replace").decode()
    return _CONTROL.sub("", value)[: _WIDTHS[name]] or None


@dataclass(frozen=True, slots=True)
class Entry:
    """An audit entry ready to be chained (data already cleaned).

    `entry_id` names it once and for all (not hashed): the table refuses a
    second copy, so an entry written again after a lost acknowledgement, or
    replayed from the journal, is stored once.
    """

    at: datetime
    action: str
    tenant_id: str | None
    key_id: str | None
    data: dict[str, Any]
    entry_id: str | None = None


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry as the table holds it."""

    seq: int
    at: datetime
    action: str
    tenant_id: str | None
    key_id: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str
    # Its place in its tenant's chain (None for an entry that concerns no tenant).
    tenant_seq: int | None = None
    tenant_prev_hash: str | None = None
    tenant_hash: str | None = None

    def in_tenant_chain(self) -> StoredEntry:
        """The entry as its tenant's chain numbers and links it (what a tenant sees and checks)."""
        return StoredEntry(
            self.tenant_seq or 0,
            self.at,
            self.action,
            self.tenant_id,
            self.key_id,
            self.data,
            self.tenant_prev_hash or "",
            self.tenant_hash or "",
        )

    def public(self) -> dict[str, Any]:
        """The entry as export and the API show it (everything needed to re-check it,
        and its tenant chain's fields when it is in one)."""
        doc: dict[str, Any] = {
            "seq": self.seq,
            "at": timestamp(self.at),
            "action": self.action,
            "tenant_id": self.tenant_id,
            "key_id": self.key_id,
            "data": self.data,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }
        if self.tenant_seq is not None:
            doc["tenant_seq"] = self.tenant_seq
            doc["tenant_prev_hash"] = self.tenant_prev_hash
            doc["tenant_hash"] = self.tenant_hash
        return doc

    def tenant_public(self) -> dict[str, Any]:
        """The entry as its tenant sees it: numbered and linked in the tenant's own chain,
        so nothing of other tenants' entries (not even their number) shows."""
        return self.in_tenant_chain().public()


def link(
    entries: Iterable[Entry],
    last_seq: int,
    last_hash: str,
    tenant_heads: dict[str, tuple[int, str]] | None = None,
) -> list[StoredEntry]:
    """Chain `entries` after the entry (`last_seq`, `last_hash`); 0 and GENESIS for the first.

    With `tenant_heads` (tenant id -> its chain's last seq and hash; a tenant
    missing from it starts at 0 and GENESIS), each entry that concerns a tenant
    is also chained into that tenant's chain, and `tenant_heads` is moved on.
    """
    chained: list[StoredEntry] = []
    seq, prev = last_seq, last_hash
    for e in entries:
        seq += 1
        digest = entry_hash(prev, seq, e.at, e.action, e.tenant_id, e.key_id, e.data)
        t_seq, t_prev, t_hash = None, None, None
        if tenant_heads is not None and e.tenant_id is not None:
            t_seq, t_prev = tenant_heads.get(e.tenant_id, (0, GENESIS))
            t_seq += 1
            t_hash = entry_hash(t_prev, t_seq, e.at, e.action, e.tenant_id, e.key_id, e.data)
            tenant_heads[e.tenant_id] = (t_seq, t_hash)
        chained.append(
            StoredEntry(
                seq,
                e.at,
                e.action,
                e.tenant_id,
                e.key_id,
                e.data,
                prev,
                digest,
                t_seq,
                t_prev,
                t_hash,
            )
        )
        prev = digest
    return chained


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of checking the chain.

    `checked` counts the entries read; `first_broken` is the seq of the first
    entry that does not hold (for a deleted entry, its missing seq) and
    `reason` says why; `head_seq`/`head_hash` are the last good entry's, worth
    keeping elsewhere: a chain cut short at its end can only be told from one
    recorded earlier.
    """

    checked: int
    first_broken: int | None
    reason: str | None
    head_seq: int
    head_hash: str

    @property
    def ok(self) -> bool:
        """Whether every entry read holds."""
        return self.first_broken is None

    def public(self) -> dict[str, Any]:
        """The report as JSON."""
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_broken": self.first_broken,
            "reason": self.reason,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
        }


class Verifier:
    """Checks entries fed in `seq` order; stops at the first that does not hold."""

    def __init__(self, expect_head: str | None = None) -> None:
        # A head hash kept elsewhere: the chain must hold an entry with it.
        self.expect_head = expect_head.lower() if expect_head else None
        self.expected_seq: int | None = None
        self.checked = 0
        self.first_broken: int | None = None
        self.reason: str | None = None
        self._seq = 0
        self._hash = GENESIS

    @property
    def broken(self) -> bool:
        """Whether a broken entry has been found (feeding more changes nothing)."""
        return self.first_broken is not None

    def feed(self, entries: Iterable[StoredEntry]) -> bool:
        """Check the next entries; False once the chain is found broken."""
        for e in entries:
            if self.first_broken is not None:
                return False
            self.checked += 1
            self._check(e)
        return self.first_broken is None

    def _check(self, e: StoredEntry) -> None:
        expected = self._seq + 1
        if e.seq != expected:
            if e.seq > expected:
                missing = f"{expected}" if e.seq == expected + 1 else f"{expected}-{e.seq - 1}"
                self._fail(expected, f"entry {missing} missing (deleted): {e.seq} follows")
            else:
                self._fail(e.seq, f"entry {e.seq} is out of order after {self._seq}")
            return
        if e.prev_hash != self._hash:
            self._fail(
                e.seq,
                f"entry {e.seq} does not link to entry {self._seq} (prev_hash differs): "
                "entries were removed, inserted or moved",
            )
            return
        if entry_hash(e.prev_hash, e.seq, e.at, e.action, e.tenant_id, e.key_id, e.data) != e.hash:
            self._fail(e.seq, f"entry {e.seq} does not match its hash: it was edited")
            return
        self._seq, self._hash = e.seq, e.hash
        if e.hash == self.expect_head:
            self.expected_seq = e.seq

    def _fail(self, seq: int, reason: str) -> None:
        self.first_broken, self.reason = seq, reason

    def report(self) -> VerifyReport:
        """What was found so far (call once every entry was fed)."""
        if self.expect_head is not None and self.expected_seq is None and not self.broken:
            # Every entry holds, yet the head kept elsewhere is none of them: newest
            # entries were cut off, or the chain was rewritten from some entry on.
            self._fail(
                self._seq + 1,
                f"the expected head {self.expect_head} is not in the chain: entries after "
                f"seq {self._seq} were cut off, or the chain was rewritten",
            )
        return VerifyReport(self.checked, self.first_broken, self.reason, self._seq, self._hash)
