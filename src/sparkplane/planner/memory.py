"""Memory an LLM or embedding model needs: weights + KV cache + activations + runtime.

Each figure comes with a line saying how it was computed, so a user can see why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .engines import ENGINE_PROFILES, GIB
from .kv import kv_cache_bytes, kv_shape
from .quantize import describe_formats
from .specs import Architecture, ModelSpec


@dataclass(frozen=True)
class MemoryItem:
    """One line of a memory breakdown."""

    label: str
    bytes: int
    detail: str


@dataclass(frozen=True)
class MemoryBreakdown:
    """Memory by purpose; ``total`` is their sum."""

    items: tuple[MemoryItem, ...]

    @property
    def total(self) -> int:
        """All bytes."""
        return sum(i.bytes for i in self.items)

    def get(self, label: str) -> int:
        """Bytes of the item called ``label`` (0 if absent)."""
        return sum(i.bytes for i in self.items if i.label == label)


def gb(n: float) -> str:
    """Bytes as decimal gigabytes, for details."""
    return f"{n / 1e9:.2f} GB"


def weights_detail(spec: ModelSpec) -> str:
    """Bytes per storage format, e.g. ``q4_k 33.43 GB + q6_k 8.84 GB``."""
    parts = [f"{k} {gb(v)}" for k, v in describe_formats(spec.tensors).items() if v >= 1e7]
    return " + ".join(parts) or gb(spec.weight_bytes)


def activation_bytes(arch: Architecture, tokens: int, sequences: int) -> int:
    """Peak activation buffers for a forward pass over ``tokens`` tokens.

    Hidden states and attention projections (about 4 x hidden values per token)
    and the FFN's two widest tensors (2 x active FFN width), in 16-bit, plus
    FP32 logits for each sequence's last token. Flash attention is assumed, so
    no context x context score matrix is kept.
    """
    per_token = (4 * arch.hidden + 2 * arch.ffn_width_active) * 2
    return tokens * per_token + sequences * arch.vocab * 4


def llm_memory(
    spec: ModelSpec, engine: str, context: int, sequences: int, kv_dtype: str
) -> MemoryBreakdown:
    """Memory to serve ``sequences`` sequences of ``context`` tokens with ``engine``."""
    prof = ENGINE_PROFILES[engine]
    items = [MemoryItem("weights", spec.weight_bytes, weights_detail(spec))]
    arch = spec.arch
    if arch is not None:
        kv = kv_cache_bytes(arch, context, sequences, kv_dtype)
        if not arch.encoder:
            shape = kv_shape(arch, kv_dtype).describe()
            detail = f"{shape} x {context} tokens x {sequences} seq"
            items.append(MemoryItem("kv_cache", kv, detail))
        tokens = (
            context * sequences if arch.encoder else min(prof.batch_tokens, context * sequences)
        )
        act = activation_bytes(arch, max(tokens, 1), sequences)
        detail = (
            f"{max(tokens, 1)} tokens per forward x (4 x hidden + 2 x FFN width) x 2 B + logits"
        )
        items.append(MemoryItem("activations", act, detail))
    runtime = int(prof.runtime_gib * GIB)
    items.append(MemoryItem("runtime", runtime, f"{engine} context, allocator and graphs"))
    return MemoryBreakdown(tuple(items))


def merge(breakdowns: Iterable[MemoryBreakdown]) -> MemoryBreakdown:
    """All items of several breakdowns in one."""
    return MemoryBreakdown(tuple(i for b in breakdowns for i in b.items))
