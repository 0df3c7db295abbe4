"""Turn what a user typed into a :class:`ModelSpec`.

A MODEL argument is a GGUF file, a Hugging Face model folder or a catalog name.
A model known only by its numbers (``--params-b``, ``--active-params-b``, and
optionally ``--layers``, ``--kv-heads``, ``--head-dim``) gets a Llama-shaped
layout that adds up to those numbers; every guessed number is listed in
``ModelSpec.assumed`` so the plan can say so.
"""

from __future__ import annotations

import math
from pathlib import Path

from .catalog import load_catalog
from .errors import InvalidRequestError
from .gguf_spec import spec_from_gguf
from .hf_folder import spec_from_hf_folder
from .layout import generate_tensors
from .specs import Architecture, ModelKind, ModelSpec

ASSUMED_VOCAB = 128256


def is_path_syntax(ref: str) -> bool:
    """True when ``ref`` is written like a path (no file system access)."""
    return ref.lower().endswith(".gguf") or ref.startswith((".", "/", "~")) or "\\" in ref


def looks_like_path(ref: str) -> bool:
    """True when ``ref`` names a file or folder rather than a catalog model."""
    return is_path_syntax(ref) or Path(ref).exists()


def load_model(ref: str, *, allow_paths: bool = True) -> ModelSpec:
    """The model ``ref`` names: a GGUF file, a model folder, or a catalog entry.

    With ``allow_paths=False`` (the HTTP API) only catalog names are accepted and
    the file system is never touched.
    """
    if allow_paths and looks_like_path(ref):
        p = Path(ref).expanduser()
        if p.is_dir():
            return spec_from_hf_folder(p)
        if p.is_file():
            return spec_from_gguf(p)
        raise InvalidRequestError(f"no such file or folder: {ref}", param="model")
    return load_catalog().get(ref).spec()


def _guess_layers(active_b: float) -> int:
    # Fitted by eye to dense models: 1B->16, 8B->32, 70B->80, 405B->126 layers.
    return max(1, round(17.0 * math.pow(active_b, 0.33)))


def _attn_params(h: int, heads: int, kv_heads: int, head_dim: int) -> int:
    return 2 * h * heads * head_dim + 2 * h * kv_heads * head_dim


def _round256(x: float) -> int:
    """Nearest multiple of 256 (whole quantization blocks per row), at least 256."""
    return max(256, round(x / 256) * 256)


def _solve_hidden(target: float, layers: int, heads_per: int, kv: int, hd: int) -> int:
    """Hidden size whose attention + output head + FFN (3.5x) give ``target`` params."""
    lo, hi = 128, 65536
    while hi - lo > 128:
        h = (lo + hi) // 2
        heads = max(1, h // hd) if heads_per == 0 else heads_per
        n = layers * (_attn_params(h, heads, kv, hd) + 3 * h * int(3.5 * h)) + ASSUMED_VOCAB * h
        lo, hi = (h, hi) if n < target else (lo, h)
    return max(128, lo // 128 * 128)


def spec_from_numbers(
    params_b: float,
    active_params_b: float | None = None,
    *,
    layers: int | None = None,
    kv_heads: int | None = None,
    head_dim: int | None = None,
    name: str | None = None,
) -> ModelSpec:
    """A model known by its parameter counts (billions), laid out like a Llama."""
    if not (math.isfinite(params_b) and 0 < params_b <= 10_000):
        raise InvalidRequestError("params_b must be between 0 and 10000", param="params_b")
    active_b = params_b if active_params_b is None else active_params_b
    if not (math.isfinite(active_b) and 0 < active_b <= params_b):
        msg = "active_params_b must be positive and at most params_b"
        raise InvalidRequestError(msg, param="active_params_b")
    limits = (("layers", layers, 10_000), ("kv_heads", kv_heads, 65_536))
    for label, v, top in (*limits, ("head_dim", head_dim, 65_536)):
        if v is not None and not 1 <= v <= top:
            raise InvalidRequestError(f"{label} must be between 1 and {top}", param=label)
    assumed = [f"vocabulary {ASSUMED_VOCAB}"]
    if layers is None:
        layers = _guess_layers(active_b)
        assumed.append(f"{layers} layers")
    if kv_heads is None:
        kv_heads = 8
        assumed.append("8 KV heads")
    if head_dim is None:
        head_dim = 128
        assumed.append("head dim 128")
    total, active = params_b * 1e9, active_b * 1e9
    moe = active < total * 0.98
    # For an MoE, attention and output head take about 30% of the active parameters.
    hidden = _solve_hidden(active * 0.3 if moe else total, layers, 0, kv_heads, head_dim)
    if moe:
        hidden = max(128, min(hidden, int(math.sqrt(active * 0.3 / (4 * layers))) // 128 * 128))
    heads = max(1, hidden // head_dim)
    kv_heads = min(kv_heads, heads)
    attn = layers * _attn_params(hidden, heads, kv_heads, head_dim)
    head = ASSUMED_VOCAB * hidden
    fixed = attn + 2 * head
    experts = experts_active = moe_inter = 0
    if moe:
        expert_total = max(total - fixed, 1.0)
        share = min(max((active - attn - head) / expert_total, 0.0), 1.0)
        # About 128 experts with widths in whole quantization blocks; the expert
        # count then absorbs the rounding, so the total stays exact to <1%.
        moe_inter = _round256(expert_total / (layers * 3 * hidden * 128))
        experts = max(2, round(expert_total / (layers * 3 * hidden * moe_inter)))
        experts_active = min(max(1, round(share * experts)), experts)
        intermediate = moe_inter
        assumed.append(f"{experts_active} of {experts} experts active")
    else:
        intermediate = _round256((total - fixed) / (3 * hidden * layers))
    assumed.append(f"hidden size {hidden}")
    arch = Architecture(
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate=intermediate,
        vocab=ASSUMED_VOCAB,
        experts=experts,
        experts_active=experts_active,
        moe_intermediate=moe_inter,
    )
    label = name or (f"{params_b:g}B" + (f"-A{active_b:g}B" if moe else ""))
    return ModelSpec(
        name=label,
        kind=ModelKind.LLM,
        source="numbers",
        arch=arch,
        tensors=generate_tensors(arch, "bf16"),
        quant_label="BF16",
        assumed=tuple(assumed),
    )
