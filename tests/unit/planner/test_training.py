"""Fine-tuning memory: full fine-tune > LoRA > QLoRA; 70B QLoRA fits the Spark."""

from __future__ import annotations

import pytest

from sparkplane.planner import InvalidRequestError, load_catalog, plan, training_memory
from sparkplane.planner.training import lora_params


def _spec(name: str):  # type: ignore[no-untyped-def]
    return load_catalog().get(name).spec()


def test_full_fine_tune_keeps_sixteen_bytes_per_parameter() -> None:
    spec = _spec("llama-3.1-8b")
    _, m = training_memory(spec, "full", 2048, 1)
    states = m.get("weights") + m.get("gradients") + m.get("optimizer")
    assert states == 16 * spec.params_total


def test_methods_order_by_memory() -> None:
    spec = _spec("llama-3.1-8b")
    full = training_memory(spec, "full", 2048, 1)[1].total
    lora = training_memory(spec, "lora", 2048, 1)[1].total
    qlora = training_memory(spec, "qlora", 2048, 1)[1].total
    assert full > 3 * lora
    assert lora > qlora


def test_lora_adapter_count() -> None:
    spec = _spec("llama-3.1-8b")
    # Per layer: q (4096+4096), k and v (4096+1024 each), o (4096+4096),
    # gate and up (4096+14336 each), down (14336+4096); times rank and 32 layers.
    per_layer = 8192 + 2 * 5120 + 8192 + 3 * 18432
    assert lora_params(spec, 16) == 16 * per_layer * 32


def test_activations_grow_with_sequence_and_checkpointing_saves_memory() -> None:
    spec = _spec("llama-3.1-8b")
    short = training_memory(spec, "lora", 1024, 1)[1].get("activations")
    long = training_memory(spec, "lora", 4096, 1)[1].get("activations")
    assert long == pytest.approx(4 * short)
    no_ckpt = training_memory(spec, "lora", 1024, 1, checkpointing=False)[1].get("activations")
    assert no_ckpt > 5 * short


def test_qlora_of_a_70b_fits_the_spark_but_full_does_not() -> None:
    spec = _spec("llama-3.1-70b")
    q = plan(spec, devices="dgx-spark", train="qlora", context=2048).devices[0]
    f = plan(spec, devices="dgx-spark", train="full", context=2048).devices[0]
    assert q.fits
    assert q.training
    assert q.training.tokens_per_s > 0
    assert not f.fits
    assert f.training is None


def test_training_needs_a_language_model() -> None:
    with pytest.raises(InvalidRequestError):
        plan(_spec("sdxl"), devices="dgx-spark", train="lora")
    with pytest.raises(InvalidRequestError):
        plan(_spec("llama-3.1-8b"), devices="dgx-spark", train="dpo")
