"""What OpenAI-compatible engines say about their memory, and how they are steered
(pure functions; `openai_compat.py` does the calls). Each engine offers its own:

- llama.cpp router mode (`llama-server` without a model): `GET /models` lists every
  model with `status.value` ("loaded", "loading", "unloaded", "sleeping"; a failed
  load says `failed` and `exit_code`); `POST /models/load` and `/models/unload`
  with `{"model": id}` answer `{"success": true}` and act in the background.
- llama.cpp with one model: `GET /props` (model_path, total_slots, is_sleeping,
  default_generation_settings.n_ctx) and `GET /slots` (is_processing per slot);
  `/v1/models` gives the model's bytes in `meta.size`. It cannot load or unload.
- vLLM: `GET /metrics` (Prometheus text, kv_cache_usage_perc, or
  gpu_cache_usage_perc before v0.10); in dev mode only (VLLM_SERVER_DEV_MODE=1)
  `POST /sleep?level=1` (weights to host memory), `POST /wake_up`, `GET /is_sleeping`.
- llama-cpp-python's server (`llama_cpp.server`): `/v1/models` lists every model of
  its config file, but it holds one at a time, the first at start-up, and switches
  on the first request naming another (an unknown name silently means the first).
  A `POST /extras/tokenize` naming a model is the cheapest way to switch.
- Anything else: every model `/v1/models` lists counts as resident.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sparkplane.backends.residency import LoadedModel, Residency


class Controls(StrEnum):
    """The memory controls an engine was found to offer."""

    ROUTER = "llama.cpp router"
    LLAMA_CPP = "llama.cpp"
    VLLM_SLEEP = "vllm sleep"
    VLLM = "vllm"
    LLAMA_CPP_PYTHON = "llama-cpp-python"
    NONE = "none"


def is_router_models(data: object) -> bool:
    """Whether a `GET /models` answer is llama.cpp router mode's (entries with status)."""
    entries = model_entries(data)
    return bool(entries) and all(isinstance(e.get("status"), dict) for e in entries)


def is_llama_props(data: object) -> bool:
    """Whether a `GET /props` answer is llama.cpp's."""
    return isinstance(data, dict) and "total_slots" in data and "model_path" in data


def is_llama_cpp_python(openapi: object) -> bool:
    """Whether an `/openapi.json` is llama-cpp-python's server."""
    info = openapi.get("info") if isinstance(openapi, dict) else None
    return isinstance(info, dict) and "llama.cpp Python" in str(info.get("title", ""))


def model_entries(data: object) -> list[dict[str, Any]]:
    """The `data` entries of a model list that have an id."""
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        return [m for m in data["data"] if isinstance(m, dict) and "id" in m]
    return []


def router_status(data: object) -> dict[str, dict[str, Any]]:
    """Model id -> its `status` object, from a router's `GET /models`."""
    return {
        str(e["id"]): e["status"] for e in model_entries(data) if isinstance(e.get("status"), dict)
    }


def parse_router(data: object) -> Residency:
    """Router mode: the models whose status is "loaded" are resident."""
    statuses = router_status(data)
    loaded = tuple(LoadedModel(m) for m, s in statuses.items() if s.get("value") == "loaded")
    detail: dict[str, object] = {
        "source": "llama.cpp /models",
        "status": {m: s.get("value") for m, s in statuses.items()},
    }
    return Residency(loaded=loaded, detail=detail)


def parse_llama(props: object, slots: object, models: object) -> Residency:
    """One-model llama.cpp: its model is resident unless the server sleeps."""
    props = props if isinstance(props, dict) else {}
    settings = props.get("default_generation_settings")
    busy = (
        [s for s in slots if isinstance(s, dict) and s.get("is_processing")]
        if isinstance(slots, list)
        else []
    )
    detail: dict[str, object] = {
        "source": "llama.cpp /props",
        "model_path": props.get("model_path"),
        "total_slots": props.get("total_slots"),
        "busy_slots": len(busy) if isinstance(slots, list) else None,
        "n_ctx": settings.get("n_ctx") if isinstance(settings, dict) else None,
        "is_sleeping": bool(props.get("is_sleeping", False)),
    }
    if detail["is_sleeping"]:
        return Residency(detail=detail)
    loaded = []
    for entry in model_entries(models):
        meta = entry.get("meta")
        size = meta.get("size") if isinstance(meta, dict) else None
        loaded.append(LoadedModel(str(entry["id"]), bytes=size if isinstance(size, int) else None))
    return Residency(loaded=tuple(loaded), detail=detail)


def listed(models: object, source: str, **detail: object) -> Residency:
    """Every model `/v1/models` lists is resident."""
    loaded = tuple(LoadedModel(str(e["id"])) for e in model_entries(models))
    return Residency(loaded=loaded, detail={"source": source, **detail})


def prometheus_values(text: str, names: tuple[str, ...]) -> dict[str, float]:
    """The first sample of each metric in `names` from Prometheus text (labels ignored)."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in names and name not in found:
            try:
                found[name] = float(line.rsplit(" ", 1)[-1])
            except ValueError:
                continue
    return found


KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")


def vllm_kv_usage(text: str) -> float | None:
    """The fraction of vLLM's KV cache in use, from its /metrics."""
    values = prometheus_values(text, KV_USAGE)
    for name in KV_USAGE:
        if name in values:
            return values[name]
    return None
