"""Speed: decode is bandwidth-bound (MoE reads only active experts), prefill compute-bound."""

from __future__ import annotations

import pytest

from sparkplane.planner import (
    Efficiency,
    builtin_profiles,
    decode,
    load_catalog,
    parse_quant,
    plan,
    prefill,
    prepare,
    profiles_with,
)
from sparkplane.planner.speed import active_params, expert_fraction, weight_bytes_per_step

SPARK = builtin_profiles()["dgx-spark"]
EFF = Efficiency(0.8, 0.0, 0.5, "test")


def _spec(name: str, quant: str | None = None, engine: str = "llama.cpp"):  # type: ignore[no-untyped-def]
    return prepare(load_catalog().get(name).spec(), parse_quant(quant) if quant else None, engine)


def test_decode_scales_with_bandwidth() -> None:
    spec = _spec("llama-3.1-70b", "q4_k_m")
    fast = profiles_with([{"id": "dgx-spark", "bandwidth_gbs": 546}])["dgx-spark"]
    slow = decode(spec, SPARK, EFF, 1024, 1, "fp16").tokens_per_s
    assert decode(spec, fast, EFF, 1024, 1, "fp16").tokens_per_s == pytest.approx(
        2 * slow, rel=0.01
    )
    assert slow == pytest.approx(273e9 * 0.8 / weight_bytes_per_step(spec), rel=0.05)


def test_moe_reads_only_active_experts() -> None:
    moe = _spec("qwen3-30b-a3b", "q8_0")
    step = weight_bytes_per_step(moe)
    assert step < moe.weight_bytes * 0.15
    assert expert_fraction(moe, 1) == pytest.approx(8 / 128)
    # Sixteen sequences pick more distinct experts than one does.
    assert weight_bytes_per_step(moe, 16) > 5 * step
    dense = _spec("qwen2.5-32b", "q8_0")
    assert (
        decode(moe, SPARK, EFF, 1024, 1, "fp16").tokens_per_s
        > 5 * decode(dense, SPARK, EFF, 1024, 1, "fp16").tokens_per_s
    )


def test_embedding_lookup_is_not_read_but_tied_head_is() -> None:
    untied = _spec("llama-3.1-8b", "bf16", "vllm")
    embed = next(t for t in untied.tensors if t.name == "token_embd.weight")
    assert weight_bytes_per_step(untied) == untied.weight_bytes - embed.nbytes
    tied = _spec("llama-3.2-1b", "bf16", "vllm")
    assert weight_bytes_per_step(tied) == tied.weight_bytes


def test_rtx_4090_decodes_a_small_model_faster_than_the_spark() -> None:
    p = plan(
        load_catalog().get("llama-3.1-8b").spec(), devices=["dgx-spark", "rtx-4090"], quant="q4_k_m"
    )
    spark, rtx = p.devices
    assert spark.decode
    assert rtx.decode
    assert rtx.decode.tokens_per_s > 2.5 * spark.decode.tokens_per_s


def test_batching_raises_total_and_lowers_per_sequence_speed() -> None:
    spec = _spec("llama-3.1-8b", "fp8", "vllm")
    one = decode(spec, SPARK, EFF, 2048, 1, "fp16")
    many = decode(spec, SPARK, EFF, 2048, 16, "fp16")
    assert many.total_tokens_per_s > 4 * one.total_tokens_per_s
    assert many.tokens_per_s < one.tokens_per_s


def test_long_context_slows_decode_through_kv_reads() -> None:
    spec = _spec("llama-3.1-8b", "q4_k_m")
    short = decode(spec, SPARK, EFF, 1024, 1, "fp16")
    long = decode(spec, SPARK, EFF, 131072, 1, "fp16")
    assert long.kv_bytes_per_step > 100 * short.kv_bytes_per_step
    assert long.tokens_per_s < short.tokens_per_s * 0.5


