"""Tensors as the planner sees them: a name, a role, a shape, a format, bytes.

The role decides how often decode reads a tensor: every token reads attention
and dense FFN weights and the output head; the token embedding is a lookup of
one row; a routed expert is read only when the router picks it; a vision tower
is not read at all while generating text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from enum import StrEnum

from .precision import Format


class Role(StrEnum):
    """What a tensor does, as far as memory traffic is concerned."""

    EMBED = "embed"
    OUTPUT = "output"
    ATTN_Q = "attn_q"
    ATTN_K = "attn_k"
    ATTN_V = "attn_v"
    ATTN_QKV = "attn_qkv"
    ATTN_OUT = "attn_output"
    ATTN_OTHER = "attn_other"  # MLA low-rank projections, sinks
    FFN_GATE = "ffn_gate"
    FFN_UP = "ffn_up"
    FFN_DOWN = "ffn_down"
    EXPERT = "expert"  # routed experts: gate/up (and fused gate_up)
    EXPERT_DOWN = "expert_down"
    SHARED_EXPERT = "shared_expert"
    SHARED_EXPERT_DOWN = "shared_expert_down"
    ROUTER = "router"
    NORM = "norm"
    VISION = "vision"
    OTHER = "other"


LINEAR_ROLES = frozenset(
    {
        Role.ATTN_Q,
        Role.ATTN_K,
        Role.ATTN_V,
        Role.ATTN_QKV,
        Role.ATTN_OUT,
        Role.ATTN_OTHER,
        Role.FFN_GATE,
        Role.FFN_UP,
        Role.FFN_DOWN,
        Role.EXPERT,
        Role.EXPERT_DOWN,
        Role.SHARED_EXPERT,
        Role.SHARED_EXPERT_DOWN,
    }
)
EXPERT_ROLES = frozenset({Role.EXPERT, Role.EXPERT_DOWN})


@dataclass(frozen=True)
class Tensor:
    """One stored tensor (or, for quantization scales, one auxiliary tensor).

    ``shape`` is in PyTorch order (last dimension contiguous). ``params`` is the
    number of model parameters it holds: packed 4-bit tensors hold two per byte,
    scale tensors hold none but still take ``nbytes``.
    """

    name: str
    role: Role
    shape: tuple[int, ...]
    fmt: Format
    nbytes: int
    params: int
    layer: int | None = None
    is_bias: bool = False
    aux: bool = False

    @property
    def row(self) -> int:
        """Elements per row (the contiguous dimension)."""
        return self.shape[-1] if self.shape else 1

    @property
    def is_matrix(self) -> bool:
        """True for weights with two or more dimensions that quantization applies to."""
        return len(self.shape) >= 2 and not self.is_bias and not self.aux

    def with_format(self, new: Format) -> Tensor:
        """The same tensor stored in ``new``."""
        return replace(self, fmt=new, nbytes=new.nbytes(self.shape))


def make_tensor(
    name: str,
    role: Role,
    shape: tuple[int, ...],
    fmt: Format,
    layer: int | None = None,
    *,
    is_bias: bool = False,
) -> Tensor:
    """A tensor whose bytes follow from its shape and format."""
    return Tensor(
        name=name,
        role=role,
        shape=shape,
        fmt=fmt,
        nbytes=fmt.nbytes(shape),
        params=math.prod(shape) if shape else 1,
        layer=layer,
        is_bias=is_bias,
    )


_LAYER = re.compile(r"(?:^|\.)(?:blk|layers|h|layer|block|blocks)\.(\d+)\.")

# Ordered: the first pattern that matches a (lower-cased) name decides its role.
# Names cover GGUF (llama.cpp) and the common Hugging Face layouts.
_ROLE_PATTERNS: tuple[tuple[re.Pattern[str], Role], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"vision|visual|image_encoder|mm_projector|multi_modal|audio_tower", Role.VISION),
        (r"^v\.|^mm\.", Role.VISION),
        (r"norm|ln_|layernorm|\.ln\d", Role.NORM),
        (r"shexp|shared_expert|shared_mlp", Role.SHARED_EXPERT),
        (r"_exps|\.experts\.|experts\.|block_sparse_moe\.experts", Role.EXPERT),
        (r"ffn_gate_inp|\.router\.|mlp\.gate\.|gate\.e_score", Role.ROUTER),
        (r"block_sparse_moe\.gate\.", Role.ROUTER),
        (r"token_embd|embed_tokens|wte\.|word_embeddings|tok_embeddings|embeddings\.", Role.EMBED),
        (r"^output\.|lm_head|^embed_out", Role.OUTPUT),
        (r"attn_qkv|qkv_proj|query_key_value|\.wqkv|c_attn", Role.ATTN_QKV),
        (r"attn_q\.|q_proj|\.query\.|\.wq\.", Role.ATTN_Q),
        (r"attn_k\.|k_proj|\.key\.|\.wk\.", Role.ATTN_K),
        (r"attn_v\.|v_proj|\.value\.|\.wv\.", Role.ATTN_V),
        (r"attn_output|o_proj|attention\.output\.dense|\.wo\.|out_proj|c_proj", Role.ATTN_OUT),
        (r"attn_|self_attn|attention", Role.ATTN_OTHER),
        (r"ffn_down|down_proj|\.w2\.|fc2|output\.dense|mlp\.dense_4h_to_h", Role.FFN_DOWN),
        (r"ffn_gate|gate_proj|\.w1\.|fc11", Role.FFN_GATE),
        (r"ffn_up|up_proj|\.w3\.|fc1|intermediate\.dense|dense_h_to_4h|gate_up", Role.FFN_UP),
    )
)

_DOWN = re.compile(r"down|\.w2\.|fc2")


def layer_of(name: str) -> int | None:
    """The block index in a tensor name (``blk.7.attn_q.weight`` -> 7), if any."""
    m = _LAYER.search(name.lower())
    return int(m.group(1)) if m else None


def role_of(name: str) -> Role:
    """Guess a tensor's role from its name (GGUF or Hugging Face naming)."""
    low = name.lower()
    for pattern, role in _ROLE_PATTERNS:
        if pattern.search(low):
            if role is Role.EXPERT and _DOWN.search(low):
                return Role.EXPERT_DOWN
            if role is Role.SHARED_EXPERT and _DOWN.search(low):
                return Role.SHARED_EXPERT_DOWN
            return role
    return Role.OTHER


def is_bias_name(name: str) -> bool:
    """True for bias vectors (``.bias``, ``_bias``)."""
    low = name.lower()
    return low.endswith(".bias") or low.endswith("_bias")
