"""Throughput: prefill is compute-bound, decode is bandwidth-bound until the batch is large.

Decode, one step for ``B`` sequences at ``C`` tokens of context::

    t_step =   (W(B) + B x KV(C)) / (bandwidth x e_bw)       memory
             + B x F(C) / (tensor TFLOPS x e_compute)         compute
             + layers x t_layer                               fixed per-layer cost

W(B) is the weight bytes one step reads: everything except the token embedding
(a row lookup) unless it doubles as the output head, and for MoE only the
experts the router picks (``1 - (1 - k/E)^B`` of them for B sequences). KV(C) is
one sequence's KV cache. F(C) is 2 x active parameters plus attention over the
context. Memory and compute add (see :func:`_combine`): at one sequence the
step is the weight read, at many the math. Prefill of P tokens takes
``P x F / (TFLOPS x e_compute)`` plus one read of the weights per forward pass
of the engine's micro-batch. ``e_bw`` and ``t_layer`` are fitted per engine
and device kind, ``e_compute`` per kernel family (:mod:`sparkplane.planner.engines`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .devices import DeviceProfile
from .engines import ENGINE_PROFILES, Efficiency
from .kv import KV_DTYPES, cached_tokens, kv_cache_bytes, layer_elements_per_token
from .specs import ModelSpec
from .tensors import EXPERT_ROLES, LINEAR_ROLES, Role


@dataclass(frozen=True)
class DecodeEstimate:
    """Decode speed and the terms behind it."""

    tokens_per_s: float  # per sequence
    total_tokens_per_s: float  # all sequences together
    weight_bytes_per_step: int
    kv_bytes_per_step: int
    flops_per_step: float
    memory_ms: float
    compute_ms: float
    overhead_ms: float
    context: int = 0  # tokens in each sequence's cache
    likely_low: float = 0.0  # per-sequence tokens/s, from the fit's observed spread
    likely_high: float = 0.0


@dataclass(frozen=True)
class PrefillEstimate:
    """Prefill speed and the terms behind it."""

    tokens_per_s: float
    prompt_tokens: int
    flops_per_token: float
    compute_precision: str
    tflops: float
    bound: str  # "compute" or "bandwidth"
    likely_low: float = 0.0
    likely_high: float = 0.0


def expert_fraction(spec: ModelSpec, sequences: int) -> float:
    """Share of routed experts one decode step reads for ``sequences`` tokens."""
    a = spec.arch
    if a is None or not a.is_moe or a.experts_active <= 0:
        return 1.0
    p = min(a.experts_active / a.experts, 1.0)
    return 1.0 - (1.0 - p) ** max(sequences, 1)


def _fractions(spec: ModelSpec, sequences: int) -> list[float]:
    """How much of each tensor one decode step reads."""
    experts = expert_fraction(spec, sequences)
    head = ""  # with tied embeddings the token embedding is also the output head
    if not spec.has_output_head and not (spec.arch and spec.arch.encoder):
        embeds = [t for t in spec.tensors if t.role is Role.EMBED]
        head = max(embeds, key=lambda t: t.params).name if embeds else ""
    out: list[float] = []
    for t in spec.tensors:
        if t.role in EXPERT_ROLES:
            out.append(experts)
        elif t.role is Role.EMBED:
            out.append(1.0 if t.name == head else 0.0)
        elif t.role is Role.VISION:
            out.append(0.0)
        else:
            out.append(1.0)
    return out


def weight_bytes_per_step(spec: ModelSpec, sequences: int = 1) -> int:
    """Weight bytes one decode step reads for ``sequences`` sequences."""
    fr = _fractions(spec, sequences)
    return int(sum(t.nbytes * f for t, f in zip(spec.tensors, fr, strict=True)))


def active_params(spec: ModelSpec) -> int:
    """Parameters one token passes through (the token-embedding lookup excluded)."""
    fr = _fractions(spec, 1)
    return int(sum(t.params * f for t, f in zip(spec.tensors, fr, strict=True)))


def attention_flops(spec: ModelSpec, context: int) -> float:
    """FLOPs of attention (QK^T and AV) for one token attending over ``context`` tokens."""
    a = spec.arch
    if a is None:
        return 0.0
    width = a.heads * a.head_dim
    return float(sum(4 * width * cached_tokens(a, i, context) for i in range(a.layers)))


def compute_precision(spec: ModelSpec, engine: str | None = None) -> str:
    """The tensor-core precision the matmuls of most weight bytes run at.

    GGUF engines multiply quantized weights (MXFP4 included) against activations
    quantized to 8 bits, so they run at the int8 rate.
    """
    by: dict[str, int] = {}
    gguf = engine in ENGINE_PROFILES and ENGINE_PROFILES[engine].gguf
    for t in spec.tensors:
        if t.role in LINEAR_ROLES and t.is_matrix:
            c = t.fmt.compute
            if gguf and c not in {"bf16", "fp32"}:
                c = "int8"
            by[c] = by.get(c, 0) + t.nbytes
    return max(by, key=lambda k: by[k]) if by else "bf16"


def _combine(memory_s: float, compute_s: float) -> float:
    """Time of a pass that streams ``memory_s`` worth of bytes and does ``compute_s`` of math.

    Added, not overlapped: the engines' decode and small-GEMM kernels do not hide
    one behind the other. llama-batched-bench on a DGX Spark (Qwen2.5-Coder-7B
    Q8_0, 1 to 32 sequences) shows it: the step grows by ~0.6 ms per sequence
    from the first one, about what the sequence's FLOPs cost at the prefill
    rate, where ``max(memory, compute)`` would stay flat until ~90 sequences.
    At large batch the compute term dominates, as a roofline's would.
    """
    return memory_s + compute_s


def decode(
    spec: ModelSpec,
    device: DeviceProfile,
    eff: Efficiency,
    context: int,
    sequences: int,
    kv_dtype: str,
    engine: str | None = None,
) -> DecodeEstimate:
    """Decode speed for ``sequences`` sequences each holding ``context`` tokens."""
    b = max(sequences, 1)
    weights = weight_bytes_per_step(spec, b)
    kv = kv_cache_bytes(spec.arch, context, b, kv_dtype) if spec.arch else 0
    flops = b * (2.0 * active_params(spec) + attention_flops(spec, context))
    _, tflops = device.compute(compute_precision(spec, engine))
    memory_s = (weights + kv) / (device.bandwidth_bytes * eff.bandwidth)
    compute_s = flops / (tflops * 1e12 * eff.compute)
    overhead_s = spec.layers * eff.layer_overhead_us * 1e-6
    step = _combine(memory_s, compute_s) + overhead_s
    lo, hi = eff.decode_spread
    return DecodeEstimate(
        tokens_per_s=1.0 / step,
        total_tokens_per_s=b / step,
        weight_bytes_per_step=weights,
        kv_bytes_per_step=kv,
        flops_per_step=flops,
        memory_ms=memory_s * 1e3,
        compute_ms=compute_s * 1e3,
        overhead_ms=overhead_s * 1e3,
        context=context,
        likely_low=lo / step,
        likely_high=hi / step,
    )


@dataclass(frozen=True)
class WindowPoint:
    """Decode speed with each sequence's cache filled to ``share`` of the window."""

    share: float
    context: int
    tokens_per_s: float
    total_tokens_per_s: float


