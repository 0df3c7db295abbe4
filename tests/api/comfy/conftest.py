"""Fixtures for sparkplane's ComfyUI API tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from tests.fakes.comfyui import recorded


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A real HTTP + websocket client (aiohttp, like ComfyUI's own example scripts)."""
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def fx() -> Callable[[str], dict[str, Any]]:
    """A recorded ComfyUI exchange by name (skips when the fixtures are absent)."""
    if recorded.fixtures_dir() is None:
        pytest.skip(recorded.missing_message())
    return recorded.load
