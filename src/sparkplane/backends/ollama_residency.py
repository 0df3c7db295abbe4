"""Ollama's memory, read and steered (pure functions, no I/O; `ollama.py` does the calls).

- `GET /api/ps` lists the models in memory: `size` (bytes they take, weights and
  KV cache), `size_vram` (of which on the GPU), `expires_at` (when Ollama drops
  the model on its own), `context_length`. Ollama reports no device totals.
- A `POST /api/generate` naming only a model (no prompt) loads it and answers
  `done_reason: "load"`; with `keep_alive: 0` it unloads it (`"unload"`).

keep_alive: every Ollama request sets how long the model stays loaded after it
(default 5 minutes, OLLAMA_KEEP_ALIVE). sparkplane decides evictions itself, so
the adapter loads with keep_alive -1 (forever) and repeats it on the requests
for the models it loaded: otherwise Ollama would drop idle models behind the
scheduler's back and the next request would pay a cold load the plan did not count.
"""

from __future__ import annotations

import time
from typing import Any

from sparkplane.backends.residency import LoadedModel, Residency

KeepAlive = str | float
FOREVER: KeepAlive = -1


def keep_alive_value(value: KeepAlive) -> KeepAlive:
    """The keep_alive to send: a number of seconds as a number, a duration as is.

    Ollama parses a JSON string as a Go duration ("10m", "-1m"), which must carry
    a unit: the string "-1" a setting gives would be refused, so it is sent as -1.
    """
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return value.strip()
        return int(number) if number.is_integer() else number
    return value


def full_name(model: str) -> str:
    """Ollama's full name for a model: the tag defaults to `latest`."""
    return model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"


def parse_ps(data: object) -> Residency:
    """The residency an `/api/ps` answer describes (models only: Ollama gives no totals)."""
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise ValueError("Ollama's /api/ps answer has no 'models' list")
    loaded: list[LoadedModel] = []
    contexts: dict[str, int] = {}
    for entry in data["models"]:
        if not isinstance(entry, dict):
            continue
        name = entry.get("name") or entry.get("model")
        if not isinstance(name, str) or not name:
            continue
        expires = entry.get("expires_at")
        loaded.append(
            LoadedModel(
                name=name,
                bytes=_count(entry.get("size")),
                device_bytes=_count(entry.get("size_vram")),
                expires_at=expires if isinstance(expires, str) else None,
            )
        )
        context = _count(entry.get("context_length"))
        if context is not None:
            contexts[name] = context
    detail: dict[str, object] = {"source": "ollama /api/ps"}
    if contexts:
        detail["context_length"] = contexts
    return Residency(loaded=tuple(loaded), detail=detail)


def kept_for_years(model: LoadedModel) -> bool:
    """Whether Ollama keeps `model` for years: loaded with a negative keep_alive."""
    stamp = model.expires_at or ""
    year = stamp[:4]
    return year.isdigit() and int(year) > time.gmtime().tm_year + 1


def control_body(model: str, keep_alive: KeepAlive) -> dict[str, Any]:
    """The `/api/generate` body that loads `model` (or unloads it with keep_alive 0)."""
    return {"model": model, "keep_alive": keep_alive_value(keep_alive)}


def check_done(data: object, expected: str) -> None:
    """Raise ValueError unless a 200 answer is Ollama's load or unload acknowledgement."""
    if not isinstance(data, dict) or data.get("done") is not True:
        raise ValueError("Ollama's answer is not a finished generate response")
    reason = data.get("done_reason")
    if reason is not None and reason != expected:
        raise ValueError(f"Ollama answered done_reason {reason!r}, not {expected!r}")


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return int(value)
