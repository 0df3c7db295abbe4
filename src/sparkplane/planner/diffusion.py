"""Diffusion pipelines: memory by component and seconds per denoising step.

Memory: every component's weights (UNet or DiT, text encoders, VAE) at its
dtype, the denoiser's activations for the batch at the chosen resolution, and
the VAE decoder's activations, which grow with the image's pixel count and are
what runs out first at large resolutions.

Speed: a DiT step costs ``2 x params x tokens + 4 x blocks x hidden x tokens^2``
FLOPs (tokens = latent patches + text tokens; joint attention); a UNet step
scales its reference FLOPs with pixel count. Classifier-free guidance doubles
the work. Seconds per step = FLOPs / (dense TFLOPS x 0.4) + denoiser weights /
(bandwidth x the device kind's fitted bandwidth share).
"""

from __future__ import annotations

from dataclasses import dataclass

from .devices import DeviceProfile
from .engines import GIB, Efficiency
from .memory import MemoryBreakdown, MemoryItem
from .precision import FORMATS, Quant
from .specs import DiffusionArch, ModelSpec

# The SD VAE decoder costs about 2.5 TFLOP per 512x512 image (measured FLOP
# counts of the SD 1.x pipeline); it scales with pixel count.
VAE_TFLOPS_512 = 2.54
RUNTIME_GIB = 1.0  # PyTorch/CUDA context of ComfyUI or diffusers
# Share of dense tensor peak a denoiser step reaches. Not fitted: the measurements
# file has no diffusion rows. Large BF16/FP8 GEMMs in PyTorch typically reach
# 40-60% of peak; 0.4 leaves room for attention, norms and the sampler.
COMPUTE_EFFICIENCY = 0.4


@dataclass(frozen=True)
class DiffusionSpeed:
    """Seconds per denoising step and per image."""

    seconds_per_step: float
    steps: int
    seconds_per_image: float
    tflop_per_step: float
    compute_precision: str


def _component_format(c_role: str, c_params: int, dtype: str, quant: Quant | None) -> str:
    # A quant applies to the denoiser and to large text encoders (T5-XXL), as in
    # ComfyUI's FP8 and GGUF checkpoints; CLIP encoders and the VAE stay 16-bit.
    if quant is not None and (c_role in {"denoiser", "controlnet"} or c_params > 1_000_000_000):
        return quant.base.name
    return dtype


def _latent_tokens(d: DiffusionArch, width: int, height: int) -> int:
    step = d.vae_scale * (d.patch if d.denoiser == "dit" else 1)
    return (width // step) * (height // step)


def diffusion_memory(
    spec: ModelSpec, quant: Quant | None, width: int, height: int, batch: int
) -> MemoryBreakdown:
    """Memory to generate ``batch`` images of ``width`` x ``height``."""
    d = spec.diffusion
    assert d is not None
    items: list[MemoryItem] = []
    for c in spec.components:
        f = FORMATS[_component_format(c.role, c.params, c.dtype, quant)]
        items.append(
            MemoryItem(f"weights: {c.name}", f.nbytes((c.params,)), f"{c.params:,} x {f.name}")
        )
    cfg = 2 if d.cfg else 1
    tokens = _latent_tokens(d, width, height)
    if d.denoiser == "dit":
        # About a dozen live hidden-size buffers per token (attention, MLP 4x).
        act = batch * cfg * (tokens + d.text_tokens) * d.hidden * 2 * 12
        detail = f"{batch}x{cfg} x {tokens + d.text_tokens} tokens x {d.hidden} x 24 B"
    else:
        # The UNet's widest level: 320 channels at latent resolution, ~20 buffers.
        act = batch * cfg * tokens * 320 * 2 * 20
        detail = f"{batch}x{cfg} x {tokens} latent pixels x 320 ch x 40 B"
    items.append(MemoryItem("activations: denoiser", act, detail))
    vae = batch * width * height * 128 * 2 * 3
    items.append(
        MemoryItem("activations: VAE decode", vae, f"{batch} x {width}x{height} x 128 ch x 6 B")
    )
    items.append(MemoryItem("runtime", int(RUNTIME_GIB * GIB), "PyTorch/CUDA context"))
    return MemoryBreakdown(tuple(items))


def step_flops(
    d: DiffusionArch, denoiser_params: int, width: int, height: int, batch: int
) -> float:
    """FLOPs of one denoising step for ``batch`` images."""
    cfg = 2 if d.cfg else 1
    if d.denoiser == "dit":
        n = _latent_tokens(d, width, height) + d.text_tokens
        per_image = 2.0 * denoiser_params * n + 4.0 * d.blocks * d.hidden * n * n
    else:
        ref = d.default_resolution**2
        per_image = d.unet_tflops_ref * 1e12 * (width * height) / ref
    return per_image * cfg * batch


def diffusion_speed(
    spec: ModelSpec,
    device: DeviceProfile,
    eff: Efficiency,
    quant: Quant | None,
    width: int,
    height: int,
    batch: int,
    steps: int,
) -> DiffusionSpeed:
    """Seconds per step and per image on ``device``."""
    d = spec.diffusion
    assert d is not None
    denoisers = [c for c in spec.components if c.role in {"denoiser", "controlnet"}]
    params = sum(c.params for c in denoisers)
    flops = step_flops(d, params, width, height, batch)
    fmt_name = _component_format("denoiser", params, denoisers[0].dtype, quant)
    precision, tflops = device.compute(FORMATS[fmt_name].compute)
    read = sum(FORMATS[fmt_name].nbytes((c.params,)) for c in denoisers)
    rate = tflops * 1e12 * COMPUTE_EFFICIENCY
    step = flops / rate + read / (device.bandwidth_bytes * eff.bandwidth)
    vae_flops = VAE_TFLOPS_512 * 1e12 * batch * (width * height) / 512**2
    _, vae_tflops = device.compute("bf16")
    vae = vae_flops / (vae_tflops * 1e12 * COMPUTE_EFFICIENCY)
    return DiffusionSpeed(
        seconds_per_step=step,
        steps=steps,
        seconds_per_image=(step * steps + vae) / max(batch, 1),
        tflop_per_step=flops / 1e12,
        compute_precision=precision,
    )
