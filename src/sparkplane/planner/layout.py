"""Generate a model's tensor inventory from its architecture numbers.

Catalog models have no files to read, so their tensors are laid out the way
llama.cpp names them (``blk.N.attn_q.weight``), with PyTorch-order shapes. The
parameter total this yields is checked against each model's published count in
the unit tests, which is what keeps the catalog's numbers honest.
"""

from __future__ import annotations

from .precision import Format, fmt
from .specs import Architecture
from .tensors import Role, Tensor, make_tensor


def _attention(a: Architecture, i: int, dt: Format) -> list[Tensor]:
    h = a.hidden
    out: list[Tensor] = []
    p = f"blk.{i}."
    if a.is_mla:
        qk = a.qk_nope_head_dim + a.qk_rope_head_dim
        if a.q_lora_rank:
            out.append(
                make_tensor(p + "attn_q_a.weight", Role.ATTN_OTHER, (a.q_lora_rank, h), dt, i)
            )
            out.append(make_tensor(p + "attn_q_a_norm.weight", Role.NORM, (a.q_lora_rank,), dt, i))
            q_in = a.q_lora_rank
        else:
            q_in = h
        out.append(make_tensor(p + "attn_q_b.weight", Role.ATTN_OTHER, (a.heads * qk, q_in), dt, i))
        kv_a = (a.kv_lora_rank + a.qk_rope_head_dim, h)
        out.append(make_tensor(p + "attn_kv_a_mqa.weight", Role.ATTN_OTHER, kv_a, dt, i))
        out.append(make_tensor(p + "attn_kv_a_norm.weight", Role.NORM, (a.kv_lora_rank,), dt, i))
        kv_b = (a.heads * (a.qk_nope_head_dim + a.v_head_dim), a.kv_lora_rank)
        out.append(make_tensor(p + "attn_kv_b.weight", Role.ATTN_OTHER, kv_b, dt, i))
        o_in = a.heads * a.v_head_dim
    else:
        q, kv = a.heads * a.head_dim, a.kv_heads * a.head_dim
        out.append(make_tensor(p + "attn_q.weight", Role.ATTN_Q, (q, h), dt, i))
        out.append(make_tensor(p + "attn_k.weight", Role.ATTN_K, (kv, h), dt, i))
        out.append(make_tensor(p + "attn_v.weight", Role.ATTN_V, (kv, h), dt, i))
        if a.attn_bias:
            for name, role, n in (
                ("q", Role.ATTN_Q, q),
                ("k", Role.ATTN_K, kv),
                ("v", Role.ATTN_V, kv),
            ):
                out.append(make_tensor(f"{p}attn_{name}.bias", role, (n,), dt, i, is_bias=True))
        o_in = q
    out.append(make_tensor(p + "attn_output.weight", Role.ATTN_OUT, (h, o_in), dt, i))
    if a.attn_bias == "all":
        out.append(make_tensor(p + "attn_output.bias", Role.ATTN_OUT, (h,), dt, i, is_bias=True))
    return out


def _ffn(a: Architecture, i: int, dt: Format) -> list[Tensor]:
    h = a.hidden
    p = f"blk.{i}."
    out: list[Tensor] = []
    if a.is_moe and i >= a.dense_layers:
        e, f = a.experts, a.moe_intermediate
        out.append(make_tensor(p + "ffn_gate_inp.weight", Role.ROUTER, (e, h), dt, i))
        out.append(make_tensor(p + "ffn_gate_exps.weight", Role.EXPERT, (e, f, h), dt, i))
        out.append(make_tensor(p + "ffn_up_exps.weight", Role.EXPERT, (e, f, h), dt, i))
        out.append(make_tensor(p + "ffn_down_exps.weight", Role.EXPERT_DOWN, (e, h, f), dt, i))
        if a.expert_bias:
            for name, role, n in (
                ("gate", Role.EXPERT, f),
                ("up", Role.EXPERT, f),
                ("down", Role.EXPERT_DOWN, h),
            ):
                t = make_tensor(f"{p}ffn_{name}_exps.bias", role, (e, n), dt, i, is_bias=True)
                out.append(t)
        if a.shared_experts:
            s = a.shared_experts * f
            out.append(make_tensor(p + "ffn_gate_shexp.weight", Role.SHARED_EXPERT, (s, h), dt, i))
            out.append(make_tensor(p + "ffn_up_shexp.weight", Role.SHARED_EXPERT, (s, h), dt, i))
            down = make_tensor(p + "ffn_down_shexp.weight", Role.SHARED_EXPERT_DOWN, (h, s), dt, i)
            out.append(down)
        return out
    f = a.intermediate
    if a.gated_ffn:
        out.append(make_tensor(p + "ffn_gate.weight", Role.FFN_GATE, (f, h), dt, i))
    out.append(make_tensor(p + "ffn_up.weight", Role.FFN_UP, (f, h), dt, i))
    out.append(make_tensor(p + "ffn_down.weight", Role.FFN_DOWN, (h, f), dt, i))
    if a.ffn_bias:
        out.append(make_tensor(p + "ffn_up.bias", Role.FFN_UP, (f,), dt, i, is_bias=True))
        out.append(make_tensor(p + "ffn_down.bias", Role.FFN_DOWN, (h,), dt, i, is_bias=True))
    return out


def generate_tensors(a: Architecture, dtype: str = "bf16") -> tuple[Tensor, ...]:
    """The tensors of a model with architecture ``a``, all stored in ``dtype``."""
    dt = fmt(dtype)
    h = a.hidden
    out: list[Tensor] = [make_tensor("token_embd.weight", Role.EMBED, (a.vocab, h), dt)]
    if a.max_positions:
        out.append(make_tensor("position_embd.weight", Role.EMBED, (a.max_positions, h), dt))
    if a.encoder:
        out.append(make_tensor("token_types.weight", Role.EMBED, (2, h), dt))
    for i in range(a.layers):
        out.append(make_tensor(f"blk.{i}.attn_norm.weight", Role.NORM, (h,), dt, i))
        out.extend(_attention(a, i, dt))
        out.append(make_tensor(f"blk.{i}.ffn_norm.weight", Role.NORM, (h,), dt, i))
        out.extend(_ffn(a, i, dt))
    out.append(make_tensor("output_norm.weight", Role.NORM, (h,), dt))
    if not a.tied_embeddings and not a.encoder:
        out.append(make_tensor("output.weight", Role.OUTPUT, (a.vocab, h), dt))
    return tuple(out)
