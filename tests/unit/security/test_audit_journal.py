"""The audit journal on its own: what is appended survives a reopen in order, a
torn line ends a replay, stored entries' files go, and one process owns a folder."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from sparkplane.security.audit_chain import Entry
from sparkplane.security.audit_journal import Journal, JournalBusy, decode, encode

AT = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def entry(i: int) -> Entry:
    return Entry(AT, "inference", "t1", "k1", {"n": i, "text": 'é\n"x"'}, entry_id=f"id{i:04d}")


def test_a_line_round_trips_and_a_damaged_one_is_refused() -> None:
    line = encode(entry(1))
    assert line.endswith(b"\n")
    assert decode(line) == entry(1)
    assert decode(line[:-5]) is None  # torn
    assert decode(line.replace(b'"n":1', b'"n":2')) is None  # edited: the checksum fails
    assert decode(b"garbage\n") is None


def test_entries_survive_a_reopen_in_order(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    assert journal.open() == []
    journal.append([entry(0), entry(1)], 2)
    journal.append([entry(2)], 3)
    journal.close()  # as a crash would leave it: nothing committed

    again = Journal(tmp_path / "j")
    assert again.open() == [entry(0), entry(1), entry(2)]
    again.close()


def test_a_torn_tail_ends_the_replay(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    journal.open()
    journal.append([entry(0), entry(1)], 2)
    journal.close()
    (segment,) = (tmp_path / "j").glob("seg-*.wal")
    with segment.open("ab") as file:
        file.write(encode(entry(2))[:-9])  # a write the crash cut short, never fsynced
    again = Journal(tmp_path / "j")
    assert again.open() == [entry(0), entry(1)]
    again.close()


def test_segments_go_once_their_entries_are_stored(tmp_path: Path) -> None:
    folder = tmp_path / "j"
    journal = Journal(folder, segment_bytes=2 * len(encode(entry(0))))  # two entries a file
    journal.open()
    try:
        for i in range(6):
            journal.append([entry(i)], i + 1)
        assert len(list(folder.glob("seg-*.wal"))) == 3
        journal.committed(2)
        assert len(list(folder.glob("seg-*.wal"))) == 2
        journal.committed(6)
        assert list(folder.glob("seg-*.wal")) == []
        journal.append([entry(6)], 7)  # starts a new file after the stored ones
    finally:
        journal.close()
    again = Journal(folder)
    assert again.open() == [entry(6)]
    again.close()


def test_one_process_owns_a_folder(tmp_path: Path) -> None:
    first = Journal(tmp_path / "j")
    first.open()
    with pytest.raises(JournalBusy):
        Journal(tmp_path / "j").open()
    first.close()
    second = Journal(tmp_path / "j")
    second.open()
    second.close()
