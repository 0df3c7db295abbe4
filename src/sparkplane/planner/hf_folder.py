"""Build a :class:`ModelSpec` from a local Hugging Face model folder.

config.json gives the architecture; the safetensors headers give every tensor's
dtype, shape and bytes, so parameter counts and bytes per dtype are exact
without loading weights. Quantized checkpoints pack several weights per stored
element (AWQ/GPTQ ``qweight`` int32, MXFP4 ``_blocks`` and NVFP4 ``uint8``
weights) and carry scale tensors: the packing is undone for the parameter count,
and scales count as bytes, not parameters.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import SpecError
from .precision import FORMATS, SAFETENSORS_DTYPES, Format
from .safetensors_reader import SafetensorsEntry, read_safetensors_header
from .specs import Architecture, ModelKind, ModelSpec, architecture_problem
from .tensors import EXPERT_ROLES, Role, Tensor, is_bias_name, layer_of, role_of

MAX_CONFIG = 10 * 1024 * 1024
_AUX_SUFFIXES = (
    "qzeros",
    "scales",
    "_scale",
    "g_idx",
    "weight_scale_inv",
    "weight_scale_2",
    "input_scale",
    "_global_scale",
    "absmax",
    "quant_map",
    "nested_absmax",
    "nested_quant_map",
    "bitsandbytes__nf4",
    "bitsandbytes__fp4",
    "zero_point",
    "weight_zero_point",
)
_ENCODER_TYPES = {"bert", "xlm-roberta", "roberta", "nomic_bert", "new", "modernbert", "mpnet"}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror or exc}") from None
    if size > MAX_CONFIG:
        raise SpecError(f"{path.name} is {size} bytes; not a config file")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SpecError(f"{path.name} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise SpecError(f"{path.name} is not a JSON object")
    return doc


def _shards(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise SpecError(f"{index.name} has no weight_map")
        names = sorted({str(v) for v in weight_map.values()})
        paths = [folder / n for n in names]
        missing = [p.name for p in paths if not p.is_file() or p.parent != folder]
        if missing:
            raise SpecError(f"shards listed in {index.name} are missing: {', '.join(missing[:3])}")
        return paths
    found = sorted(folder.glob("*.safetensors"))
    if not found:
        raise SpecError(f"{folder} has no .safetensors files")
    return found


def _num(cfg: dict[str, Any], *keys: str, default: int = 0) -> int:
    for k in keys:
        v = cfg.get(k)
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            return v
    return default


def _sliding(cfg: dict[str, Any]) -> tuple[int, int]:
    window = _num(cfg, "sliding_window")
    if not window or cfg.get("use_sliding_window") is False:
        return 0, 0
    pattern = _num(cfg, "sliding_window_pattern")
    types = cfg.get("layer_types")
    if not pattern and isinstance(types, list) and types:
        full = sum(1 for t in types if t == "full_attention")
        pattern = round(len(types) / full) if full else 0
    return window, pattern


def architecture_from_config(cfg: dict[str, Any], tied: bool) -> Architecture:
    """The :class:`Architecture` a transformers config.json describes."""
    if isinstance(cfg.get("text_config"), dict):
        cfg = {**cfg, **cfg["text_config"]}
    layers = _num(cfg, "num_hidden_layers", "n_layer", "num_layers")
    hidden = _num(cfg, "hidden_size", "n_embd", "d_model")
    heads = _num(cfg, "num_attention_heads", "n_head")
    if not (layers and hidden and heads):
        raise SpecError("config.json lacks num_hidden_layers, hidden_size or num_attention_heads")
    intermediate = _num(cfg, "intermediate_size", "n_inner", "ffn_dim", default=4 * hidden)
    experts = _num(cfg, "num_local_experts", "num_experts", "n_routed_experts")
    moe_inter = _num(cfg, "moe_intermediate_size", default=intermediate) if experts else 0
    shared = _num(cfg, "n_shared_experts")
    if not shared and _num(cfg, "shared_expert_intermediate_size") and moe_inter:
        shared = max(1, _num(cfg, "shared_expert_intermediate_size") // moe_inter)
    window, pattern = _sliding(cfg)
    encoder = str(cfg.get("model_type", "")).lower() in _ENCODER_TYPES
    kv_lora = _num(cfg, "kv_lora_rank")
    return Architecture(
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=_num(cfg, "num_key_value_heads", default=heads),
        head_dim=_num(cfg, "head_dim", default=hidden // heads),
        intermediate=intermediate,
        vocab=_num(cfg, "vocab_size"),
        max_context=_num(cfg, "max_position_embeddings", "n_positions", default=4096),
        tied_embeddings=tied,
        encoder=encoder,
        experts=experts,
        experts_active=_num(cfg, "num_experts_per_tok", "num_experts_per_token", "top_k"),
        moe_intermediate=moe_inter,
        shared_experts=shared,
        dense_layers=_num(cfg, "first_k_dense_replace"),
        q_lora_rank=_num(cfg, "q_lora_rank"),
        kv_lora_rank=kv_lora,
        qk_rope_head_dim=_num(cfg, "qk_rope_head_dim") if kv_lora else 0,
        qk_nope_head_dim=_num(cfg, "qk_nope_head_dim") if kv_lora else 0,
        v_head_dim=_num(cfg, "v_head_dim") if kv_lora else 0,
        sliding_window=window,
        sliding_pattern=pattern,
    )


def _quant_method(cfg: dict[str, Any]) -> tuple[str, int]:
    qc = cfg.get("quantization_config")
    if not isinstance(qc, dict):
        return "", 16
    method = str(qc.get("quant_method", "")).lower()
    bits = qc.get("bits", qc.get("w_bit", 4))
    if method == "modelopt" or "nvfp4" in json.dumps(qc).lower():
        method = "nvfp4"
    if method == "bitsandbytes" and qc.get("load_in_4bit"):
        method = "nf4"
    return method, bits if isinstance(bits, int) and 1 <= bits <= 16 else 4


def _tensor(e: SafetensorsEntry, method: str, bits: int) -> Tensor:
    low = e.name.lower()
    base = SAFETENSORS_DTYPES[e.dtype][1]
    fmt: Format = FORMATS[base]
    shape = e.shape
    params = 1
    for d in shape:
        params *= d
    aux = low.endswith(_AUX_SUFFIXES) or ".quant_state." in low
    stem = low
    if aux:
        params = 0
    elif low.endswith(("qweight", "weight_packed")) and e.dtype in {"I32", "U32"}:
        per = 32 // bits
        params, fmt = params * per, FORMATS["int4" if bits <= 4 else "int8"]
        shape = (*shape[:-1], shape[-1] * per) if shape else shape
        stem = low.replace("qweight", "weight")
    elif e.dtype in {"U8", "F4"} and (low.endswith("_blocks") or method in {"nvfp4", "nf4"}):
        per = 2 if e.dtype == "U8" else 1
        params *= per
        fmt = FORMATS["mxfp4" if low.endswith("_blocks") else method if method else "nvfp4"]
        if low.endswith("_blocks") and len(shape) >= 2:
            shape = (*shape[:-2], shape[-2] * shape[-1] * per)
        elif shape:
            shape = (*shape[:-1], shape[-1] * per)
    role = role_of(stem)
    return Tensor(
        name=e.name,
        role=role,
        shape=tuple(shape),
        fmt=fmt,
        nbytes=e.nbytes,
        params=params,
        layer=layer_of(e.name),
        is_bias=is_bias_name(e.name),
        aux=aux,
    )


def spec_from_hf_folder(path: str | os.PathLike[str]) -> ModelSpec:
    """A :class:`ModelSpec` from a folder holding config.json and safetensors files."""
    folder = Path(path)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        if (folder / "model_index.json").is_file():
            raise SpecError(
                f"{folder.name} is a diffusers pipeline folder; plan it by catalog name instead"
            )
        raise SpecError(f"{folder} has no config.json")
    cfg = _read_json(cfg_path)
    method, bits = _quant_method(cfg)
    tensors: list[Tensor] = []
    for shard in _shards(folder):
        tensors.extend(_tensor(e, method, bits) for e in read_safetensors_header(shard).entries)
    if not tensors:
        raise SpecError(f"{folder.name}: the safetensors files hold no tensors")
    tied = not any(t.role is Role.OUTPUT for t in tensors)
    arch = architecture_from_config(cfg, tied)
    problem = architecture_problem(arch)
    if problem:
        raise SpecError(f"{folder.name}: config.json is inconsistent: {problem}")
    native = {"mxfp4": "mxfp4", "nvfp4": "nvfp4", "fp8": "fp8", "awq": "int4", "gptq": "int4"}
    native_quant = native.get(method)
    native_roles: tuple[Role, ...] = ()
    if native_quant == "mxfp4":
        native_roles = tuple(EXPERT_ROLES)
    dtype = str(cfg.get("torch_dtype") or cfg.get("dtype") or "")
    label = (
        f"{method.upper()}"
        if method
        else {"bfloat16": "BF16", "float16": "FP16"}.get(dtype, dtype.upper() or "safetensors")
    )
    return ModelSpec(
        name=folder.name,
        kind=ModelKind.EMBEDDING if arch.encoder else ModelKind.LLM,
        source="safetensors",
        arch=arch,
        tensors=tuple(tensors),
        native_quant=native_quant,
        native_roles=native_roles,
        quant_label=label,
    )
