"""Pytest fixtures that run real llama.cpp engines (registered in tests/conftest.py).

Models (session-scoped paths, written once into the cache folder):
    tiny_llama_gguf   random tiny llama, see tests/engines/tiny_llama.py
    minilm_gguf       all-MiniLM-L6-v2 as a BERT GGUF, see tests/engines/minilm.py

Engines (started lazily, once per session, on the first test that asks):
    llama_engine          LlamaServer: tiny model as "tiny-llama", embeddings on
    llama_engine_pair     (LlamaServer, LlamaServer): two independent "tiny-llama" servers
    embedding_engine      LlamaServer: MiniLM as "minilm"
    llama_server_factory  make(model, alias, **LlamaServer options) -> started LlamaServer,
                          stopped when the test ends (for one-off settings, e.g. api_key)

Tests may stop, kill or restart the shared engines: every test gets them back
running and answering (`LlamaServer.ensure_running()`), on their usual ports.
Tests that use any of the engine fixtures are marked `engine` automatically,
so `pytest -m "not engine"` skips them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engines.llama_server import LlamaServer
from tests.engines.minilm import minilm_gguf as _write_minilm
from tests.engines.tiny_llama import TinyLlamaSpec
from tests.engines.tiny_llama import tiny_llama_gguf as _write_tiny_llama

TINY_ALIAS = "tiny-llama"
MINILM_ALIAS = "minilm"
TINY_N_CTX = 1024
MINILM_N_CTX = 512  # the model's own maximum (position embeddings)
TINY_SPEC = TinyLlamaSpec()

ENGINE_FIXTURES = frozenset(
    {"llama_engine", "llama_engine_pair", "embedding_engine", "llama_server_factory"}
)

ServerFactory = Callable[..., LlamaServer]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that (directly or through other fixtures) needs an engine."""
    for item in items:
        if ENGINE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.engine)


def _require_llama_cpp() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.fail("llama-cpp-python is not installed; run `make install-test`", pytrace=False)


def _start_all(servers: list[LlamaServer]) -> None:
    """Start servers side by side (model loading overlaps), closing them all on failure."""
    try:
        for server in servers:
            server.start(wait=False)
        for server in servers:
            server.wait_ready()
    except BaseException:
        for server in servers:
            server.close()
        raise


@pytest.fixture(scope="session")
def tiny_llama_gguf() -> Path:
    """Path of the tiny llama GGUF (TINY_SPEC)."""
    return _write_tiny_llama(TINY_SPEC)


@pytest.fixture(scope="session")
def minilm_gguf() -> Path:
    """Path of the MiniLM embedding GGUF."""
    return _write_minilm()


def _tiny_server(model: Path) -> LlamaServer:
    return LlamaServer(model, TINY_ALIAS, embedding=True, n_ctx=TINY_N_CTX)


@pytest.fixture(scope="session")
def _llama_engine_server(tiny_llama_gguf: Path) -> Iterator[LlamaServer]:
    _require_llama_cpp()
    server = _tiny_server(tiny_llama_gguf)
    _start_all([server])
    yield server
    server.close()


@pytest.fixture(scope="session")
def _llama_engine_pair_servers(tiny_llama_gguf: Path) -> Iterator[tuple[LlamaServer, LlamaServer]]:
    _require_llama_cpp()
    pair = (_tiny_server(tiny_llama_gguf), _tiny_server(tiny_llama_gguf))
    _start_all(list(pair))
    yield pair
    for server in pair:
        server.close()


@pytest.fixture(scope="session")
def _embedding_engine_server(minilm_gguf: Path) -> Iterator[LlamaServer]:
    _require_llama_cpp()
    server = LlamaServer(minilm_gguf, MINILM_ALIAS, embedding=True, n_ctx=MINILM_N_CTX)
    _start_all([server])
    yield server
    server.close()


@pytest.fixture
def llama_engine(_llama_engine_server: LlamaServer) -> LlamaServer:
    """A running llama.cpp server with the tiny model as "tiny-llama" (embeddings on)."""
    return _llama_engine_server.ensure_running()


@pytest.fixture
def llama_engine_pair(
    _llama_engine_pair_servers: tuple[LlamaServer, LlamaServer],
) -> tuple[LlamaServer, LlamaServer]:
    """Two independent running servers with the same model and alias ("tiny-llama")."""
    first, second = _llama_engine_pair_servers
    return first.ensure_running(), second.ensure_running()


@pytest.fixture
def embedding_engine(_embedding_engine_server: LlamaServer) -> LlamaServer:
    """A running llama.cpp server with all-MiniLM-L6-v2 as "minilm" (384-dim, mean pooled)."""
    return _embedding_engine_server.ensure_running()


@pytest.fixture
def llama_server_factory() -> Iterator[ServerFactory]:
    """Start extra servers with custom options; each is closed when the test ends."""
    _require_llama_cpp()
    started: list[LlamaServer] = []

    def make(model: Path, alias: str, **options: Any) -> LlamaServer:
        server = LlamaServer(model, alias, **options)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.close()
