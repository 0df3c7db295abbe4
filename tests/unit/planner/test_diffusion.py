"""Diffusion pipelines: memory by component, resolution and batch; seconds per step."""

from __future__ import annotations

import pytest

from sparkplane.planner import Efficiency, builtin_profiles, load_catalog, parse_quant, plan
from sparkplane.planner.diffusion import diffusion_memory, diffusion_speed

SPARK = builtin_profiles()["dgx-spark"]
EFF = Efficiency(0.8, 0.0, 0.5, "test")


def _spec(name: str):  # type: ignore[no-untyped-def]
    return load_catalog().get(name).spec()


def test_memory_lists_each_component() -> None:
    m = diffusion_memory(_spec("flux.1-dev"), None, 1024, 1024, 1)
    labels = [i.label for i in m.items]
    assert sum(1 for x in labels if x.startswith("weights")) == 4
    transformer = next(i for i in m.items if "transformer" in i.label)
    assert transformer.bytes == 2 * 11_901_408_320


def test_resolution_and_batch_raise_memory() -> None:
    spec = _spec("sdxl")
    base = diffusion_memory(spec, None, 1024, 1024, 1).total
    assert diffusion_memory(spec, None, 2048, 2048, 1).total > base
    assert diffusion_memory(spec, None, 1024, 1024, 4).total > base
    weights = sum(
        i.bytes
        for i in diffusion_memory(spec, None, 1024, 1024, 1).items
        if i.label.startswith("weights")
    )
    assert weights == pytest.approx(2 * 3.4688e9, rel=0.01)


def test_fp8_halves_the_big_components() -> None:
    spec = _spec("flux.1-dev")
    bf16 = diffusion_memory(spec, None, 1024, 1024, 1).total
    fp8 = diffusion_memory(spec, parse_quant("fp8"), 1024, 1024, 1).total
    assert fp8 < bf16 * 0.6


def test_step_time_grows_with_pixels_and_guidance() -> None:
    flux = _spec("flux.1-dev")
    s1 = diffusion_speed(flux, SPARK, EFF, None, 1024, 1024, 1, 28).seconds_per_step
    s2 = diffusion_speed(flux, SPARK, EFF, None, 2048, 2048, 1, 28).seconds_per_step
    assert s2 > 4 * s1  # tokens x4, attention x16
    sd3 = _spec("sd3.5-large")  # guidance runs the transformer twice per step
    t = diffusion_speed(sd3, SPARK, EFF, None, 1024, 1024, 1, 28)
    assert t.tflop_per_step > 2 * 2 * 8.1e9 * 4096 / 1e12
    schnell = plan(_spec("flux.1-schnell"), devices="dgx-spark").devices[0]
    dev = plan(flux, devices="dgx-spark").devices[0]
    assert schnell.diffusion
    assert dev.diffusion
    assert schnell.diffusion.seconds_per_image < dev.diffusion.seconds_per_image / 4


def test_4090_is_faster_per_step_when_the_model_fits() -> None:
    p = plan(_spec("sdxl"), devices=["dgx-spark", "rtx-4090"])
    spark, rtx = p.devices
    assert spark.fits
    assert rtx.fits
    assert spark.diffusion
    assert rtx.diffusion
    assert rtx.diffusion.seconds_per_step < spark.diffusion.seconds_per_step
