"""Memory: weights by precision, KV, activations and engine runtime add up."""

from __future__ import annotations

import pytest

from sparkplane.planner import llm_memory, load_catalog, parse_quant, prepare, quantize_spec
from sparkplane.planner.engines import ENGINE_PROFILES, GIB
from sparkplane.planner.kv import kv_cache_bytes


def _spec(name: str, quant: str | None = None, engine: str = "vllm"):  # type: ignore[no-untyped-def]
    base = load_catalog().get(name).spec()
    return prepare(base, parse_quant(quant) if quant else None, engine)


def test_breakdown_items_sum_to_total() -> None:
    spec = _spec("llama-3.1-70b", "fp8")
    m = llm_memory(spec, "vllm", 8192, 4, "fp16")
    assert m.total == sum(i.bytes for i in m.items)
    assert m.get("weights") == spec.weight_bytes
    assert spec.arch is not None
    assert m.get("kv_cache") == kv_cache_bytes(spec.arch, 8192, 4, "fp16")
    assert m.get("runtime") == int(ENGINE_PROFILES["vllm"].runtime_gib * GIB)
    assert all(i.detail for i in m.items)


def test_weight_bytes_follow_precision() -> None:
    base = load_catalog().get("llama-3.1-70b").spec()
    sizes = {
        q: quantize_spec(base, parse_quant(q)).weight_bytes / 1e9
        for q in ["fp32", "bf16", "fp8", "int8", "int4", "nvfp4", "mxfp4"]
    }
    assert sizes["fp32"] == pytest.approx(4 * 70.55, rel=0.01)
    assert sizes["bf16"] == pytest.approx(2 * 70.55, rel=0.01)
    # Quantized checkpoints keep embeddings and head (2 x 1.05B params) in BF16.
    assert sizes["fp8"] == pytest.approx(68.45 + 2 * 2.1, rel=0.01)
    assert sizes["fp8"] == pytest.approx(sizes["int8"])
    assert sizes["nvfp4"] == pytest.approx(68.45 * 4.5 / 8 + 4.2, rel=0.01)
    assert sizes["mxfp4"] < sizes["nvfp4"] < sizes["int4"] * 1.1


def test_more_context_or_sequences_need_more_memory() -> None:
    spec = _spec("qwen3-32b", "q4_k_m", "llama.cpp")
    a = llm_memory(spec, "llama.cpp", 4096, 1, "fp16").total
    b = llm_memory(spec, "llama.cpp", 32768, 1, "fp16").total
    c = llm_memory(spec, "llama.cpp", 4096, 8, "fp16").total
    assert a < b
    assert a < c


def test_engines_differ_in_overhead() -> None:
    spec = _spec("llama-3.1-8b", "q4_k_m", "llama.cpp")
    llama = llm_memory(spec, "llama.cpp", 8192, 1, "fp16").total
    vllm = llm_memory(spec, "vllm", 8192, 1, "fp16").total
    assert vllm > llama
