"""Build a :class:`ModelSpec` from a GGUF file: exact tensors, architecture from metadata."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from .errors import SpecError
from .gguf_reader import GGUFHeader, SkippedArray, Value, read_gguf_header
from .specs import Architecture, ModelKind, ModelSpec, architecture_problem
from .tensors import Role, Tensor, is_bias_name, layer_of, role_of

# llama.cpp's llama_ftype numbers (general.file_type) and their names.
FILE_TYPES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
    39: "NVFP4",
}

# Architectures whose local/global layer pattern llama.cpp hard-codes.
_SLIDING_PATTERN = {"gemma2": 2, "gemma3": 6, "gpt-oss": 2, "cohere2": 4}
_ENCODERS = {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "modern-bert"}


def _int(md: dict[str, Value | SkippedArray], key: str, default: int = 0) -> int:
    v = md.get(key)
    if isinstance(v, list):
        nums = [int(x) for x in v if isinstance(x, int | float) and math.isfinite(x)]
        return max(nums) if nums else default
    if isinstance(v, bool) or not isinstance(v, int | float):
        return default
    if not math.isfinite(v) or v < 0 or v > 1 << 40:
        raise SpecError(f"GGUF metadata {key} is out of range ({v})")
    return int(v)


def _architecture(h: GGUFHeader, tensors: list[Tensor]) -> Architecture | None:
    md = h.metadata
    arch = md.get("general.architecture")
    if not isinstance(arch, str):
        raise SpecError("GGUF file has no general.architecture")

    def g(key: str, default: int = 0) -> int:
        return _int(md, f"{arch}.{key}", default)

    layers, hidden, heads = g("block_count"), g("embedding_length"), g("attention.head_count")
    if not (layers and hidden and heads):
        return None
    embed = next((t for t in tensors if t.role is Role.EMBED and len(t.shape) == 2), None)
    tokens = md.get("tokenizer.ggml.tokens")
    vocab = g("vocab_size") or (embed.shape[0] if embed else 0)
    if not vocab and isinstance(tokens, SkippedArray):
        vocab = tokens.count
    rope = g("rope.dimension_count")
    kv_lora = g("attention.kv_lora_rank")
    key_len = g("attention.key_length_mla") or g("attention.key_length")
    experts = g("expert_count")
    intermediate = g("feed_forward_length")
    return Architecture(
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=g("attention.head_count_kv", heads),
        head_dim=g("attention.key_length") or hidden // heads,
        intermediate=intermediate,
        vocab=vocab,
        max_context=g("context_length", 4096),
        tied_embeddings=not any(t.role is Role.OUTPUT for t in tensors),
        encoder=arch in _ENCODERS,
        experts=experts,
        experts_active=g("expert_used_count"),
        moe_intermediate=g("expert_feed_forward_length", intermediate) if experts else 0,
        shared_experts=g("expert_shared_count"),
        dense_layers=g("leading_dense_block_count"),
        q_lora_rank=g("attention.q_lora_rank"),
        kv_lora_rank=kv_lora,
        qk_rope_head_dim=rope if kv_lora else 0,
        qk_nope_head_dim=max(key_len - rope, 0) if kv_lora else 0,
        v_head_dim=(g("attention.value_length_mla") or g("attention.value_length"))
        if kv_lora
        else 0,
        sliding_window=g("attention.sliding_window"),
        sliding_pattern=g("attention.sliding_window_pattern", _SLIDING_PATTERN.get(arch, 0)),
    )


_SPLIT = re.compile(r"^(?P<stem>.*)-(?P<i>\d{5})-of-(?P<n>\d{5})\.gguf$")


def _split_headers(p: Path, first: GGUFHeader) -> list[GGUFHeader]:
    """All shards of a split GGUF (``name-00001-of-00003.gguf``), given its first."""
    count = first.metadata.get("split.count")
    if not isinstance(count, int) or count <= 1:
        return [first]
    m = _SPLIT.match(p.name)
    if not m or int(m["i"]) != 1:
        raise SpecError(f"{p.name} is one shard of a split GGUF; give the -00001-of- file")
    if count > 1000 or int(m["n"]) != count:
        raise SpecError(f"{p.name}: split.count {count} does not match the file name")
    headers = [first]
    for i in range(2, count + 1):
        shard = p.with_name(f"{m['stem']}-{i:05d}-of-{count:05d}.gguf")
        if not shard.is_file():
            raise SpecError(f"split GGUF shard missing: {shard.name}")
        headers.append(read_gguf_header(shard))
    return headers


def spec_from_gguf(path: str | os.PathLike[str]) -> ModelSpec:
    """A :class:`ModelSpec` with the exact tensors, types and bytes of a GGUF file.

    Split files are read shard by shard when given the first shard.
    """
    p = Path(path)
    first = read_gguf_header(p)
    header_tensors = [t for h in _split_headers(p, first) for t in h.tensors]
    header = first
    tensors = [
        Tensor(
            name=t.name,
            role=role_of(t.name),
            shape=t.shape,
            fmt=t.fmt,
            nbytes=t.nbytes,
            params=_numel(t.shape),
            layer=layer_of(t.name),
            is_bias=is_bias_name(t.name),
        )
        for t in header_tensors
    ]
    if not tensors:
        raise SpecError(f"{p.name} has no tensors (a vocabulary-only or split-index GGUF?)")
    arch = _architecture(header, tensors)
    problem = architecture_problem(arch) if arch else None
    if problem:
        raise SpecError(f"{p.name}: GGUF metadata is inconsistent: {problem}")
    name = header.metadata.get("general.name")
    ftype = header.metadata.get("general.file_type")
    label = FILE_TYPES.get(ftype, "GGUF") if isinstance(ftype, int) else "GGUF"
    kind = ModelKind.EMBEDDING if arch and arch.encoder else ModelKind.LLM
    return ModelSpec(
        name=name if isinstance(name, str) and name else p.stem,
        kind=kind,
        source="gguf",
        arch=arch,
        tensors=tuple(tensors),
        quant_label=label,
        assumed=() if arch else ("architecture (GGUF metadata incomplete)",),
    )


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
