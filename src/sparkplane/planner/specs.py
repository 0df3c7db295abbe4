"""What the planner knows about a model: its architecture numbers and its tensors."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .precision import FORMATS
from .tensors import EXPERT_ROLES, Role, Tensor


class ModelKind(StrEnum):
    """The kinds of model the planner sizes."""

    LLM = "llm"
    EMBEDDING = "embedding"
    DIFFUSION = "diffusion"


@dataclass(frozen=True)
class Architecture:
    """Transformer numbers as published in a model's config.json.

    Sliding-window attention: ``sliding_pattern`` N means N-1 of every N layers
    are local (window ``sliding_window``) and every Nth is global; 0 with a window
    means every layer is local. MLA (DeepSeek) caches one latent of
    ``kv_lora_rank + qk_rope_head_dim`` per layer and token instead of K and V.
    """

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    max_context: int = 131072
    tied_embeddings: bool = False
    gated_ffn: bool = True
    attn_bias: str = ""  # "", "qkv" (Qwen2) or "all" (BERT, gpt-oss)
    ffn_bias: bool = False
    encoder: bool = False  # bidirectional encoder (embedding models): no KV cache
    max_positions: int = 0  # learned position embeddings (BERT-style)
    experts: int = 0
    experts_active: int = 0
    moe_intermediate: int = 0
    shared_experts: int = 0
    dense_layers: int = 0  # first layers with a dense FFN in an MoE model
    expert_bias: bool = False
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    sliding_window: int = 0
    sliding_pattern: int = 0

    @property
    def is_moe(self) -> bool:
        """True for mixture-of-experts models."""
        return self.experts > 1

    @property
    def is_mla(self) -> bool:
        """True when attention caches a compressed latent (DeepSeek MLA)."""
        return self.kv_lora_rank > 0

    def is_sliding(self, layer: int) -> bool:
        """True when ``layer`` attends only within the sliding window."""
        if self.sliding_window <= 0:
            return False
        if self.sliding_pattern <= 0:
            return True
        return (layer + 1) % self.sliding_pattern != 0

    @property
    def ffn_width_active(self) -> int:
        """FFN hidden width one token passes through (active experts for MoE)."""
        if self.is_moe:
            return (self.experts_active + self.shared_experts) * self.moe_intermediate
        return self.intermediate


# Generous upper bounds for architecture numbers: anything beyond is a corrupt file,
# and would otherwise make loops over layers or contexts run for ever.
_LIMITS = {
    "layers": 10_000,
    "hidden": 1 << 20,
    "heads": 1 << 16,
    "kv_heads": 1 << 16,
    "head_dim": 1 << 16,
    "intermediate": 1 << 24,
    "vocab": 1 << 24,
    "max_context": 1 << 28,
    "experts": 1 << 16,
    "experts_active": 1 << 16,
    "moe_intermediate": 1 << 24,
    "shared_experts": 1 << 16,
    "dense_layers": 10_000,
    "q_lora_rank": 1 << 20,
    "kv_lora_rank": 1 << 20,
    "qk_nope_head_dim": 1 << 16,
    "qk_rope_head_dim": 1 << 16,
    "v_head_dim": 1 << 16,
    "sliding_window": 1 << 28,
    "sliding_pattern": 10_000,
    "max_positions": 1 << 28,
}


def architecture_problem(a: Architecture) -> str | None:
    """Why ``a`` cannot be a real model's architecture, or None if it can."""
    for name, limit in _LIMITS.items():
        value = getattr(a, name)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
            return f"{name} = {value!r} is out of range"
    if a.layers < 1 or a.hidden < 1 or a.heads < 1:
        return "layers, hidden size and heads must be positive"
    if a.experts_active > max(a.experts, 0):
        return "more active experts than experts"
    return None


@dataclass(frozen=True)
class DiffusionComponent:
    """One part of a diffusion pipeline: denoiser, text encoder or VAE."""

    name: str
    role: str  # "denoiser", "text_encoder", "vae", "controlnet"
    params: int
    dtype: str = "bf16"


@dataclass(frozen=True)
class DiffusionArch:
    """Numbers that set a diffusion model's compute per denoising step."""

    denoiser: str  # "dit" or "unet"
    latent_channels: int
    vae_scale: int = 8
    patch: int = 2
    text_tokens: int = 77
    blocks: int = 0
    hidden: int = 0
    cfg: bool = True  # classifier-free guidance doubles the denoiser batch
    default_steps: int = 30
    default_resolution: int = 1024
    unet_tflops_ref: float = 0.0  # UNet TFLOP per image per step at default resolution


@dataclass(frozen=True)
class ModelSpec:
    """A model as the planner sizes it.

    ``tensors`` is the per-tensor inventory (exact for GGUF files and safetensors
    folders, generated from the architecture for catalog models, two lumps for
    a model known only by its parameter counts).
    """

    name: str
    kind: ModelKind
    source: str  # "catalog", "gguf", "safetensors", "numbers"
    arch: Architecture | None
    tensors: tuple[Tensor, ...] = ()
    native_quant: str | None = None  # the precision the checkpoint ships in
    native_roles: tuple[Role, ...] = ()  # roles the native quant covers (empty: all linear)
    quant_label: str = ""
    components: tuple[DiffusionComponent, ...] = ()
    diffusion: DiffusionArch | None = None
    assumed: tuple[str, ...] = field(default=())  # numbers guessed rather than known

    @property
    def params_total(self) -> int:
        """All parameters (diffusion: all components)."""
        if self.components:
            return sum(c.params for c in self.components)
        return sum(t.params for t in self.tensors)

    @property
    def weight_bytes(self) -> int:
        """Bytes of all weights as stored (diffusion: every component at its dtype)."""
        if self.components:
            return sum(FORMATS[c.dtype].nbytes((c.params,)) for c in self.components)
        return sum(t.nbytes for t in self.tensors)

    @property
    def has_output_head(self) -> bool:
        """True when the output projection is its own tensor (not tied to the embedding)."""
        return any(t.role is Role.OUTPUT for t in self.tensors)

    @property
    def layers(self) -> int:
        """Transformer blocks (0 when unknown)."""
        return self.arch.layers if self.arch else 0

    def expert_tensors(self) -> list[Tensor]:
        """The routed-expert tensors."""
        return [t for t in self.tensors if t.role in EXPERT_ROLES]
