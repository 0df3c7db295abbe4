"""Number formats and the precisions a user can ask for.

A :class:`Format` is how one tensor is stored: elements per block and bytes per
block, so scales and zero points are counted (Q4_K is 4.5 bits per weight, not 4;
NVFP4 is 4.5 with its FP8 scale per 16; MXFP4 4.25 with its E8M0 scale per 32).
A :class:`Quant` is what a user asks for (``--quant``): a plain precision applied
to the linear layers, or a llama.cpp file type whose per-tensor mix lives in
:mod:`sparkplane.planner.quantize`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InvalidRequestError


@dataclass(frozen=True)
class Format:
    """A storage format: ``block_bytes`` bytes hold ``block`` elements."""

    name: str
    block: int
    block_bytes: int
    compute: str  # the matmul precision class a kernel for it runs at
    gguf_type: int | None = None

    @property
    def bits(self) -> float:
        """Bits per element, scales included."""
        return self.block_bytes * 8 / self.block

    def nbytes(self, shape: Sequence[int]) -> int:
        """Bytes of a tensor of ``shape`` (PyTorch order: last dimension contiguous).

        Blocks never straddle rows, so each row is rounded up to whole blocks.
        """
        if not shape:
            return self.block_bytes
        row = shape[-1]
        rows = math.prod(shape[:-1]) if len(shape) > 1 else 1
        return rows * -(-row // self.block) * self.block_bytes

    def fits_rows(self, row: int) -> bool:
        """True when a row of ``row`` elements is a whole number of blocks."""
        return row % self.block == 0


def _f(name: str, block: int, nbytes: int, compute: str, gguf: int | None = None) -> Format:
    return Format(name, block, nbytes, compute, gguf)


# GGML type ids and block layouts are those of ggml's type table (gguf-py's
# GGML_QUANT_SIZES); a unit test compares them. Quantized GGUF types run through
# llama.cpp's int8 matmul kernels, hence compute "int8".
_FORMATS: tuple[Format, ...] = (
    _f("fp32", 1, 4, "fp32", 0),
    _f("fp16", 1, 2, "bf16", 1),
    _f("q4_0", 32, 18, "int8", 2),
    _f("q4_1", 32, 20, "int8", 3),
    _f("q5_0", 32, 22, "int8", 6),
    _f("q5_1", 32, 24, "int8", 7),
    _f("q8_0", 32, 34, "int8", 8),
    _f("q8_1", 32, 40, "int8", 9),
    _f("q2_k", 256, 84, "int8", 10),
    _f("q3_k", 256, 110, "int8", 11),
    _f("q4_k", 256, 144, "int8", 12),
    _f("q5_k", 256, 176, "int8", 13),
    _f("q6_k", 256, 210, "int8", 14),
    _f("q8_k", 256, 292, "int8", 15),
    _f("iq2_xxs", 256, 66, "int8", 16),
    _f("iq2_xs", 256, 74, "int8", 17),
    _f("iq3_xxs", 256, 98, "int8", 18),
    _f("iq1_s", 256, 50, "int8", 19),
    _f("iq4_nl", 32, 18, "int8", 20),
    _f("iq3_s", 256, 110, "int8", 21),
    _f("iq2_s", 256, 82, "int8", 22),
    _f("iq4_xs", 256, 136, "int8", 23),
    _f("i8", 1, 1, "int8", 24),
    _f("i16", 1, 2, "int8", 25),
    _f("i32", 1, 4, "fp32", 26),
    _f("i64", 1, 8, "fp32", 27),
    _f("fp64", 1, 8, "fp32", 28),
    _f("iq1_m", 256, 56, "int8", 29),
    _f("bf16", 1, 2, "bf16", 30),
    _f("tq1_0", 256, 54, "int8", 34),
    _f("tq2_0", 256, 66, "int8", 35),
    _f("mxfp4", 32, 17, "fp4", 39),  # 32 x 4 bits + one E8M0 scale
    _f("nvfp4", 64, 36, "fp4", 40),  # 4 x (16 x 4 bits + one FP8 scale)
    _f("q1_0", 128, 18, "int8", 41),
    # Formats that exist only outside GGUF (Hugging Face checkpoints):
    _f("fp8", 1, 1, "fp8"),  # E4M3, per-tensor or per-channel scales (negligible)
    _f("int8", 1, 1, "int8"),  # W8A16 with per-channel scales (negligible)
    # AWQ/GPTQ 4-bit, group 128: per group a 16-bit scale and a 4-bit zero point.
    _f("int4", 256, 133, "bf16"),
    # bitsandbytes NF4 with double quantization: 64-element blocks with an 8-bit
    # absmax, and one FP32 constant per 256 blocks.
    _f("nf4", 16384, 8452, "bf16"),
)

FORMATS: dict[str, Format] = {f.name: f for f in _FORMATS}
GGML_TYPES: dict[int, Format] = {f.gguf_type: f for f in _FORMATS if f.gguf_type is not None}

# safetensors dtype names -> format (packed 4-bit layouts are resolved by the reader).
SAFETENSORS_DTYPES: dict[str, tuple[int, str]] = {
    "F64": (8, "fp64"),
    "F32": (4, "fp32"),
    "F16": (2, "fp16"),
    "BF16": (2, "bf16"),
    "F8_E4M3": (1, "fp8"),
    "F8_E5M2": (1, "fp8"),
    "F8_E8M0": (1, "i8"),
    "I64": (8, "i64"),
    "I32": (4, "i32"),
    "I16": (2, "i16"),
    "I8": (1, "i8"),
    "U64": (8, "i64"),
    "U32": (4, "i32"),
    "U16": (2, "i16"),
    "U8": (1, "i8"),
    "BOOL": (1, "i8"),
    "F4": (1, "i8"),
    "F6_E2M3": (1, "i8"),
    "F6_E3M2": (1, "i8"),
}


def fmt(name: str) -> Format:
    """The format called ``name``."""
    return FORMATS[name]


@dataclass(frozen=True)
class Quant:
    """A precision a user asks for.

    ``gguf`` quants are llama.cpp file types: a mix of formats per tensor (see
    :mod:`sparkplane.planner.quantize`). The others put ``base`` on the linear
    layers and keep embeddings, output head, router and norms in BF16, as
    quantized Hugging Face checkpoints do.
    """

    name: str
    label: str
    base: Format
    gguf: bool


def _q(name: str, base: str, gguf: bool, label: str | None = None) -> Quant:
    return Quant(name, label or name.upper(), FORMATS[base], gguf)


_QUANTS: tuple[Quant, ...] = (
    _q("fp32", "fp32", False, "FP32"),
    _q("fp16", "fp16", False, "FP16"),
    _q("bf16", "bf16", False, "BF16"),
    _q("fp8", "fp8", False, "FP8"),
    _q("int8", "int8", False, "INT8"),
    _q("int4", "int4", False, "INT4 (AWQ/GPTQ g128)"),
    _q("nf4", "nf4", False, "NF4"),
    _q("nvfp4", "nvfp4", False, "NVFP4"),
    _q("mxfp4", "mxfp4", False, "MXFP4"),
    _q("mxfp4_moe", "mxfp4", True, "MXFP4_MOE"),
    _q("q8_0", "q8_0", True),
    _q("q6_k", "q6_k", True),
    _q("q5_k_m", "q5_k", True),
    _q("q5_k_s", "q5_k", True),
    _q("q5_0", "q5_0", True),
    _q("q5_1", "q5_1", True),
    _q("q4_k_m", "q4_k", True),
    _q("q4_k_s", "q4_k", True),
    _q("q4_0", "q4_0", True),
    _q("q4_1", "q4_1", True),
    _q("q3_k_l", "q3_k", True),
    _q("q3_k_m", "q3_k", True),
    _q("q3_k_s", "q3_k", True),
    _q("q2_k", "q2_k", True),
    _q("q2_k_s", "q2_k", True),
    _q("iq4_xs", "iq4_xs", True),
    _q("iq4_nl", "iq4_nl", True),
    _q("iq3_m", "iq3_s", True),
    _q("iq3_s", "iq3_s", True),
    _q("iq3_xs", "iq3_s", True),
    _q("iq3_xxs", "iq3_xxs", True),
    _q("iq2_m", "iq2_s", True),
    _q("iq2_s", "iq2_xs", True),
    _q("iq2_xs", "iq2_xs", True),
    _q("iq2_xxs", "iq2_xxs", True),
    _q("iq1_m", "iq1_m", True),
    _q("iq1_s", "iq1_s", True),
    _q("tq2_0", "tq2_0", True),
    _q("tq1_0", "tq1_0", True),
)

QUANTS: dict[str, Quant] = {q.name: q for q in _QUANTS}

_ALIASES: dict[str, str] = {
    "f32": "fp32",
    "float32": "fp32",
    "f16": "fp16",
    "float16": "fp16",
    "half": "fp16",
    "bfloat16": "bf16",
    "f8": "fp8",
    "e4m3": "fp8",
    "fp8_e4m3": "fp8",
    "w8a8": "fp8",
    "fp8_dynamic": "fp8",
    "w8a16": "int8",
    "awq": "int4",
    "gptq": "int4",
    "w4a16": "int4",
    "bnb4": "nf4",
    "fp4": "nvfp4",
    # Bare K-quant names are what llama.cpp prints for the medium mixes.
    "q4_k": "q4_k_m",
    "q5_k": "q5_k_m",
    "q3_k": "q3_k_m",
}


def normalize_quant_name(text: str) -> str:
    """Lower-case, drop decorations such as ``(GGUF)`` or ``(unsloth)``, unify separators."""
    core = text.strip().lower().split("(")[0].strip()
    core = core.split()[0] if core.split() else core
    return core.replace("-", "_")


def parse_quant(text: str) -> Quant:
    """The :class:`Quant` named by ``text`` (case and decorations ignored)."""
    key = normalize_quant_name(text)
    key = _ALIASES.get(key, key)
    try:
        return QUANTS[key]
    except KeyError:
        known = ", ".join(sorted(QUANTS))
        raise InvalidRequestError(
            f"unknown precision {text!r}; use one of: {known}", param="quant"
        ) from None


def quant_names() -> list[str]:
    """Every precision name ``parse_quant`` accepts, canonical names first."""
    return sorted(QUANTS) + sorted(_ALIASES)
