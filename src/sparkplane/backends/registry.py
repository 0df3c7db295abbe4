"""Engine kinds and how to build an adapter for each. Adding an engine is one
new module plus one entry here."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from sparkplane.backends.base import Backend
from sparkplane.backends.comfyui import ComfyUIBackend
from sparkplane.backends.ollama import OllamaBackend
from sparkplane.backends.openai_compat import OpenAICompatBackend

Factory = Callable[[str, aiohttp.ClientSession, str | None, float], Backend]


def _openai(url: str, s: aiohttp.ClientSession, key: str | None, timeout: float) -> Backend:
    return OpenAICompatBackend(url, s, api_key=key, probe_timeout=timeout)


def _ollama(url: str, s: aiohttp.ClientSession, key: str | None, timeout: float) -> Backend:
    return OllamaBackend(url, s, probe_timeout=timeout)


def _comfyui(url: str, s: aiohttp.ClientSession, key: str | None, timeout: float) -> Backend:
    return ComfyUIBackend(url, s, probe_timeout=timeout)


FACTORIES: dict[str, Factory] = {"openai": _openai, "ollama": _ollama, "comfyui": _comfyui}
# Detection order matters: Ollama also answers OpenAI's /v1/models.
DETECTION_ORDER = ("ollama", "comfyui", "openai")
KINDS = tuple(FACTORIES)


def make_backend(
    kind: str,
    url: str,
    session: aiohttp.ClientSession,
    *,
    api_key: str | None = None,
    probe_timeout: float = 3.0,
) -> Backend:
    """An adapter for a device of `kind` at `url`."""
    try:
        factory = FACTORIES[kind]
    except KeyError:
        raise ValueError(f"unknown engine kind {kind!r}; known: {', '.join(KINDS)}") from None
    return factory(url, session, api_key, probe_timeout)
