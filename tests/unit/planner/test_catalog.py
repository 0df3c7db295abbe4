"""The built-in catalog: coverage, published numbers, lookups and suggestions."""

from __future__ import annotations

import pytest

from sparkplane.planner import ModelKind, UnknownModelError, active_params, load_catalog
from sparkplane.planner.specs import architecture_problem
from sparkplane.planner.tensors import Role

CATALOG = load_catalog()
LLMS = [e for e in CATALOG.entries if e.arch is not None]


def test_at_least_thirty_models_covering_the_families() -> None:
    names = set(CATALOG.names())
    assert len(names) >= 30
    required = {
        "llama-3.2-1b",
        "llama-3.1-8b",
        "llama-3.1-70b",
        "llama-3.1-405b",
        "qwen2.5-7b",
        "qwen3-32b",
        "qwen3-30b-a3b",
        "gpt-oss-20b",
        "gpt-oss-120b",
        "mixtral-8x7b",
        "deepseek-v3",
        "deepseek-r1",
        "gemma-3-27b",
        "phi-4",
        "mistral-7b",
        "sdxl",
        "sd3.5-large",
        "flux.1-dev",
        "flux.1-schnell",
        "bge-m3",
    }
    assert required <= names
    kinds = {e.kind for e in CATALOG.entries}
    assert kinds == {ModelKind.LLM, ModelKind.EMBEDDING, ModelKind.DIFFUSION}


@pytest.mark.parametrize("entry", LLMS, ids=lambda e: e.name)
def test_layout_adds_up_to_the_published_parameter_count(entry) -> None:  # type: ignore[no-untyped-def]
    assert architecture_problem(entry.arch) is None
    spec = entry.spec()
    assert entry.published_params_b is not None
    assert spec.params_total / 1e9 == pytest.approx(entry.published_params_b, rel=0.01)
    if entry.published_active_b:
        # Vendors differ on whether "active" includes the embedding table (Qwen and
        # Mistral do, OpenAI and DeepSeek do not); one of the two must match.
        active = active_params(spec) / 1e9
        embed = sum(t.params for t in spec.tensors if t.role is Role.EMBED) / 1e9
        target = entry.published_active_b
        assert any(abs(x / target - 1) < 0.03 for x in (active, active + embed)), active


def test_mla_and_sliding_window_numbers() -> None:
    ds = CATALOG.get("deepseek-r1").arch
    assert ds is not None
    assert ds.is_mla
    assert (ds.kv_lora_rank, ds.qk_rope_head_dim) == (512, 64)
    g = CATALOG.get("gemma-3-27b").arch
    assert g is not None
    local = sum(1 for i in range(g.layers) if g.is_sliding(i))
    assert (local, g.layers - local) == (52, 10)  # five local layers per global one


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("meta-llama/Llama-3.3-70B-Instruct", "llama-3.1-70b"),
        ("Llama-3.1-8B-Instruct", "llama-3.1-8b"),
        ("gpt-oss:120b", "gpt-oss-120b"),
        ("Gemma-3-4B-it (QAT)", "gemma-3-4b"),
        ("DeepSeek-R1-Distill-Qwen-14B", "qwen2.5-14b"),
        ("FLUX.1-dev", "flux.1-dev"),
    ],
)
def test_aliases_resolve(alias: str, name: str) -> None:
    assert CATALOG.get(alias).name == name


def test_unknown_name_suggests_closest() -> None:
    with pytest.raises(UnknownModelError) as info:
        CATALOG.get("llama-3.1-7b")
    assert "llama-3.1-8b" in info.value.suggestions
    assert "llama-3.1-8b" in str(info.value)
    with pytest.raises(UnknownModelError) as info2:
        CATALOG.get("qwen-3-32")
    assert "qwen3-32b" in info2.value.suggestions


def test_diffusion_pipelines_list_their_components() -> None:
    flux = CATALOG.get("flux.1-dev").spec()
    roles = [c.role for c in flux.components]
    assert roles.count("denoiser") == 1
    assert roles.count("text_encoder") == 2
    assert "vae" in roles
    assert flux.params_total / 1e9 == pytest.approx(16.9, rel=0.02)
