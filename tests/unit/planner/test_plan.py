"""plan(): one call, every device, breakdowns included, JSON-ready, errors on bad input."""

from __future__ import annotations

import json

import pytest

from sparkplane.planner import (
    InvalidRequestError,
    UnknownDeviceError,
    load_catalog,
    plan,
    plan_to_dict,
    profiles_with,
    spec_from_numbers,
)


def _spec(name: str):  # type: ignore[no-untyped-def]
    return load_catalog().get(name).spec()


def test_plans_every_profile_by_default_and_is_json_ready() -> None:
    p = plan(_spec("qwen3-30b-a3b"), quant="q4_k_m")
    assert len(p.devices) >= 9
    d = plan_to_dict(p)
    text = json.dumps(d)
    assert "kv_cache" in text
    spark = next(x for x in d["devices"] if x["device"] == "dgx-spark")
    assert spark["memory"]["total"] == sum(i["bytes"] for i in spark["memory"]["items"])
    assert spark["decode"]["tokens_per_s"] > 0
    assert spark["efficiency"]["basis"].startswith("fitted")
    assert d["model"]["params_active"] < d["model"]["params_total"]


def test_engine_defaults() -> None:
    assert plan(_spec("llama-3.1-8b"), devices="dgx-spark").engine == "vllm"
    assert plan(_spec("llama-3.1-8b"), devices="dgx-spark", quant="q4_k_m").engine == "llama.cpp"
    mac = plan(_spec("llama-3.1-8b"), devices="m3-ultra").devices[0]
    assert mac.engine == "llama.cpp"
    assert mac.decode is not None
    forced = plan(_spec("llama-3.1-8b"), devices="m3-ultra", engine="vllm").devices[0]
    assert not forced.engine_supported
    assert forced.decode is None
    assert any("does not run" in n for n in forced.notes)


def test_vllm_plans_suggest_a_memory_fraction() -> None:
    d = plan(_spec("llama-3.1-8b"), devices="h100-80gb", engine="vllm").devices[0]
    assert any("--gpu-memory-utilization" in n for n in d.notes)


def test_custom_profiles_are_planned() -> None:
    profiles = profiles_with(
        [{"id": "my-3090", "memory_gib": 24, "bandwidth_gbs": 936, "tflops": {"bf16": 71}}]
    )
    d = plan(_spec("llama-3.1-8b"), profiles=profiles, devices="my-3090", quant="q4_k_m")
    assert d.devices[0].fits
    assert d.devices[0].decode is not None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"context": 0},
        {"sequences": 10**6},
        {"quant": "q9_9"},
        {"engine": "tgi2"},
        {"kv_dtype": "fp2"},
        {"width": 10},
    ],
)
def test_bad_requests(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidRequestError):
        plan(_spec("llama-3.1-8b"), devices="dgx-spark", **kwargs)  # type: ignore[arg-type]


def test_unknown_device() -> None:
    with pytest.raises(UnknownDeviceError):
        plan(_spec("llama-3.1-8b"), devices="rtx-9090")


def test_embedding_models_report_throughput_not_decode() -> None:
    d = plan(_spec("bge-m3"), devices="rtx-4090", sequences=32).devices[0]
    assert d.fits
    assert d.prefill
    assert d.decode is None
    assert d.memory.get("kv_cache") == 0


def test_numbers_only_model_says_what_it_assumed() -> None:
    p = plan(spec_from_numbers(120, 12), devices="dgx-spark", quant="q4_k_m")
    assert p.model.assumed
    assert any("assumed" in n for n in p.devices[0].notes)
    exact = plan(spec_from_numbers(8, layers=32, kv_heads=8, head_dim=128), devices="dgx-spark")
    assert exact.model.kv_bytes_per_token == 32 * 8 * 128 * 2 * 2
