"""Where the fixture loader looks, and what it says when it finds nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.comfyui import recorded


@pytest.fixture(autouse=True)
def fresh_lookup() -> None:
    recorded.fixtures_dir.cache_clear()


def test_env_var_may_name_the_fixtures_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "comfyui"
    folder.mkdir()
    for name in ("README.md", "ws_sequence.json"):
        (folder / name).write_text("{}")
    monkeypatch.setenv(recorded.ENV_VAR, str(tmp_path))
    assert recorded.fixtures_dir() == folder
    recorded.fixtures_dir.cache_clear()
    monkeypatch.setenv(recorded.ENV_VAR, str(folder))
    assert recorded.fixtures_dir() == folder
    recorded.fixtures_dir.cache_clear()


def test_missing_fixtures_message_lists_the_places_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(recorded.ENV_VAR, str(tmp_path / "nowhere"))
    monkeypatch.setattr(recorded, "_repo_root", lambda: tmp_path / "a" / "repo")
    monkeypatch.setattr(recorded, "VENDORED", tmp_path / "no-copy")
    assert recorded.fixtures_dir() is None
    message = recorded.missing_message()
    assert str(tmp_path / "nowhere") in message
    assert str(tmp_path / "a" / "shared" / "fixtures" / "comfyui") in message
    with pytest.raises(FileNotFoundError):
        recorded.load("ws_sequence")
    recorded.fixtures_dir.cache_clear()


def test_sibling_shared_folder_is_found() -> None:
    folder = recorded.fixtures_dir()
    if folder is None:
        pytest.skip(recorded.missing_message())
    assert folder.name == "comfyui"
    assert recorded.load("features")["request"]["path"] == "/features"
