"""`sparkplane audit head` and `audit verify --expect-head` as a user runs them: a
head kept off the box catches newest entries cut off and a chain rewritten from
an entry on, which the chain alone cannot show; a forged head is refused."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, select, update

from sparkplane.db.engine import create_engine, session_factory
from sparkplane.db.models import AuditRow
from sparkplane.security.audit_chain import GENESIS, entry_hash
from tests.acceptance.test_audit_cli import cli, filled  # noqa: F401 - the fixture

SECRET = "a-secret-kept-by-the-operator"


async def _cut_newest(url: str, count: int) -> None:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            top = await session.scalar(select(AuditRow.seq).order_by(AuditRow.seq.desc()))
            assert top is not None
            await session.execute(delete(AuditRow).where(AuditRow.seq > top - count))
            await session.commit()
    finally:
        await engine.dispose()


async def _rewrite_from(url: str, seq: int) -> None:
    """Edit entry `seq` and re-hash it and every entry after it: a consistent forgery."""
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            rows = (await session.scalars(select(AuditRow).order_by(AuditRow.seq))).all()
            prev = GENESIS
            for row in rows:
                data = dict(row.data)
                if row.seq == seq:
                    data["tokens_in"] = 999
                digest = entry_hash(
                    prev, row.seq, row.at, row.action, row.tenant_id, row.key_id, data
                )
                await session.execute(
                    update(AuditRow)
                    .where(AuditRow.seq == row.seq)
                    .values(data=data, prev_hash=prev, hash=digest)
                )
                prev = digest
            await session.commit()
    finally:
        await engine.dispose()


async def test_a_kept_head_catches_cut_off_entries(tmp_path: Path, filled: str) -> None:  # noqa: F811
    head = cli(tmp_path, filled, "head", "--output", str(tmp_path / "head.json"), secret=SECRET)
    assert head.returncode == 0, head.stderr
    doc = json.loads((tmp_path / "head.json").read_text())
    assert doc["seq"] == 30
    assert doc["alg"] == "hmac-sha256"
    assert len(doc["signature"]) == 64

    # Today the chain holds the head: by hash or by the signed file.
    assert cli(tmp_path, filled, "verify", "--expect-head", doc["hash"]).returncode == 0
    by_file = cli(tmp_path, filled, "verify", "--expect-head", "head.json", secret=SECRET)
    assert by_file.returncode == 0, by_file.stderr

    await _cut_newest(filled, 3)
    alone = cli(tmp_path, filled, "verify")
    assert alone.returncode == 0  # the chain alone cannot tell
    caught = cli(tmp_path, filled, "verify", "--expect-head", "head.json", "--json", secret=SECRET)
    assert caught.returncode == 1
    report = json.loads(caught.stdout)
    assert report["ok"] is False
    assert report["first_broken"] == 28
    assert "cut off" in report["reason"]


async def test_a_kept_head_catches_a_rewritten_chain(tmp_path: Path, filled: str) -> None:  # noqa: F811
    before = json.loads(cli(tmp_path, filled, "head", secret=SECRET).stdout)
    await _rewrite_from(filled, 10)
    assert cli(tmp_path, filled, "verify").returncode == 0  # consistent: no link breaks
    caught = cli(tmp_path, filled, "verify", "--expect-head", before["hash"])
    assert caught.returncode == 1
    assert "not in the chain" in caught.stderr


async def test_a_forged_or_unsigned_head_is_refused(tmp_path: Path, filled: str) -> None:  # noqa: F811
    doc = json.loads(cli(tmp_path, filled, "head", secret=SECRET).stdout)
    (tmp_path / "forged.json").write_text(json.dumps({**doc, "seq": 31}))
    forged = cli(tmp_path, filled, "verify", "--expect-head", "forged.json", secret=SECRET)
    assert forged.returncode == 1
    assert "signature does not match" in forged.stderr
    unsigned = cli(tmp_path, filled, "head")
    assert unsigned.returncode == 0
    assert "unsigned" in unsigned.stderr
    (tmp_path / "unsigned.json").write_text(unsigned.stdout)
    refused = cli(tmp_path, filled, "verify", "--expect-head", "unsigned.json", secret=SECRET)
    assert refused.returncode == 1
    assert "not signed" in refused.stderr


async def test_an_ed25519_head_is_checked_with_the_public_key_alone(
    tmp_path: Path,
    filled: str,  # noqa: F811
) -> None:
    private = Ed25519PrivateKey.generate()
    (tmp_path / "head.key").write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "head.pub").write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    made = cli(tmp_path, filled, "head", "-o", "head.json", key=tmp_path / "head.key")
    assert made.returncode == 0, made.stderr
    doc = json.loads((tmp_path / "head.json").read_text())
    assert doc["alg"] == "ed25519"
    # The auditor holds the public key only: enough to check, not to sign.
    checked = cli(
        tmp_path, filled, "verify", "--expect-head", "head.json", key=tmp_path / "head.pub"
    )
    assert checked.returncode == 0, checked.stderr
    (tmp_path / "forged.json").write_text(json.dumps({**doc, "seq": 29}))
    forged = cli(
        tmp_path, filled, "verify", "--expect-head", "forged.json", key=tmp_path / "head.pub"
    )
    assert forged.returncode == 1
    assert "signature does not match" in forged.stderr
    await _cut_newest(filled, 1)
    cut = cli(tmp_path, filled, "verify", "--expect-head", "head.json", key=tmp_path / "head.pub")
    assert cut.returncode == 1
