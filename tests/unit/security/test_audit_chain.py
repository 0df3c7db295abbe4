"""The hash chain as pure code: how entries are hashed and linked, and how the
verifier names the first entry that an edit, deletion or move breaks."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sparkplane.security import keys
from sparkplane.security.audit import to_entry
from sparkplane.security.audit_chain import (
    GENESIS,
    MASK,
    Entry,
    StoredEntry,
    Verifier,
    canonical,
    clean_data,
    clean_field,
    entry_hash,
    link,
)
from sparkplane.security.audit_events import AdminEvent, InferenceEvent, JobEvent

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def entries(n: int) -> list[Entry]:
    return [
        Entry(T0 + timedelta(seconds=i), "inference", "t1", "k1", {"i": i, "model": "m"})
        for i in range(n)
    ]


def verify(chain: list[StoredEntry]) -> Verifier:
    verifier = Verifier()
    verifier.feed(chain)
    return verifier


def test_the_hash_is_sha256_of_the_previous_hash_and_the_canonical_entry() -> None:
    at = datetime(2026, 11, 24, 11, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    text = canonical(1, at, "inference", "t1", None, {"b": 2, "a": "é"})
    # Sorted keys, no spaces, UTF-8, UTC with microseconds: the documented form.
    assert (
        text
        == (
            '{"action":"inference","at":"2026-11-24T10:00:00.000000+00:00",'
            '"data":{"a":"é","b":2},"key_id":null,"seq":1,"tenant_id":"t1"}'
        ).encode()
    )
    expected = hashlib.sha256(GENESIS.encode() + text).hexdigest()
    assert entry_hash(GENESIS, 1, at, "inference", "t1", None, {"a": "é", "b": 2}) == expected


def test_entries_link_each_to_the_one_before() -> None:
    chain = link(entries(5), 0, GENESIS)
    assert [e.seq for e in chain] == [1, 2, 3, 4, 5]
    assert chain[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(chain))
    assert len({e.hash for e in chain}) == 5


def test_a_chain_continues_from_its_head() -> None:
    first = link(entries(3), 0, GENESIS)
    more = link(entries(2), first[-1].seq, first[-1].hash)
    report = verify(first + more).report()
    assert report.ok
    assert (report.checked, report.head_seq, report.head_hash) == (5, 5, more[-1].hash)


def test_an_intact_chain_verifies_and_an_empty_one_too() -> None:
    assert verify(link(entries(50), 0, GENESIS)).report().ok
    empty = Verifier().report()
    assert empty.ok
    assert (empty.checked, empty.head_seq, empty.head_hash) == (0, 0, GENESIS)


def test_edited_data_is_reported_at_that_entry() -> None:
    chain = link(entries(10), 0, GENESIS)
    chain[6] = dataclasses.replace(chain[6], data={"i": 6, "model": "other"})
    report = verify(chain).report()
    assert report.first_broken == 7
    assert report.reason is not None
    assert "edited" in report.reason
    assert report.head_seq == 6


@pytest.mark.parametrize("field", ["at", "action", "tenant_id", "key_id", "hash"])
def test_any_edited_field_is_reported_at_that_entry(field: str) -> None:
    chain = link(entries(10), 0, GENESIS)
    changed = {
        "at": T0 - timedelta(days=1),
        "action": "keys.create",
        "tenant_id": "t2",
        "key_id": None,
        "hash": "f" * 64,
    }[field]
    chain[3] = dataclasses.replace(chain[3], **{field: changed})
    assert verify(chain).report().first_broken == 4


def test_a_deleted_entry_is_reported_by_its_missing_seq() -> None:
    chain = link(entries(10), 0, GENESIS)
    del chain[4]
    report = verify(chain).report()
    assert report.first_broken == 5
    assert report.reason is not None
    assert "missing" in report.reason


def test_deleting_the_first_entries_is_reported_at_seq_1() -> None:
    chain = link(entries(10), 0, GENESIS)[3:]
    report = verify(chain).report()
    assert report.first_broken == 1
    assert report.reason is not None
    assert "1-3 missing" in report.reason


def test_swapped_entries_are_reported_at_the_first_of_them() -> None:
    chain = link(entries(10), 0, GENESIS)
    a, b = chain[2], chain[7]
    chain[2] = dataclasses.replace(b, seq=a.seq)
    chain[7] = dataclasses.replace(a, seq=b.seq)
    report = verify(chain).report()
    assert report.first_broken == 3
    assert report.reason is not None
    assert "link" in report.reason


def test_renumbering_after_a_deletion_is_caught_by_the_links() -> None:
    chain = link(entries(10), 0, GENESIS)
    del chain[4]
    chain = [dataclasses.replace(e, seq=i + 1) for i, e in enumerate(chain)]
    assert verify(chain).report().first_broken == 5


def test_the_verifier_stops_at_the_first_break() -> None:
    chain = link(entries(10), 0, GENESIS)
    chain[2] = dataclasses.replace(chain[2], data={})
    chain[5] = dataclasses.replace(chain[5], data={})
    verifier = Verifier()
    assert not verifier.feed(chain[:4])
    assert not verifier.feed(chain[4:])
    assert (verifier.report().first_broken, verifier.report().checked) == (3, 3)


@given(
    n=st.integers(min_value=1, max_value=40),
    data=st.data(),
)
def test_any_single_edit_or_deletion_is_found_where_it_was_made(
    n: int, data: st.DataObject
) -> None:
    chain = link(entries(n), 0, GENESIS)
    k = data.draw(st.integers(min_value=0, max_value=n - 1))
    if data.draw(st.booleans()):
        chain[k] = dataclasses.replace(chain[k], data={"i": -1})
        assert verify(chain).report().first_broken == k + 1
    elif k < n - 1:  # a deleted last entry leaves no trace in the chain itself
        del chain[k]
        assert verify(chain).report().first_broken == k + 1


def test_data_is_plain_json_with_secrets_masked() -> None:
    _, key = keys.generate()
    cleaned = clean_data(
        {
            "when": T0,
            "tags": frozenset({"b", "a"}),
            "pair": (1, 2),
            "note": f"called with {key}",
            "nested": [{"api_key": "sk-cloud-123", "Password": "hunter2", "ok": "fine"}],
            "token": None,
        }
    )
    assert cleaned["when"] == "2026-11-24T10:00:00.000000+00:00"
    assert cleaned["tags"] == ["a", "b"]
    assert cleaned["pair"] == [1, 2]
    assert key not in cleaned["note"]
    assert cleaned["note"].startswith("called with sp-")
    assert cleaned["nested"] == [{"api_key": MASK, "Password": MASK, "ok": "fine"}]
    assert cleaned["token"] is None
    assert key not in repr(cleaned)
    assert "hunter2" not in repr(cleaned)


def test_unstorable_data_still_leaves_an_entry() -> None:
    nan = to_entry(AdminEvent("devices.add", None, None, "box", {"x": float("nan")}), T0)
    assert nan.data == {"target": "box", "details": {"x": None}}
    for bad in (2**70, "\ud800"):
        entry = to_entry(AdminEvent("devices.add", "t1", None, "box", {"x": bad}), T0)
        assert (entry.action, entry.tenant_id) == ("devices.add", "t1")
        assert "unrecordable" in entry.data
        entry.data["unrecordable"].encode()


def test_ids_are_fitted_to_their_columns() -> None:
    assert clean_field("tenant_id", "") is None
    assert clean_field("key_id", "a\x00b") == "ab"
    assert clean_field("action", "x" * 100) == "x" * 60


def test_content_appears_only_when_given() -> None:
    bare = InferenceEvent("t1", "k1", model="m", op="chat", status=200)
    assert "content" not in bare.data()
    opted = dataclasses.replace(bare, content={"messages": [{"role": "user", "content": "hi"}]})
    assert opted.data()["content"] == {"messages": [{"role": "user", "content": "hi"}]}
    job = JobEvent("t1", "k1", prompt_id="p1", status="completed", images=2)
    assert "content" not in job.data()
    assert job.data()["images"] == 2


def test_admin_actions_must_be_dotted_names() -> None:
    AdminEvent("keys.revoke", "t1", "k1", target="abc")
    for bad in ("Keys.Revoke", "revoke", "keys.", "a." + "b" * 60):
        with pytest.raises(ValueError, match="not an audit action"):
            AdminEvent(bad, None, None, target="x")
