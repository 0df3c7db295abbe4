"""Pytest fixtures for tests that need fake ComfyUI servers.

Import them where needed, e.g. in a conftest.py:
`from tests.fakes.comfyui.pytest_plugin import comfy_fake, comfy_fake_factory`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.fakes.comfyui.config import FakeComfyConfig
from tests.fakes.comfyui.server import FakeComfyUI

FakeFactory = Callable[..., Awaitable[FakeComfyUI]]


@pytest.fixture
async def comfy_fake() -> AsyncIterator[FakeComfyUI]:
    """A started fake with the default (recorded) configuration."""
    async with FakeComfyUI() as fake:
        yield fake


@pytest.fixture
async def comfy_fake_factory() -> AsyncIterator[FakeFactory]:
    """make(config) -> a started fake; all of them are closed after the test."""
    fakes: list[FakeComfyUI] = []

    async def make(config: FakeComfyConfig | None = None) -> FakeComfyUI:
        fake = FakeComfyUI(config)
        await fake.start()
        fakes.append(fake)
        return fake

    yield make
    for fake in fakes:
        await fake.close()