def test_prefill_is_compute_bound_and_faster_at_lower_precision() -> None:
    bf16 = _spec("llama-3.1-70b", "bf16", "vllm")
    fp8 = _spec("llama-3.1-70b", "fp8", "vllm")
    h100 = builtin_profiles()["h100-80gb"]
    a, b = prefill(bf16, h100, EFF, 4096, "vllm"), prefill(fp8, h100, EFF, 4096, "vllm")
    assert a.bound == "compute"
    assert (a.compute_precision, b.compute_precision) == ("bf16", "fp8")
    assert b.tokens_per_s > 1.7 * a.tokens_per_s
    assert a.tokens_per_s > 50 * decode(bf16, h100, EFF, 4096, 1, "fp16").tokens_per_s


def test_batch_eight_decodes_more_in_total_than_batch_one() -> None:
    # Weights are read once per step for the whole batch; each sequence adds its
    # KV cache and its math, so the total grows and each sequence slows down.
    spec = _spec("qwen2.5-7b", "q8_0")
    one = decode(spec, SPARK, EFF, 528, 1, "fp16", "llama.cpp")
    eight = decode(spec, SPARK, EFF, 528, 8, "fp16", "llama.cpp")
    assert eight.weight_bytes_per_step == one.weight_bytes_per_step
    assert eight.kv_bytes_per_step == 8 * one.kv_bytes_per_step
    assert 4 * one.total_tokens_per_s < eight.total_tokens_per_s < 8 * one.total_tokens_per_s
    assert eight.tokens_per_s < one.tokens_per_s


def test_a_large_batch_is_bound_by_compute() -> None:
    spec = _spec("llama-3.1-8b", "fp8", "vllm")
    h100 = builtin_profiles()["h100-80gb"]
    one = decode(spec, h100, EFF, 0, 1, "fp16", "vllm")
    big = decode(spec, h100, EFF, 0, 4096, "fp16", "vllm")
    assert one.memory_ms > 10 * one.compute_ms
    assert big.compute_ms > 10 * big.memory_ms
    # The total approaches, and never passes, the tensor peak's share / FLOPs per token.
    _, tflops = h100.compute("fp8")
    ceiling = tflops * 1e12 * EFF.compute / (big.flops_per_step / 4096)
    assert 0.9 * ceiling < big.total_tokens_per_s < ceiling


def test_prefill_scales_with_active_parameters() -> None:
    h100 = builtin_profiles()["h100-80gb"]
    small = _spec("llama-3.1-8b", "fp8", "vllm")
    large = _spec("llama-3.1-70b", "fp8", "vllm")
    moe = _spec("gpt-oss-120b", None, "vllm")
    rate = {
        name: prefill(s, h100, EFF, 4096, "vllm").tokens_per_s
        for name, s in (("8b", small), ("70b", large), ("moe", moe))
    }
    ratio = active_params(large) / active_params(small)
    assert rate["8b"] / rate["70b"] == pytest.approx(ratio, rel=0.15)
    # An MoE prefills at the pace of its active parameters, not its total.
    assert rate["moe"] > 4 * rate["70b"]


def test_prefill_rereads_the_weights_once_per_forward_pass() -> None:
    moe = _spec("gpt-oss-120b", "mxfp4", "llama.cpp")
    one = prefill(moe, SPARK, EFF, 2048, "llama.cpp", chunk_tokens=2048)
    four = prefill(moe, SPARK, EFF, 2048, "llama.cpp", chunk_tokens=512)
    assert four.tokens_per_s < 0.8 * one.tokens_per_s
    # Many short prompts share a pass: 32 prompts of 512 beat one of 512.
    alone = prefill(moe, SPARK, EFF, 512, "llama.cpp", chunk_tokens=2048)
    shared = prefill(moe, SPARK, EFF, 512, "llama.cpp", sequences=32, chunk_tokens=2048)
    assert shared.tokens_per_s > 1.5 * alone.tokens_per_s
