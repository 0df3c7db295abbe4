"""KV cache: GQA, sliding windows, MLA latents, dtypes."""

from __future__ import annotations

import pytest

from sparkplane.planner import InvalidRequestError, kv_cache_bytes, load_catalog
from sparkplane.planner.kv import parse_kv_dtype


def _arch(name: str):  # type: ignore[no-untyped-def]
    a = load_catalog().get(name).arch
    assert a is not None
    return a


def test_grouped_query_attention_formula() -> None:
    # 32 layers x 8 KV heads x 128 dims x (K, V) x 2 bytes x 8192 tokens = 1 GiB
    assert kv_cache_bytes(_arch("llama-3.1-8b"), 8192, 1, "fp16") == 1 << 30
    assert kv_cache_bytes(_arch("llama-3.1-8b"), 8192, 4, "fp16") == 4 << 30
    assert kv_cache_bytes(_arch("llama-3.1-8b"), 8192, 1, "fp8") == 1 << 29


def test_sliding_window_layers_stop_growing() -> None:
    g = _arch("gemma-3-27b")
    short, long = kv_cache_bytes(g, 1024, 1, "fp16"), kv_cache_bytes(g, 131072, 1, "fp16")
    # Only the 10 global layers of 62 grow past the 1024-token window.
    assert long / short == pytest.approx((10 * 131072 + 52 * 1024) / (62 * 1024))


def test_mla_caches_one_latent_per_layer() -> None:
    ds = _arch("deepseek-v3")
    assert kv_cache_bytes(ds, 1000, 1, "bf16") == 61 * (512 + 64) * 2 * 1000


def test_encoders_keep_no_cache() -> None:
    assert kv_cache_bytes(_arch("bge-m3"), 8192, 8, "fp16") == 0


def test_kv_dtypes() -> None:
    assert parse_kv_dtype(None) == "fp16"
    assert parse_kv_dtype("Q8_0") == "q8_0"
    with pytest.raises(InvalidRequestError):
        parse_kv_dtype("int3")
