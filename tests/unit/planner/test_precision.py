"""Formats: real bits per weight including scales; every precision name a user may type."""

from __future__ import annotations

import pytest
from gguf import GGML_QUANT_SIZES

from sparkplane.planner import FORMATS, InvalidRequestError, parse_quant
from sparkplane.planner.precision import GGML_TYPES


def test_ggml_block_layouts_match_gguf_py() -> None:
    for qtype, (block, size) in GGML_QUANT_SIZES.items():
        f = GGML_TYPES[int(qtype)]
        assert (f.block, f.block_bytes) == (block, size), qtype.name


@pytest.mark.parametrize(
    ("name", "bits"),
    [
        ("fp32", 32),
        ("bf16", 16),
        ("fp8", 8),
        ("q8_0", 8.5),
        ("q6_k", 6.5625),
        ("q4_k", 4.5),
        ("q4_0", 4.5),
        ("iq4_xs", 4.25),
        ("mxfp4", 4.25),
        ("nvfp4", 4.5),
        ("int4", 4 + 16 / 128 + 4 / 128),
    ],
)
def test_bits_per_weight_include_scales(name: str, bits: float) -> None:
    assert FORMATS[name].bits == pytest.approx(bits)


def test_rows_round_up_to_whole_blocks() -> None:
    q4k = FORMATS["q4_k"]
    assert q4k.nbytes((10, 256)) == 10 * 144
    assert q4k.nbytes((10, 257)) == 10 * 2 * 144


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Q4_K_M", "q4_k_m"),
        ("q4_K_M (unsloth)", "q4_k_m"),
        ("MXFP4 (GGUF)", "mxfp4"),
        ("NVFP4 (Marlin W4A16)", "nvfp4"),
        ("Q4_K", "q4_k_m"),
        ("BF16", "bf16"),
        ("fp16", "fp16"),
        ("awq", "int4"),
        ("FP8", "fp8"),
        ("iq4_xs", "iq4_xs"),
    ],
)
def test_parse_quant_accepts_what_people_write(text: str, name: str) -> None:
    assert parse_quant(text).name == name


def test_unknown_precision_lists_choices() -> None:
    with pytest.raises(InvalidRequestError, match="q4_k_m") as info:
        parse_quant("q7_z")
    assert info.value.param == "quant"
