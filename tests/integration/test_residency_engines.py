"""ResidencyControl against real engines: llama-cpp-python's server (`llama_cpp.server`)
with the suite's tiny GGUF model. It offers no memory endpoints of its own; the
adapter recognises it by its OpenAPI title and knows it holds one model at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from sparkplane.backends.http import new_session
from sparkplane.backends.openai_compat import OpenAICompatBackend
from sparkplane.backends.openai_residency import Controls
from sparkplane.backends.residency import UnsupportedControl
from sparkplane.errors import UpstreamError
from tests.engines.llama_server import LlamaServer

pytestmark = pytest.mark.engine


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with new_session() as s:
        yield s


async def test_llama_cpp_python_holds_its_model(
    llama_engine: LlamaServer, session: aiohttp.ClientSession
) -> None:
    backend = OpenAICompatBackend(llama_engine.base_url, session)
    assert await backend.controls() is Controls.LLAMA_CPP_PYTHON
    residency = await backend.residency()
    assert residency.names() == {"tiny-llama"}
    await backend.load("tiny-llama", timeout=30)  # a switch to the model it holds: instant
    assert (await backend.residency()).names() == {"tiny-llama"}


async def test_llama_cpp_python_cannot_unload_or_load_what_it_lacks(
    llama_engine_pair: tuple[LlamaServer, LlamaServer], session: aiohttp.ClientSession
) -> None:
    for server in llama_engine_pair:
        backend = OpenAICompatBackend(server.base_url, session)
        with pytest.raises(UnsupportedControl):
            await backend.unload("tiny-llama", timeout=5)
        with pytest.raises(UpstreamError, match="does not serve"):
            await backend.load("no-such-model", timeout=5)
