"""Fine-tuning memory and speed: full fine-tune, LoRA and QLoRA.

Full fine-tune with mixed-precision AdamW keeps 16 bytes per parameter: BF16
weights (2) and gradients (2), an FP32 master copy (4) and Adam's two moments
(8). LoRA freezes the base weights (BF16) and trains rank-r adapters on every
attention and FFN projection (routed experts excluded), at those same 16 bytes
per adapter parameter. QLoRA is LoRA over a base quantized to NF4.

Activations, with gradient checkpointing (the default): each layer's input
(``seq x batch x hidden x 2 B``) plus one layer recomputed in full
(``seq x batch x (16 x hidden + 6 x FFN width)`` bytes, flash attention), plus FP32
logits and their gradient (``seq x batch x vocab x 8 B``). Without
checkpointing every layer keeps its full activations.

Speed: 6 x params FLOPs per token for a full fine-tune (forward 2, backward 4),
4 x for LoRA (no weight gradients for the frozen base), plus one more forward
(2 x) when checkpointing recomputes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .devices import DeviceProfile
from .engines import GIB, Efficiency
from .errors import InvalidRequestError
from .memory import MemoryBreakdown, MemoryItem, gb, weights_detail
from .precision import QUANTS
from .quantize import quantize_spec
from .specs import ModelSpec
from .speed import active_params, compute_precision
from .tensors import EXPERT_ROLES, LINEAR_ROLES

METHODS = ("full", "lora", "qlora")
RUNTIME_GIB = 1.0  # PyTorch/CUDA context


@dataclass(frozen=True)
class TrainingSpeed:
    """Training throughput."""

    tokens_per_s: float
    flops_per_token: float
    compute_precision: str


def parse_method(text: str) -> str:
    """``full``, ``lora`` or ``qlora``."""
    key = text.strip().lower().replace("-", "").replace("_", "")
    key = {"fullfinetune": "full", "sft": "full", "ft": "full"}.get(key, key)
    if key not in METHODS:
        raise InvalidRequestError(
            f"unknown training method {text!r}; use full, lora or qlora", param="train"
        )
    return key


def lora_params(spec: ModelSpec, rank: int) -> int:
    """Trainable adapter parameters: rank x (in + out) per attention/FFN projection."""
    total = 0
    for t in spec.tensors:
        if t.is_matrix and t.role in LINEAR_ROLES and t.role not in EXPERT_ROLES:
            out_dim, in_dim = t.shape[-2], t.shape[-1]
            total += rank * (in_dim + out_dim)
    return total


def training_memory(
    spec: ModelSpec,
    method: str,
    seq_len: int,
    batch: int,
    rank: int = 16,
    checkpointing: bool = True,
) -> tuple[ModelSpec, MemoryBreakdown]:
    """The model as trained (QLoRA quantizes it) and the memory the run needs."""
    a = spec.arch
    if a is None:
        raise InvalidRequestError("training needs a model with known architecture", param="model")
    items: list[MemoryItem] = []
    n = spec.params_total
    if method == "full":
        base = quantize_spec(spec, QUANTS["bf16"])
        items.append(MemoryItem("weights", 2 * n, f"{n:,} params x 2 B (BF16)"))
        items.append(MemoryItem("gradients", 2 * n, f"{n:,} x 2 B (BF16)"))
        items.append(MemoryItem("optimizer", 12 * n, f"{n:,} x 12 B (FP32 master + Adam m, v)"))
    else:
        base = quantize_spec(spec, QUANTS["nf4" if method == "qlora" else "bf16"])
        items.append(
            MemoryItem("weights", base.weight_bytes, f"frozen base: {weights_detail(base)}")
        )
        lp = lora_params(spec, rank)
        items.append(MemoryItem("adapters", 16 * lp, f"{lp:,} LoRA params (rank {rank}) x 16 B"))
    tokens = seq_len * batch
    full_layer = tokens * (16 * a.hidden + 6 * a.ffn_width_active)
    if checkpointing:
        act = a.layers * tokens * a.hidden * 2 + full_layer
        detail = f"checkpoints {a.layers} x {tokens} tok x {a.hidden} x 2 B + one layer"
    else:
        act = a.layers * full_layer
        detail = f"{a.layers} layers x {tokens} tok x (16 x hidden + 6 x FFN) B"
    items.append(MemoryItem("activations", act, detail))
    logits = tokens * a.vocab * 8
    items.append(MemoryItem("logits", logits, f"{tokens} tok x {a.vocab} x 8 B ({gb(logits)})"))
    items.append(MemoryItem("runtime", int(RUNTIME_GIB * GIB), "PyTorch/CUDA context"))
    return base, MemoryBreakdown(tuple(items))


def training_speed(
    spec: ModelSpec,
    method: str,
    device: DeviceProfile,
    eff: Efficiency,
    checkpointing: bool = True,
) -> TrainingSpeed:
    """Training tokens per second on ``device``."""
    factor = (6.0 if method == "full" else 4.0) + (2.0 if checkpointing else 0.0)
    flops = factor * active_params(spec)
    precision, tflops = device.compute(compute_precision(spec) if method != "full" else "bf16")
    if method == "qlora":
        precision, tflops = device.compute("bf16")  # NF4 is dequantized to BF16 for matmuls
    return TrainingSpeed(tflops * 1e12 * eff.compute / flops, flops, precision)
