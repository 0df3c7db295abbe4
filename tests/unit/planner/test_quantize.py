"""Per-tensor precision: llama.cpp's mixes, fallbacks, and which tensors stay 16-bit."""

from __future__ import annotations

import pytest

from sparkplane.planner import load_catalog, parse_quant, quantize_spec
from sparkplane.planner.quantize import describe_formats
from sparkplane.planner.tensors import Role


def _q(model: str, quant: str, engine: str | None = None):  # type: ignore[no-untyped-def]
    return quantize_spec(load_catalog().get(model).spec(), parse_quant(quant), engine)


def test_q4_k_m_gives_more_bits_to_output_and_half_the_v_and_down_layers() -> None:
    spec = _q("llama-3.1-8b", "q4_k_m")
    by = {t.name: t.fmt.name for t in spec.tensors}
    assert by["output.weight"] == "q6_k"
    assert by["token_embd.weight"] == "q4_k"
    assert by["blk.0.attn_q.weight"] == "q4_k"
    v6 = sum(1 for n, f in by.items() if n.endswith("attn_v.weight") and f == "q6_k")
    d6 = sum(1 for n, f in by.items() if n.endswith("ffn_down.weight") and f == "q6_k")
    assert v6 == d6 == 16  # first and last eighth, and every third layer between
    assert by["blk.0.attn_norm.weight"] == "fp32"


@pytest.mark.parametrize(
    ("model", "quant", "published_gb"),
    [
        # File sizes of widely used GGUF files (decimal GB).
        ("llama-3.1-8b", "q4_k_m", 4.92),
        ("llama-3.1-8b", "q8_0", 8.54),
        ("llama-3.1-70b", "q4_k_m", 42.5),
        ("qwen2.5-14b", "q4_k_m", 8.99),
        ("qwen3-30b-a3b", "q8_0", 32.48),
    ],
)
def test_gguf_sizes_match_published_files(model: str, quant: str, published_gb: float) -> None:
    assert _q(model, quant).weight_bytes / 1e9 == pytest.approx(published_gb, rel=0.01)


def test_rows_that_are_not_whole_k_blocks_fall_back() -> None:
    # gpt-oss has 2880-wide rows: not a multiple of 256, so Q4_K becomes Q5_0.
    spec = _q("gpt-oss-20b", "q4_k_m")
    by = {t.name: t.fmt.name for t in spec.tensors}
    assert by["blk.0.attn_q.weight"] == "q5_0"
    assert by["output.weight"] == "q8_0"
    # Experts shipped as MXFP4 are kept.
    assert by["blk.0.ffn_gate_exps.weight"] == "mxfp4"


def test_llama_cpp_loads_mxfp4_as_mxfp4_moe() -> None:
    gguf = _q("gpt-oss-120b", "mxfp4", engine="llama.cpp")
    hf = _q("gpt-oss-120b", "mxfp4", engine="vllm")
    assert set(describe_formats(gguf.tensors)) == {"mxfp4", "q8_0", "fp32"}
    assert set(describe_formats(hf.tensors)) == {"mxfp4", "bf16"}
    assert gguf.weight_bytes < hf.weight_bytes


def test_plain_precisions_keep_embeddings_and_head_in_bf16() -> None:
    spec = _q("llama-3.1-70b", "fp8")
    for t in spec.tensors:
        if t.role in {Role.EMBED, Role.OUTPUT}:
            assert t.fmt.name == "bf16"
        elif t.is_matrix:
            assert t.fmt.name == "fp8"
    nvfp4 = _q("llama-3.1-70b", "nvfp4")
    assert nvfp4.weight_bytes < spec.weight_bytes * 0.6


def test_native_precision_of_catalog_models() -> None:
    oss = load_catalog().get("gpt-oss-20b").spec()
    fmts = {t.fmt.name for t in oss.tensors if t.role in {Role.EXPERT, Role.EXPERT_DOWN}}
    assert fmts == {"mxfp4", "bf16"}  # blocks in MXFP4, expert biases in BF16
    assert {t.fmt.name for t in oss.tensors if t.role is Role.ATTN_Q} == {"bf16"}
    ds = load_catalog().get("deepseek-v3").spec()
    assert ds.weight_bytes / 1e9 == pytest.approx(ds.params_total / 1e9, rel=0.02)


def test_every_gguf_type_produces_a_smaller_model_than_bf16() -> None:
    base = load_catalog().get("qwen3-8b").spec()
    for name in [
        "q8_0",
        "q6_k",
        "q5_k_m",
        "q4_k_m",
        "q4_k_s",
        "q3_k_m",
        "q2_k",
        "iq4_xs",
        "iq2_xxs",
    ]:
        q = quantize_spec(base, parse_quant(name))
        assert q.weight_bytes < base.weight_bytes, name
        assert q.params_total == base.params_total
