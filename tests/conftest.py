"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sparkplane.config import Settings
from tests.support.services import fresh_postgres_database

pytest_plugins = ["tests.engines.fixtures"]

SettingsFactory = Callable[..., Settings]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Each test using this runs on SQLite and again on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'sparkplane.db'}"
        return
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file in the test's folder."""
    return f"sqlite+aiosqlite:///{tmp_path / 'sparkplane.db'}"


@pytest.fixture
def make_settings(tmp_path: Path) -> SettingsFactory:
    """Settings for a test: its own home folder, fast health checks, no discovery."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "home": tmp_path / "home",
            "discover": False,
            "health_interval_s": 0.2,
            "probe_timeout_s": 1.0,
            "breaker_cooldown_s": 0.5,
            "log_format": "json",
            "auth_enabled": False,
        }
        values.update(overrides)
        return Settings(**values)

    return make
