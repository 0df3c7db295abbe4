"""`sparkplane keys rotate --overlap` and `keys list` as an operator runs them: the
old secret keeps working through the window beside the new one, the listing
says until when, and when each key was last used."""

from __future__ import annotations

from pathlib import Path

from sparkplane.db.engine import create_engine, session_factory
from sparkplane.security.auth import Authenticator
from sparkplane.security.key_usage import KeyUsage
from sparkplane.security.store import KeyStore
from tests.acceptance.test_tenant_admin_cli import KEY, cli


async def test_rotate_with_an_overlap_keeps_the_old_secret_until_the_window_ends(
    tmp_path: Path, sqlite_url: str
) -> None:
    assert cli(tmp_path, sqlite_url, "tenants", "create", "acme").returncode == 0
    made = cli(tmp_path, sqlite_url, "keys", "create", "--tenant", "acme", "--role", "member")
    assert made.returncode == 0, made.stderr
    old = KEY.search(made.stdout)
    assert old is not None
    key_id = old.group(0)[3:15]

    listed = cli(tmp_path, sqlite_url, "keys", "list")
    assert "never" in listed.stdout  # not used yet

    rotated = cli(tmp_path, sqlite_url, "keys", "rotate", key_id, "--overlap", "2h")
    assert rotated.returncode == 0, rotated.stderr
    new = KEY.search(rotated.stdout)
    assert new is not None
    assert new.group(0) != old.group(0)
    assert "old secret until" in cli(tmp_path, sqlite_url, "keys", "list").stdout

    engine = create_engine(sqlite_url)
    try:
        keys = KeyStore(session_factory(engine))
        usage = KeyUsage(keys)
        auth = Authenticator(keys, usage=usage)
        assert (await auth.authenticate(old.group(0))).key_id == key_id
        assert (await auth.authenticate(new.group(0))).key_id == key_id
        await usage.stop()
    finally:
        await engine.dispose()
    listed = cli(tmp_path, sqlite_url, "keys", "list")
    assert "never" not in listed.stdout  # the use above was recorded

    bad = cli(tmp_path, sqlite_url, "keys", "rotate", key_id, "--overlap", "31d")
    assert bad.returncode == 1
    assert "at most 30d" in bad.stderr
