"""KV cache size: layers x KV heads x head dim x 2 (K and V) x context x sequences x dtype.

Grouped-query attention is in ``kv_heads``; sliding-window layers keep at most
``sliding_window`` tokens; MLA layers (DeepSeek) keep one latent of
``kv_lora_rank + qk_rope_head_dim`` per token instead of K and V.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidRequestError
from .specs import Architecture

# Bytes per cached element.
KV_DTYPES: dict[str, float] = {
    "fp32": 4.0,
    "fp16": 2.0,
    "bf16": 2.0,
    "fp8": 1.0,
    "q8_0": 34 / 32,
    "q5_0": 22 / 32,
    "q4_0": 18 / 32,
}


def parse_kv_dtype(text: str | None) -> str:
    """A known KV cache dtype name (default ``fp16``)."""
    if text is None:
        return "fp16"
    key = text.strip().lower().replace("-", "_")
    key = {"f16": "fp16", "f32": "fp32", "auto": "fp16", "fp8_e4m3": "fp8", "fp8_e5m2": "fp8"}.get(
        key, key
    )
    if key not in KV_DTYPES:
        known = ", ".join(KV_DTYPES)
        raise InvalidRequestError(
            f"unknown KV cache dtype {text!r}; use one of: {known}", param="kv_dtype"
        )
    return key


def layer_elements_per_token(arch: Architecture) -> int:
    """Cached elements per token in one layer."""
    if arch.is_mla:
        return arch.kv_lora_rank + arch.qk_rope_head_dim
    return 2 * arch.kv_heads * arch.head_dim


def cached_tokens(arch: Architecture, layer: int, context: int) -> int:
    """Tokens a layer keeps for one sequence of ``context`` tokens."""
    if arch.is_sliding(layer):
        return min(context, arch.sliding_window)
    return context


def kv_cache_bytes(arch: Architecture, context: int, sequences: int, kv_dtype: str) -> int:
    """Bytes of KV cache for ``sequences`` sequences of ``context`` tokens."""
    if arch.encoder or context <= 0 or sequences <= 0:
        return 0
    per = layer_elements_per_token(arch) * KV_DTYPES[kv_dtype]
    tokens = sum(cached_tokens(arch, i, context) for i in range(arch.layers))
    return int(per * tokens * sequences)


@dataclass(frozen=True)
class KVShape:
    """How the KV cache is laid out, for showing the work."""

    layers_full: int
    layers_sliding: int
    window: int
    elements_per_token_layer: int
    bytes_per_element: float

    def describe(self) -> str:
        """One line: the formula with this model's numbers."""
        per = f"{self.elements_per_token_layer} elem x {self.bytes_per_element:g} B"
        out = f"{self.layers_full} full layers x {per} per token"
        if self.layers_sliding:
            out += f" + {self.layers_sliding} sliding layers (window {self.window})"
        return out


def kv_shape(arch: Architecture, kv_dtype: str) -> KVShape:
    """The layout behind :func:`kv_cache_bytes`."""
    sliding = sum(1 for i in range(arch.layers) if arch.is_sliding(i))
    return KVShape(
        layers_full=arch.layers - sliding,
        layers_sliding=sliding,
        window=arch.sliding_window,
        elements_per_token_layer=layer_elements_per_token(arch),
        bytes_per_element=KV_DTYPES[kv_dtype],
    )
