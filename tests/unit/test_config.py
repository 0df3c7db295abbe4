"""Settings: defaults, the TOML file, SPARKPLANE_* variables and explicit overrides."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from sparkplane.config import Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No SPARKPLANE_* variables from the caller, and an empty working folder."""
    for name in list(os.environ):
        if name.startswith("SPARKPLANE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file_or_environment() -> None:
    s = load_settings()
    assert (s.host, s.port) == ("127.0.0.1", 8400)
    assert s.home == Path(".sparkplane")
    assert s.allow_off_prem is False
    assert s.aliases == {}
    assert s.max_attempts == 3
    assert s.request_timeout_s is None
    assert s == Settings()


def test_db_url_defaults_to_a_sqlite_file_in_home(tmp_path: Path) -> None:
    s = load_settings(home=tmp_path / "h")
    assert s.db_url == f"sqlite+aiosqlite:///{(tmp_path / 'h' / 'sparkplane.db').resolve()}"
    assert s.artifacts_path == tmp_path / "h" / "artifacts"


def test_relative_home_gives_an_absolute_database_path(tmp_path: Path) -> None:
    s = load_settings()
    assert s.db_url.startswith("sqlite+aiosqlite:////")
    assert s.db_url.endswith(str(tmp_path.resolve() / ".sparkplane" / "sparkplane.db"))


def test_database_url_and_artifacts_dir_win_over_home(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://sp@db.invalid/sp"
    s = load_settings(home=tmp_path, database_url=url, artifacts_dir=tmp_path / "art")
    assert s.db_url == url
    assert s.artifacts_path == tmp_path / "art"


def test_toml_file_in_the_working_folder_is_read(tmp_path: Path) -> None:
    write(tmp_path / "sparkplane.toml", 'port = 9000\nhost = "0.0.0.0"\n')
    s = load_settings()
    assert (s.host, s.port) == ("0.0.0.0", 9000)


def test_named_toml_file_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "other.toml", "max_attempts = 5\nallow_off_prem = true\n")
    s = load_settings(path)
    assert s.max_attempts == 5
    assert s.allow_off_prem is True


def test_sparkplane_config_variable_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "sparkplane.toml", "port = 1111\n")
    path = write(tmp_path / "env.toml", "port = 2222\n")
    monkeypatch.setenv("SPARKPLANE_CONFIG", str(path))
    assert load_settings().port == 2222


def test_environment_overrides_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "s.toml", 'port = 9000\nlog_level = "debug"\n')
    monkeypatch.setenv("SPARKPLANE_PORT", "9100")
    s = load_settings(path)
    assert s.port == 9100
    assert s.log_level == "debug"


def test_explicit_overrides_beat_environment_and_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "s.toml", "port = 9000\n")
    monkeypatch.setenv("SPARKPLANE_PORT", "9100")
    assert load_settings(path, port=9200).port == 9200


def test_override_of_none_means_the_flag_was_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARKPLANE_HOST", "10.0.0.1")
    assert load_settings(host=None).host == "10.0.0.1"


def test_missing_named_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.toml"):
        load_settings(tmp_path / "nope.toml")


def test_missing_file_named_by_sparkplane_config_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARKPLANE_CONFIG", str(tmp_path / "typo.toml"))
    with pytest.raises(FileNotFoundError, match=r"typo\.toml"):
        load_settings()


def test_aliases_from_toml_accept_a_single_string_or_a_list(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s.toml",
        "[aliases]\n"
        'chat = "ollama:llama3.1:8b"\n'
        'code = ["qwen2.5-coder:7b", "Qwen/Qwen2.5-Coder-7B-Instruct"]\n',
    )
    s = load_settings(path)
    assert s.aliases == {
        "chat": ["ollama:llama3.1:8b"],
        "code": ["qwen2.5-coder:7b", "Qwen/Qwen2.5-Coder-7B-Instruct"],
    }


def test_aliases_from_the_environment_are_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARKPLANE_ALIASES", '{"chat": "llama3.1:8b"}')
    assert load_settings().aliases == {"chat": ["llama3.1:8b"]}


def test_environment_values_are_parsed_to_their_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARKPLANE_ALLOW_OFF_PREM", "true")
    monkeypatch.setenv("SPARKPLANE_REQUEST_TIMEOUT_S", "30.5")
    monkeypatch.setenv("SPARKPLANE_HOME", "/srv/sparkplane")
    s = load_settings()
    assert s.allow_off_prem is True
    assert s.request_timeout_s == 30.5
    assert s.home == Path("/srv/sparkplane")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("port", 0),
        ("port", 70000),
        ("log_level", "loud"),
        ("max_attempts", 0),
        ("retry_budget_ratio", 1.5),
        ("breaker_cooldown_s", 0),
        ("max_body_bytes", 10),
    ],
)
def test_invalid_values_are_rejected_naming_the_field(field: str, value: object) -> None:
    overrides: dict[str, Any] = {field: value}
    with pytest.raises(ValidationError) as info:
        load_settings(**overrides)
    errors = info.value.errors()
    assert [e["loc"] for e in errors] == [(field,)]
    assert field in str(info.value)


def test_invalid_environment_value_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARKPLANE_PORT", "eighty")
    with pytest.raises(ValidationError, match="port"):
        load_settings()


def test_unknown_key_in_toml_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "s.toml", "prot = 8000\n")
    with pytest.raises(ValidationError, match="prot"):
        load_settings(path)


def test_invalid_toml_value_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "s.toml", 'max_attempts = "many"\n')
    with pytest.raises(ValidationError, match="max_attempts"):
        load_settings(path)


def test_a_secret_setting_can_come_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "db-url"
    secret.write_text("postgresql+asyncpg://app:s3cret@db/sparkplane\n")
    monkeypatch.setenv("SPARKPLANE_DATABASE_URL_FILE", str(secret))
    monkeypatch.delenv("SPARKPLANE_DATABASE_URL", raising=False)
    assert load_settings().db_url == "postgresql+asyncpg://app:s3cret@db/sparkplane"
