"""Fixtures of the fake ComfyUI conformance tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from tests.fakes.comfyui import recorded
from tests.fakes.comfyui.pytest_plugin import comfy_fake, comfy_fake_factory

__all__ = ["comfy_fake", "comfy_fake_factory", "fx", "session"]


@pytest.fixture
def fx() -> Callable[[str], dict[str, Any]]:
    """Load a recorded fixture by name; skips the test when the fixtures are absent."""
    if recorded.fixtures_dir() is None:
        pytest.skip(recorded.missing_message())
    return recorded.load


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp client session (the recorder's client library)."""
    async with aiohttp.ClientSession() as client:
        yield client
