"""Fixtures for the acceptance tests: the `sparkplane` command as a subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """`await cli("devices", "list")` runs the command with this test's own home folder."""
    return Cli(home=tmp_path / "home", cwd=tmp_path)
