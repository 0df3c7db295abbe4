"""Hugging Face folders: exact parameter counts and bytes per dtype without loading weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from planner_files import LLAMA_CONFIG, write_raw_safetensors

from sparkplane.planner import SpecError, spec_from_hf_folder
from sparkplane.planner.quantize import describe_formats


def test_sharded_folder_counts_exactly(hf_folder: tuple[Path, dict[str, np.ndarray]]) -> None:
    folder, arrays = hf_folder
    spec = spec_from_hf_folder(folder)
    assert spec.params_total == sum(a.size for a in arrays.values())
    assert spec.weight_bytes == sum(a.nbytes for a in arrays.values())
    by_format = describe_formats(spec.tensors)
    assert by_format["fp16"] == sum(a.nbytes for a in arrays.values() if a.dtype == np.float16)
    assert by_format["fp32"] == sum(a.nbytes for a in arrays.values() if a.dtype == np.float32)
    a = spec.arch
    assert a is not None
    assert (a.layers, a.hidden, a.heads, a.kv_heads, a.head_dim) == (2, 64, 4, 2, 16)
    assert not a.tied_embeddings
    assert a.max_context == 2048
    assert spec.quant_label == "FP16"


def test_awq_packed_weights_count_eight_params_per_int32(tmp_path: Path) -> None:
    folder = tmp_path / "awq"
    folder.mkdir()
    cfg = {**LLAMA_CONFIG, "quantization_config": {"quant_method": "awq", "bits": 4}}
    (folder / "config.json").write_text(json.dumps(cfg))
    write_raw_safetensors(
        folder / "model.safetensors",
        {
            "model.layers.0.self_attn.q_proj.qweight": ("I32", [64, 8], 64 * 8 * 4),
            "model.layers.0.self_attn.q_proj.qzeros": ("I32", [1, 8], 32),
            "model.layers.0.self_attn.q_proj.scales": ("F16", [1, 64], 128),
            "model.embed_tokens.weight": ("F16", [100, 64], 100 * 64 * 2),
        },
    )
    spec = spec_from_hf_folder(folder)
    assert spec.params_total == 64 * 64 + 100 * 64  # scales and zeros are not parameters
    assert spec.weight_bytes == 64 * 8 * 4 + 32 + 128 + 100 * 64 * 2
    assert spec.native_quant == "int4"


def test_mxfp4_blocks_are_unpacked(tmp_path: Path) -> None:
    folder = tmp_path / "oss"
    folder.mkdir()
    cfg = {
        **LLAMA_CONFIG,
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "quantization_config": {"quant_method": "mxfp4"},
    }
    (folder / "config.json").write_text(json.dumps(cfg))
    write_raw_safetensors(
        folder / "model.safetensors",
        {
            "model.layers.0.mlp.experts.down_proj_blocks": ("U8", [4, 64, 4, 16], 4 * 64 * 64),
            "model.layers.0.mlp.experts.down_proj_scales": ("U8", [4, 64, 4], 4 * 64 * 4),
        },
    )
    spec = spec_from_hf_folder(folder)
    assert spec.params_total == 4 * 64 * 128
    assert spec.arch is not None
    assert spec.arch.experts == 4


def test_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"config\.json"):
        spec_from_hf_folder(tmp_path)


def test_diffusers_folder_points_to_catalog(tmp_path: Path) -> None:
    (tmp_path / "model_index.json").write_text("{}")
    with pytest.raises(SpecError, match="catalog"):
        spec_from_hf_folder(tmp_path)


def test_missing_shard_is_reported(hf_folder: tuple[Path, dict[str, np.ndarray]]) -> None:
    folder, _ = hf_folder
    next(folder.glob("*.safetensors")).unlink()
    with pytest.raises(SpecError, match="missing"):
        spec_from_hf_folder(folder)


def test_corrupt_config_is_a_spec_error(hf_folder: tuple[Path, dict[str, np.ndarray]]) -> None:
    folder, _ = hf_folder
    (folder / "config.json").write_text("{not json")
    with pytest.raises(SpecError, match="JSON"):
        spec_from_hf_folder(folder)


def test_truncated_shard_is_a_spec_error(hf_folder: tuple[Path, dict[str, np.ndarray]]) -> None:
    folder, _ = hf_folder
    shard = next(folder.glob("*.safetensors"))
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(SpecError):
        spec_from_hf_folder(folder)
