"""``sparkplane plan`` run as a subprocess, as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sparkplane.cli", "plan", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_table_across_devices() -> None:
    r = run("llama-3.1-70b", "--quant", "nvfp4", "--device", "dgx-spark", "--device", "rtx-4090")
    assert r.returncode == 0, r.stderr
    assert "dgx-spark" in r.stdout
    assert "rtx-4090" in r.stdout
    assert "decode tok/s" in r.stdout
    assert "kv_cache" in r.stdout
    assert "does not fit" in r.stdout  # the 4090's row says why


def test_json_answer() -> None:
    r = run("gpt-oss-120b", "--device", "dgx-spark,h100-80gb", "--context", "4096", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["context"] == 4096
    assert [d["device"] for d in doc["devices"]] == ["dgx-spark", "h100-80gb"]
    spark = doc["devices"][0]
    assert spark["fits"]
    assert spark["decode"]["tokens_per_s"] > 0
    assert {i["label"] for i in spark["memory"]["items"]} >= {"weights", "kv_cache", "runtime"}


def test_model_known_by_numbers() -> None:
    r = run(
        "--params-b",
        "120",
        "--active-params-b",
        "12",
        "--quant",
        "q4_k_m",
        "--engine",
        "llama.cpp",
        "--device",
        "dgx-spark",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["engine"] == "llama.cpp"
    assert doc["model"]["assumed"]


def test_unknown_model_lists_closest_names() -> None:
    r = run("llama-3.1-7b")
    assert r.returncode == 2
    assert "unknown model" in r.stderr
    assert "llama-3.1-8b" in r.stderr
    assert "Traceback" not in r.stderr


def _tiny_gguf(path: Path) -> None:
    w = GGUFWriter(path, "llama")
    w.add_block_count(1)
    w.add_embedding_length(256)
    w.add_head_count(4)
    w.add_feed_forward_length(512)
    w.add_context_length(2048)
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType.Q8_0]
    for name, shape in (("token_embd.weight", (64, 256)), ("blk.0.ffn_up.weight", (512, 256))):
        data = np.zeros((shape[0], shape[1] // block * size), np.uint8)
        w.add_tensor(name, data, raw_dtype=GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_gguf_file(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    _tiny_gguf(path)
    r = run(str(path), "--device", "rtx-4090", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["model"]["source"] == "gguf"
    assert doc["model"]["weight_bytes"] == (64 + 512) * 256 // 32 * 34


@pytest.mark.parametrize("cut", [10, 200, -50])
def test_corrupt_gguf_is_a_clear_error(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "tiny.gguf"
    _tiny_gguf(path)
    path.write_bytes(path.read_bytes()[:cut])
    r = run(str(path))
    assert r.returncode == 2
    assert "GGUF" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_option_values() -> None:
    r = run("llama-3.1-8b", "--quant", "q9_9")
    assert r.returncode == 2
    assert "unknown precision" in r.stderr
    r = run("llama-3.1-8b", "--device", "rtx-9090")
    assert r.returncode == 2
    assert "unknown device" in r.stderr


def test_diffusion_models_together() -> None:
    r = run("flux.1-dev", "--device", "dgx-spark", "--with", "sdxl", "--with", "controlnet-sdxl")
    assert r.returncode == 0, r.stderr
    assert "fit together" in r.stdout
    assert "s/step" in r.stdout
