"""Builders for small, real model files: GGUF (gguf-py writer) and safetensors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter
from safetensors.numpy import save_file

Q = GGMLQuantizationType


def _gguf_bytes(shape: tuple[int, ...], qtype: Q) -> int:
    """Bytes of a tensor, from gguf-py's own block table (independent of the planner's)."""
    block, size = GGML_QUANT_SIZES[qtype]
    rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    return rows * (shape[-1] // block) * size


def _add(w: GGUFWriter, name: str, shape: tuple[int, ...], qtype: Q) -> None:
    if qtype == Q.F32:
        w.add_tensor(name, np.zeros(shape, dtype=np.float32))
    elif qtype == Q.F16:
        w.add_tensor(name, np.zeros(shape, dtype=np.float16))
    else:
        block, size = GGML_QUANT_SIZES[qtype]
        byte_shape = (*shape[:-1], shape[-1] // block * size)
        w.add_tensor(name, np.zeros(byte_shape, dtype=np.uint8), raw_dtype=qtype)


def write_gguf(
    path: Path,
    *,
    layers: int = 2,
    hidden: int = 256,
    heads: int = 4,
    kv_heads: int = 2,
    ff: int = 512,
    vocab: int = 320,
    tied: bool = False,
    experts: int = 0,
    types: dict[str, Q] | None = None,
) -> dict[str, Any]:
    """Write a small llama-style GGUF; return the tensors' expected shapes, bytes, params."""
    t = {
        "token_embd": Q.Q8_0,
        "attn_q": Q.Q4_K,
        "attn_k": Q.Q4_0,
        "attn_v": Q.Q6_K,
        "attn_output": Q.Q5_K,
        "ffn_gate": Q.Q4_K,
        "ffn_up": Q.Q4_K,
        "ffn_down": Q.Q6_K,
        "output": Q.Q6_K,
        "norm": Q.F32,
        "experts": Q.Q8_0,
    }
    t.update(types or {})
    hd = hidden // heads
    tensors: list[tuple[str, tuple[int, ...], Q]] = [
        ("token_embd.weight", (vocab, hidden), t["token_embd"])
    ]
    for i in range(layers):
        p = f"blk.{i}."
        tensors += [
            (p + "attn_norm.weight", (hidden,), t["norm"]),
            (p + "attn_q.weight", (heads * hd, hidden), t["attn_q"]),
            (p + "attn_k.weight", (kv_heads * hd, hidden), t["attn_k"]),
            (p + "attn_v.weight", (kv_heads * hd, hidden), t["attn_v"]),
            (p + "attn_output.weight", (hidden, heads * hd), t["attn_output"]),
            (p + "ffn_norm.weight", (hidden,), t["norm"]),
        ]
        if experts:
            tensors += [
                (p + "ffn_gate_inp.weight", (experts, hidden), Q.F32),
                (p + "ffn_gate_exps.weight", (experts, ff, hidden), t["experts"]),
                (p + "ffn_up_exps.weight", (experts, ff, hidden), t["experts"]),
                (p + "ffn_down_exps.weight", (experts, hidden, ff), t["experts"]),
            ]
        else:
            tensors += [
                (p + "ffn_gate.weight", (ff, hidden), t["ffn_gate"]),
                (p + "ffn_up.weight", (ff, hidden), t["ffn_up"]),
                (p + "ffn_down.weight", (hidden, ff), t["ffn_down"]),
            ]
    tensors.append(("output_norm.weight", (hidden,), t["norm"]))
    if not tied:
        tensors.append(("output.weight", (vocab, hidden), t["output"]))
    w = GGUFWriter(path, "llama")
    w.add_name("tiny-test-model")
    w.add_block_count(layers)
    w.add_context_length(4096)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_file_type(15)
    if experts:
        w.add_uint32("llama.expert_count", experts)
        w.add_uint32("llama.expert_used_count", 2)
    w.add_array("tokenizer.ggml.tokens", [f"tok{i}" for i in range(vocab)])
    for name, shape, q in tensors:
        _add(w, name, shape, q)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return {
        name: {
            "shape": shape,
            "type": q,
            "bytes": _gguf_bytes(shape, q),
            "params": int(np.prod(shape)),
        }
        for name, shape, q in tensors
    }


def write_raw_safetensors(path: Path, entries: dict[str, tuple[str, list[int], int]]) -> None:
    """A safetensors file written by hand: name -> (dtype, shape, nbytes); data is zeros."""
    header: dict[str, Any] = {}
    offset = 0
    for name, (dtype, shape, nbytes) in entries.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + bytes(offset))


LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 100,
    "max_position_embeddings": 2048,
    "torch_dtype": "float16",
}


def write_hf_folder(folder: Path, *, shards: int = 2) -> dict[str, np.ndarray]:
    """A llama-style model folder: config.json, sharded FP16 safetensors and an index."""
    c = LLAMA_CONFIG
    h, f, v, kv = c["hidden_size"], c["intermediate_size"], c["vocab_size"], 2 * 16
    arrays: dict[str, np.ndarray] = {"model.embed_tokens.weight": np.zeros((v, h), np.float16)}
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        arrays[p + "input_layernorm.weight"] = np.zeros((h,), np.float32)
        arrays[p + "self_attn.q_proj.weight"] = np.zeros((h, h), np.float16)
        arrays[p + "self_attn.k_proj.weight"] = np.zeros((kv, h), np.float16)
        arrays[p + "self_attn.v_proj.weight"] = np.zeros((kv, h), np.float16)
        arrays[p + "self_attn.o_proj.weight"] = np.zeros((h, h), np.float16)
        arrays[p + "mlp.gate_proj.weight"] = np.zeros((f, h), np.float16)
        arrays[p + "mlp.up_proj.weight"] = np.zeros((f, h), np.float16)
        arrays[p + "mlp.down_proj.weight"] = np.zeros((h, f), np.float16)
    arrays["model.norm.weight"] = np.zeros((h,), np.float32)
    arrays["lm_head.weight"] = np.zeros((v, h), np.float16)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(c))
    names = list(arrays)
    weight_map = {}
    for s in range(shards):
        part = names[s::shards]
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        save_file({n: arrays[n] for n in part}, str(folder / fname))
        weight_map.update({n: fname for n in part})
    index = {"metadata": {}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return arrays
