"""Inference engines: their memory overheads and their fitted efficiency factors.

Efficiency factors (``data/efficiency.toml``) are fitted on published
measurements by ``bench/planner_accuracy.py --fit``: bandwidth share and
per-layer overhead per engine and device kind, compute share per kernel family
(:func:`kernel_family`), never per model; see docs/planner.md. A set with no
rows of its own is a stored prior (``data/sources.toml``) or its pool's factors.
Lookups fall back from (engine, device kind) to (engine, any kind) to (any
engine, kind) to the pooled fit over all rows.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from .errors import InvalidRequestError

GIB = 1 << 30


@dataclass(frozen=True)
class EngineProfile:
    """Memory an engine adds besides weights and KV cache.

    ``runtime_gib``: CUDA/Metal context, allocator slack, CUDA graphs.
    ``batch_tokens``: tokens per forward pass in prefill (llama.cpp's ubatch,
    vLLM's and SGLang's chunked-prefill size); activation buffers scale with it.
    """

    name: str
    runtime_gib: float
    batch_tokens: int
    gguf: bool


ENGINE_PROFILES: dict[str, EngineProfile] = {
    "llama.cpp": EngineProfile("llama.cpp", 0.4, 512, True),
    "ollama": EngineProfile("ollama", 0.6, 512, True),
    "vllm": EngineProfile("vllm", 2.0, 2048, False),
    "sglang": EngineProfile("sglang", 2.0, 2048, False),
    "trt-llm": EngineProfile("trt-llm", 1.0, 2048, False),
}


def kernel_family(engine: str) -> str:
    """The matmul kernels ``engine`` runs, which set its prefill efficiency.

    Ollama runs llama.cpp's ggml kernels; vLLM, SGLang and TRT-LLM run the CUDA
    libraries' (cuBLAS, CUTLASS, FlashInfer, Marlin). One compute share is fitted
    per family, so an engine without prefill rows borrows its family's.
    """
    profile = ENGINE_PROFILES.get(engine)
    if profile is None:
        return engine
    return "ggml" if profile.gguf else "cuda"


def parse_engine(text: str) -> str:
    """The canonical engine name for ``text`` (``llama.cpp b6918`` -> ``llama.cpp``)."""
    low = text.strip().lower()
    for prefix, name in (
        ("llama.cpp", "llama.cpp"),
        ("llamacpp", "llama.cpp"),
        ("llama-cpp", "llama.cpp"),
        ("llama_cpp", "llama.cpp"),
        ("ollama", "ollama"),
        ("vllm", "vllm"),
        ("sglang", "sglang"),
        ("trt-llm", "trt-llm"),
        ("trtllm", "trt-llm"),
        ("tensorrt", "trt-llm"),
    ):
        if low.startswith(prefix):
            return name
    known = ", ".join(ENGINE_PROFILES)
    raise InvalidRequestError(f"unknown engine {text!r}; use one of: {known}", param="engine")


@dataclass(frozen=True)
class Efficiency:
    """How close an engine gets to a device's peaks.

    ``bandwidth``: share of peak memory bandwidth decode achieves.
    ``layer_overhead_us``: fixed time per layer per decode step (kernel launches,
    synchronisation), which is what keeps small models from reaching the bandwidth
    bound on fast GPUs. ``compute``: share of dense tensor peak in prefill.

    ``decode_spread`` and ``prefill_spread`` are the (low, high) ratios of
    measured to predicted speed seen when each source was predicted by a fit
    made without it (leave-one-source-out, 10th and 90th percentile): an
    estimate ``x`` is "likely ``x * low`` to ``x * high``". ``sources`` names
    the measurements the factors rest on.
    """

    bandwidth: float
    layer_overhead_us: float
    compute: float
    basis: str
    decode_spread: tuple[float, float] = (1.0, 1.0)
    prefill_spread: tuple[float, float] = (1.0, 1.0)
    sources: tuple[str, ...] = ()


def _pair(value: object) -> tuple[float, float]:
    if isinstance(value, list) and len(value) == 2:
        return float(value[0]), float(value[1])
    return 1.0, 1.0


@cache
def _table() -> dict[tuple[str, str], Efficiency]:
    raw = resources.files("sparkplane.planner").joinpath("data/efficiency.toml").read_bytes()
    doc = tomllib.loads(raw.decode("utf-8"))
    out: dict[tuple[str, str], Efficiency] = {}
    for f in doc.get("factor", ()):
        key = (str(f["engine"]), str(f["device_kind"]))
        rows = int(f.get("rows", 0))
        if rows:
            basis = f"fitted: {key[0]} on {key[1]} ({rows} rows)"
        elif "prior" in f:
            basis = f"prior: {key[0]} on {key[1]} (from {f['prior']})"
        else:
            basis = f"pooled: {key[0]} on {key[1]} (no rows of its own; its kind's compute share)"
        out[key] = Efficiency(
            float(f["bandwidth"]),
            float(f["layer_overhead_us"]),
            float(f["compute"]),
            basis,
            _pair(f.get("decode_spread")),
            _pair(f.get("prefill_spread")),
            tuple(str(x) for x in f.get("sources", ())),
        )
    return out


def fitted_factors() -> dict[tuple[str, str], Efficiency]:
    """Every stored factor set, keyed by (engine, device kind); ``*`` marks a pool."""
    return dict(_table())


def efficiency(engine: str, device_kind: str) -> Efficiency:
    """The fitted factors for ``engine`` on a ``device_kind`` device, with fallbacks."""
    table = _table()
    for key in ((engine, device_kind), (engine, "*"), ("*", device_kind), ("*", "*")):
        if key in table:
            return table[key]
    return Efficiency(0.7, 20.0, 0.3, "default (no fitted factors)")
