"""Put a model's tensors into the precision a user asks for.

Plain precisions (FP8, INT4, NVFP4, ...) go on the linear layers and leave the
embedding, output head, router and norms in BF16, as quantized Hugging Face
checkpoints do. llama.cpp file types (Q4_K_M, ...) are mixes: llama.cpp's
quantizer gives some tensors more bits (the output head, half of the attn_v and
ffn_down layers in Q4_K_M, ...) and falls back to other types when a row is not
a whole number of blocks. The rules below follow llama.cpp's
``llama_tensor_get_type`` for the file types people use; the IQ types are
approximate. A tensor already stored as MXFP4/NVFP4 experts stays so, as in
gpt-oss GGUF files.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from .precision import FORMATS, Quant
from .specs import ModelSpec
from .tensors import EXPERT_ROLES, LINEAR_ROLES, Role, Tensor

_SIXTEEN = frozenset({"bf16", "fp16", "fp32"})
_FP4 = frozenset({"mxfp4", "nvfp4"})
_IQ_LOW = frozenset({"iq2_xxs", "iq2_xs", "iq1_s", "iq2_s", "iq2_m", "iq1_m"})
_DOWN_ROLES = frozenset({Role.FFN_DOWN, Role.EXPERT_DOWN, Role.SHARED_EXPERT_DOWN})
_FALLBACK = {
    "tq1_0": "q4_0",
    "tq2_0": "q4_0",
    "q4_k": "q5_0",
    "q5_k": "q5_1",
    "q6_k": "q8_0",
}
_EIGHT_EXPERT_ATTN_OUT = frozenset(
    {"q2_k", "iq3_xs", "iq3_xxs", "q3_k_s", "q3_k_m", "iq4_nl", "q4_k_s", "q4_k_m"}
    | {"iq3_s", "iq3_m", "iq4_xs"}
)


@dataclass(frozen=True)
class _Mix:
    """Model facts llama.cpp's per-tensor rules depend on."""

    ftype: str
    base: str
    layers: int
    experts: int
    gqa: int
    has_output: bool
    n_down: int
    is_70b: bool


def _more_bits(i: int, n: int) -> bool:
    """llama.cpp's ``use_more_bits``: first and last eighth, and every third layer between."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _output_type(m: _Mix, t: Tensor) -> str:
    if t.row % FORMATS[m.base].block != 0:
        return "q8_0"
    if m.ftype in _IQ_LOW or m.ftype == "iq3_xxs":
        return "q5_k"
    return m.base if m.base == "q8_0" else "q6_k"


def _embed_type(m: _Mix) -> str:
    if m.ftype in {"iq2_xxs", "iq2_xs", "iq1_s", "iq1_m"}:
        return "q2_k"
    if m.ftype in {"iq2_s", "iq2_m", "iq3_xxs"}:
        return "iq3_s"
    if m.ftype in {"tq1_0", "tq2_0"}:
        return "q4_k"
    return m.base


def _attn_v_type(m: _Mix, i: int) -> str:
    f, new = m.ftype, m.base
    if f in _IQ_LOW:
        if m.gqa >= 4 or m.experts >= 4:
            return "q4_k"
        return "iq3_s" if f in {"iq2_s", "iq2_m"} else "q2_k"
    if f == "q2_k":
        new = "q4_k" if m.gqa >= 4 else "q3_k"
    elif (f == "q2_k_s" and m.gqa >= 4) or f == "iq3_m":
        new = "q4_k"
    elif f == "iq3_xxs":
        new = "q4_k" if m.gqa >= 4 else "iq3_s"
    elif f in {"iq3_xs", "iq3_s"} and m.gqa >= 4:
        new = "q4_k"
    elif f == "q3_k_m":
        new = "q5_k" if i < 2 else "q4_k"
    elif f == "q3_k_l" or (f in {"iq4_nl", "iq4_xs"} and m.gqa >= 4):
        new = "q5_k"
    elif f in {"q4_k_m", "q5_k_m"} and _more_bits(i, m.layers):
        new = "q6_k"
    elif f == "q4_k_s" and i < 4:
        new = "q5_k"
    if m.is_70b and new in {"q3_k", "q4_k"}:
        new = "q5_k"
    return "q8_0" if m.experts == 8 else new


def _ffn_down_type(m: _Mix, i: int) -> str:
    f, n = m.ftype, m.n_down
    if f in _IQ_LOW:
        if i < n // 8:
            return "iq3_s" if f in {"iq2_s", "iq2_m"} else "q2_k"
        return m.base
    rules: dict[str, str] = {}
    rules["q2_k"] = "q3_k"
    rules["q2_k_s"] = "q4_k" if i < n // 8 else m.base
    rules["iq3_xxs"] = "q4_k" if i < n // 8 else "q3_k"
    rules["q3_k_m"] = "q5_k" if i < n // 16 else "q4_k"
    if i < n // 8 or (m.experts == 8 and _more_bits(i, n)):
        rules["iq3_m"] = "q4_k"
    rules["q3_k_l"] = "q5_k"
    if _more_bits(i, n):
        rules["q4_k_m"] = "q6_k"
        rules["q5_k_m"] = "q6_k"
    if i < n // 8:
        rules["iq4_nl"] = "q5_k"
        rules["iq4_xs"] = "q5_k"
        rules["q4_k_s"] = "q5_k"
    return rules.get(f, m.base)


def _attn_out_type(m: _Mix) -> str:
    f = m.ftype
    if m.experts == 8:
        return "q5_k" if f in _EIGHT_EXPERT_ATTN_OUT else m.base
    if f in _IQ_LOW:
        if f in {"iq1_s", "iq1_m"}:
            return "iq2_xxs"
        return "iq3_s" if f in {"iq2_s", "iq2_m"} else m.base
    table = {"q2_k": "q3_k", "iq3_xxs": "iq3_s", "q3_k_m": "q4_k", "q3_k_l": "q5_k"}
    table["iq3_m"] = "q4_k"
    return table.get(f, m.base)


def _matrix_type(m: _Mix, t: Tensor) -> str:
    """The GGML type llama.cpp gives one weight matrix under file type ``m.ftype``."""
    f, role, i = m.ftype, t.role, t.layer if t.layer is not None else 0
    if role is Role.OUTPUT or (role is Role.EMBED and not m.has_output):
        return _output_type(m, t)
    if role is Role.EMBED:
        return _embed_type(m)
    if role is Role.ATTN_V:
        return _attn_v_type(m, i)
    if role is Role.ATTN_K:
        if m.experts == 8 and f not in _IQ_LOW:
            return "q8_0"
        if m.experts == 8:
            return "q4_k"
        return {"iq3_xs": "iq3_xxs", "iq3_xxs": "iq2_s"}.get(f, m.base)
    if role is Role.ATTN_Q:
        return {"iq3_xs": "iq3_xxs", "iq3_xxs": "iq2_s"}.get(f, m.base)
    if role in _DOWN_ROLES:
        return _ffn_down_type(m, i)
    if role is Role.ATTN_OUT:
        return _attn_out_type(m)
    if role is Role.ATTN_QKV:
        table = {"q3_k_m": "q4_k", "q3_k_l": "q4_k", "iq3_m": "q4_k", "q4_k_m": "q5_k"}
        table["q5_k_m"] = "q6_k"
        return table.get(f, m.base)
    if f == "iq3_xs" and role in {Role.FFN_GATE, Role.FFN_UP, Role.EXPERT}:
        middle = m.layers // 8 <= i < 7 * m.layers // 8
        return "iq3_xxs" if middle else m.base
    return m.base


def _fallback(name: str, row: int) -> str:
    """llama.cpp's replacement when a row is not a whole number of blocks."""
    if FORMATS[name].fits_rows(row):
        return name
    if name.startswith("iq") or name in {"q2_k", "q3_k"}:
        name = "iq4_nl"
    else:
        name = _FALLBACK.get(name, "fp16")
    return name if FORMATS[name].fits_rows(row) else "fp16"


