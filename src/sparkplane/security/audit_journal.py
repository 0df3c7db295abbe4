"""The audit log's write-ahead journal: entries on the local disk, fsynced, before
the database has them.

    journal = Journal(home / "audit-journal")
    left = journal.open()          # entries a previous run journaled; replay them first
    journal.append(entries, end)   # blocking: written and fsynced when it returns
    journal.committed(n)           # entries before number n are in the database: drop their files

The journal is a folder of segment files (`seg-<n>.wal`), written in order,
one entry a line: `<crc32 hex> <json>\\n`. A line whose checksum does not
match (a write torn by a crash, never acknowledged because it was not yet
fsynced) ends its segment's replay. Entries are numbered by the caller (the
audit log's order, replayed ones first; `append` is told the number after its
last entry); a segment is deleted once every entry in it is in the database,
so a healthy journal holds about one batch. `append` and `committed` may be
called from different threads.

One process owns a folder (an exclusive `flock` on `journal.lock`); a second
process given the same folder gets `JournalBusy` and runs without a journal.
"""

from __future__ import annotations

import fcntl
import os
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from sparkplane.security.audit_chain import Entry

DEFAULT_SEGMENT_BYTES = 4 * 1024 * 1024
_PREFIX, _SUFFIX = "seg-", ".wal"


class JournalBusy(OSError):
    """Another process holds the journal folder."""


@dataclass(slots=True)
class _Segment:
    path: Path
    first: int  # number of its first entry
    end: int  # one past its last entry


def encode(entry: Entry) -> bytes:
    """One journal line for `entry` (checksum, space, JSON, newline)."""
    doc = {
        "id": entry.entry_id,
        "at": entry.at.isoformat(),
        "action": entry.action,
        "tenant_id": entry.tenant_id,
        "key_id": entry.key_id,
        "data": entry.data,
    }
    body = orjson.dumps(doc)
    return b"%08x %s\n" % (zlib.crc32(body), body)


def decode(line: bytes) -> Entry | None:
    """The entry a journal line holds, or None for a torn or corrupt line."""
    crc, _, body = line.rstrip(b"\n").partition(b" ")
    try:
        if int(crc, 16) != zlib.crc32(body):
            return None
        doc: dict[str, Any] = orjson.loads(body)
        return Entry(
            at=datetime.fromisoformat(doc["at"]),
            action=doc["action"],
            tenant_id=doc["tenant_id"],
            key_id=doc["key_id"],
            data=doc["data"],
            entry_id=doc["id"],
        )
    except (ValueError, KeyError, TypeError):
        return None


class Journal:
    """Segment files of audit entries in one folder, owned by one process."""

    def __init__(self, folder: Path, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        self.folder = folder
        self._segment_bytes = segment_bytes
        self._lock: IO[bytes] | None = None
        self._closed: list[_Segment] = []
        self._current: _Segment | None = None
        self._file: IO[bytes] | None = None
        self._size = 0
        self._next_name = 1
        self._mutex = threading.Lock()

    def open(self) -> list[Entry]:
        """Take the folder and return the entries earlier runs left in it, oldest first.

        JournalBusy when another process holds it; OSError when it cannot be used.
        """
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = (self.folder / "journal.lock").open("ab")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise JournalBusy(f"{self.folder} is used by another process") from None
        self._lock = lock
        left: list[Entry] = []
        for path in sorted(self.folder.glob(f"{_PREFIX}*{_SUFFIX}"), key=_number):
            first = len(left)
            left.extend(_read(path))
            self._closed.append(_Segment(path, first, len(left)))
            self._next_name = max(self._next_name, _number(path) + 1)
        return left

    def append(self, entries: Sequence[Entry], end: int) -> None:
        """Write `entries` (numbered up to `end`, exclusive) and fsync; they are
        durable when this returns. Blocking; OSError when the disk refuses."""
        if not entries:
            return
        data = b"".join(encode(e) for e in entries)
        with self._mutex:
            if self._file is None or self._size >= self._segment_bytes:
                self._rotate(end - len(entries))
            assert self._file is not None
            assert self._current is not None
            try:
                self._file.write(data)
                self._file.flush()
                os.fsync(self._file.fileno())
            except OSError:
                # What reached the file may be torn: later lines go to a fresh segment,
                # so a good line never follows a bad one (which ends a replay).
                self._seal()
                raise
            self._size += len(data)
            self._current.end = end

    def committed(self, count: int) -> None:
        """Entries numbered below `count` are in the database: delete the segments they fill."""
        with self._mutex:
            keep: list[_Segment] = []
            for segment in self._closed:
                if segment.end <= count:
                    segment.path.unlink(missing_ok=True)
                else:
                    keep.append(segment)
            self._closed = keep
            current = self._current
            if current is not None and current.first < current.end <= count:
                # Everything written is stored: the next entries start a new, empty file.
                if self._file is not None:
                    self._file.close()
                    self._file = None
                current.path.unlink(missing_ok=True)
                self._current = None

    def close(self) -> None:
        """Close the files and release the folder (segments not yet committed stay)."""
        with self._mutex:
            self._seal()
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _rotate(self, first: int) -> None:
        self._seal()
        path = self.folder / f"{_PREFIX}{self._next_name:012d}{_SUFFIX}"
        self._next_name += 1
        self._file = path.open("ab")
        self._size = 0
        self._current = _Segment(path, first, first)
        # The new file's name must survive a crash too, not only its contents.
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _seal(self) -> None:
        """Close the current segment; the next append opens a new one."""
        if self._file is not None:
            self._file.close()
            self._file = None
        current, self._current = self._current, None
        if current is None:
            return
        if current.end > current.first:
            self._closed.append(current)
        else:
            current.path.unlink(missing_ok=True)


def _number(path: Path) -> int:
    try:
        return int(path.name[len(_PREFIX) : -len(_SUFFIX)])
    except ValueError:
        return 0


def _read(path: Path) -> list[Entry]:
    entries: list[Entry] = []
    with path.open("rb") as file:
        for line in file:
            entry = decode(line)
            if entry is None:
                break  # a torn tail: nothing after it was ever acknowledged
            entries.append(entry)
    return entries