WINDOW_SHARES = (0.0, 0.5, 1.0)


def decode_window(
    spec: ModelSpec,
    device: DeviceProfile,
    eff: Efficiency,
    window: int,
    sequences: int,
    kv_dtype: str,
    engine: str | None = None,
) -> tuple[WindowPoint, ...]:
    """Decode speed at 0%, 50% and 100% of a ``window``-token context."""
    out = []
    for share in WINDOW_SHARES:
        ctx = int(window * share)
        d = decode(spec, device, eff, ctx, sequences, kv_dtype, engine)
        out.append(WindowPoint(share, ctx, d.tokens_per_s, d.total_tokens_per_s))
    return tuple(out)


def prefill(
    spec: ModelSpec,
    device: DeviceProfile,
    eff: Efficiency,
    prompt_tokens: int,
    engine: str | None = None,
    *,
    sequences: int = 1,
    chunk_tokens: int | None = None,
) -> PrefillEstimate:
    """Prefill speed for ``sequences`` prompts of ``prompt_tokens`` tokens each.

    The engine processes the prompts in forward passes of ``chunk_tokens``
    tokens (default: the engine's micro-batch); each pass reads the weights
    once (MoE: the experts its tokens pick, nearly all of them for a full
    pass) and does ``2 x active params`` FLOPs per token plus attention.
    """
    p = max(prompt_tokens, 1)
    total = p * max(sequences, 1)
    # Causal attention: token i attends over i tokens of its own prompt, p/2 on average.
    per_token = 2.0 * active_params(spec) + attention_flops(spec, max(p // 2, 1))
    precision, tflops = device.compute(compute_precision(spec, engine))
    compute_s = total * per_token / (tflops * 1e12 * eff.compute)
    chunk = chunk_tokens or (
        ENGINE_PROFILES[engine].batch_tokens if engine in ENGINE_PROFILES else total
    )
    chunks = -(-total // chunk)
    read = weight_bytes_per_step(spec, min(chunk, total))
    read_s = chunks * read / (device.bandwidth_bytes * eff.bandwidth)
    rate = total / _combine(read_s, compute_s)
    lo, hi = eff.prefill_spread
    return PrefillEstimate(
        tokens_per_s=rate,
        prompt_tokens=p,
        flops_per_token=per_token,
        compute_precision=precision,
        tflops=tflops,
        bound="compute" if compute_s >= read_s else "bandwidth",
        likely_low=rate * lo,
        likely_high=rate * hi,
    )


def kv_bytes_per_token(spec: ModelSpec, kv_dtype: str) -> float:
    """KV cache bytes one more token of context costs (all layers, no window)."""
    a = spec.arch
    if a is None or a.encoder:
        return 0.0
    return layer_elements_per_token(a) * KV_DTYPES[kv_dtype] * a.layers