def _gguf_tensor(m: _Mix, t: Tensor) -> Tensor:
    if not t.is_matrix or t.role is Role.NORM:
        return t.with_format(FORMATS["fp32"])
    if t.role is Role.ROUTER:
        return t.with_format(FORMATS["fp32"])
    if t.role is Role.VISION:
        return t.with_format(FORMATS["fp16"])
    if t.role in EXPERT_ROLES and t.fmt.name in _FP4:
        return t  # natively 4-bit experts are kept (gpt-oss GGUF files)
    if m.ftype == "mxfp4_moe":
        is_expert = t.role in EXPERT_ROLES or len(t.shape) > 2
        return t.with_format(FORMATS["mxfp4" if is_expert else "q8_0"])
    if m.base in _SIXTEEN:
        return t.with_format(FORMATS[m.base])
    return t.with_format(FORMATS[_fallback(_matrix_type(m, t), t.row)])


def _plain_tensor(t: Tensor, quant: Quant, roles: frozenset[Role]) -> Tensor:
    if t.is_matrix and t.role in roles:
        return t.with_format(quant.base)
    if t.fmt.name in _SIXTEEN:
        return t
    if t.fmt.name in _FP4 and t.role in EXPERT_ROLES:
        return t
    return t.with_format(FORMATS["bf16"])


def effective_quant(quant: Quant, engine: str | None) -> Quant:
    """The quant an engine actually loads: llama.cpp reads MXFP4 as its MXFP4_MOE file type."""
    from .precision import QUANTS

    if quant.name == "mxfp4" and engine == "llama.cpp":
        return QUANTS["mxfp4_moe"]
    return quant


def quantize_spec(spec: ModelSpec, quant: Quant, engine: str | None = None) -> ModelSpec:
    """``spec`` with its weights put into ``quant`` (as ``engine`` would load them)."""
    quant = effective_quant(quant, engine)
    tensors = [t for t in spec.tensors if not t.aux]
    if quant.gguf:
        a = spec.arch
        mix = _Mix(
            ftype=quant.name,
            base=quant.base.name,
            layers=sum(1 for t in tensors if t.role is Role.ATTN_V) or (a.layers if a else 1),
            experts=a.experts if a else 0,
            gqa=(a.heads // a.kv_heads) if a and a.kv_heads else 1,
            has_output=any(t.role is Role.OUTPUT for t in tensors),
            n_down=sum(1 for t in tensors if t.role in _DOWN_ROLES and t.is_matrix) or 1,
            is_70b=bool(a and a.layers == 80),
        )
        new = [_gguf_tensor(mix, t) for t in tensors]
    elif quant.base.name in _SIXTEEN:
        # A plain dtype, not a quantization: every tensor is stored in it.
        new = [t.with_format(quant.base) for t in tensors]
    else:
        roles = LINEAR_ROLES
        if quant.name == spec.native_quant and spec.native_roles:
            roles = frozenset(spec.native_roles)
        new = [_plain_tensor(t, quant, roles) for t in tensors]
    return replace(spec, tensors=tuple(new), quant_label=quant.label)


def describe_formats(tensors: Iterable[Tensor]) -> dict[str, int]:
    """Bytes per storage format, largest first."""
    out: dict[str, int] = {}
    for t in tensors:
        out[t.fmt.name] = out.get(t.fmt.name, 0) + t.nbytes
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))
