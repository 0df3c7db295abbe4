"""Fit and capacity: the claims Spark owners make, checked."""

from __future__ import annotations

import pytest

from sparkplane.planner import (
    Load,
    builtin_profiles,
    fit_together,
    llm_memory,
    load_catalog,
    max_context,
    max_sequences,
    parse_quant,
    plan,
    prepare,
    spec_from_numbers,
)
from sparkplane.planner.diffusion import diffusion_memory

P = builtin_profiles()


def _devices(model: str, quant: str) -> dict[str, bool]:
    p = plan(
        load_catalog().get(model).spec(), devices=["dgx-spark", "rtx-4090", "rtx-5090"], quant=quant
    )
    return {d.device: d.fits for d in p.devices}


def test_a_70b_model_fits_only_the_spark() -> None:
    assert _devices("llama-3.1-70b", "fp8") == {
        "dgx-spark": True,
        "rtx-4090": False,
        "rtx-5090": False,
    }
    assert _devices("llama-3.1-70b", "bf16")["dgx-spark"] is False  # 141 GB of weights


def test_200b_parameters_fit_at_fp4_not_at_fp8() -> None:
    spec = spec_from_numbers(200)
    fp4 = plan(spec, devices="dgx-spark", quant="nvfp4", context=4096).devices[0]
    fp8 = plan(spec, devices="dgx-spark", quant="fp8", context=4096).devices[0]
    assert fp4.fits
    assert not fp8.fits
    assert fp4.headroom_bytes == fp4.usable_bytes - fp4.memory.total


def test_max_context_fills_the_headroom() -> None:
    spec = prepare(load_catalog().get("llama-3.1-70b").spec(), parse_quant("q4_k_m"), "llama.cpp")
    spark, l40s = P["dgx-spark"], P["l40s"]
    assert max_context(spec, spark, "llama.cpp", "fp16") == 131072  # the model's own limit
    ctx = max_context(spec, l40s, "llama.cpp", "fp16")
    assert 0 < ctx < 131072
    assert llm_memory(spec, "llama.cpp", ctx, 1, "fp16").total <= l40s.usable_bytes
    assert llm_memory(spec, "llama.cpp", ctx + 1, 1, "fp16").total > l40s.usable_bytes
    assert max_context(spec, P["rtx-4090"], "llama.cpp", "fp16") == 0


def test_max_sequences_at_a_context() -> None:
    spec = prepare(load_catalog().get("llama-3.1-8b").spec(), parse_quant("fp8"), "vllm")
    n = max_sequences(spec, P["rtx-4090"], "vllm", "fp16", 8192)
    assert n >= 10
    assert llm_memory(spec, "vllm", 8192, n, "fp16").total <= P["rtx-4090"].usable_bytes
    assert llm_memory(spec, "vllm", 8192, n + 1, "fp16").total > P["rtx-4090"].usable_bytes


def test_sdxl_flux_and_controlnet_stay_loaded_together_on_the_spark() -> None:
    cat = load_catalog()
    loads = [
        Load(n, diffusion_memory(cat.get(n).spec(), None, 1024, 1024, 1), shared_process=True)
        for n in ("sdxl", "flux.1-dev", "controlnet-sdxl")
    ]
    spark = fit_together(P["dgx-spark"], loads)
    assert spark.fits
    assert spark.total_bytes < 128e9
    assert not fit_together(P["rtx-4090"], loads).fits
    weights = sum(m.bytes for m in spark.members)
    assert spark.total_bytes == weights + spark.shared_bytes


def test_llm_loads_each_keep_their_runtime() -> None:
    spec = prepare(load_catalog().get("llama-3.1-8b").spec(), parse_quant("q4_k_m"), "llama.cpp")
    m = llm_memory(spec, "llama.cpp", 8192, 1, "fp16")
    g = fit_together(P["rtx-4090"], [Load("a", m), Load("b", m)])
    assert g.total_bytes == 2 * m.total
    assert g.fits == (2 * m.total <= P["rtx-4090"].usable_bytes)


@pytest.mark.parametrize("model", ["gpt-oss-120b", "qwen3-235b-a22b"])
def test_plan_with_together(model: str) -> None:
    cat = load_catalog()
    p = plan(
        cat.get(model).spec(),
        devices=["dgx-spark"],
        quant="q4_k_m",
        together=[cat.get("bge-m3").spec()],
    )
    g = p.together[0]
    assert [m.name for m in g.members] == [model, "bge-m3"]
    assert g.total_bytes == sum(m.bytes for m in g.members)
