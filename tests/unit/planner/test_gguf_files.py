"""Quantised sizes against real published GGUF files (tests/unit/planner/data/gguf_files.csv).

Each row is a public file, its size as its page lists it and the page's address;
the planner lays the model out from its catalog entry and applies llama.cpp's
per-tensor rules for the file type. The file also holds the tokenizer and
metadata (a few MB), which the weights do not.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from sparkplane.planner import QUANTS, load_model, parse_quant, quantize_spec

_TABLE = (Path(__file__).parent / "data" / "gguf_files.csv").read_text()
ROWS = list(csv.DictReader(_TABLE.splitlines()))
TOLERANCE = 0.03


def _weights(model: str, ftype: str) -> int:
    return quantize_spec(load_model(model), parse_quant(ftype), "llama.cpp").weight_bytes


def test_the_table_is_large_and_sourced() -> None:
    assert len(ROWS) >= 20
    assert len({r["model"] for r in ROWS}) >= 3
    assert len({r["ftype"] for r in ROWS}) >= 15
    for r in ROWS:
        assert r["source"].startswith("https://"), r
        assert r["file"].endswith(".gguf"), r


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r['model']}-{r['ftype']}-{r['file'][:20]}")
def test_weights_match_the_published_file(row: dict[str, str]) -> None:
    real = int(row["bytes"])
    assert _weights(row["model"], row["ftype"]) == pytest.approx(real, rel=TOLERANCE)


GGUF_TYPES = [q.name for q in QUANTS.values() if q.gguf]


@pytest.mark.parametrize("ftype", GGUF_TYPES)
def test_every_llama_cpp_file_type_plans(ftype: str) -> None:
    size = _weights("llama-3.1-8b", ftype)
    # Between 1.5 and 9 bits per parameter for an 8B model.
    assert 8.03e9 * 1.5 / 8 < size < 8.03e9 * 9 / 8


def test_more_bits_make_bigger_files() -> None:
    ladder = ["q8_0", "q6_k", "q5_k_m", "q4_k_m", "iq4_xs", "q3_k_m", "q2_k", "iq2_xxs", "iq1_s"]
    sizes = [_weights("qwen3-8b", f) for f in ladder]
    assert sizes == sorted(sizes, reverse=True)


def test_qwen3_8b_q4_k_m_is_the_size_of_the_published_file() -> None:
    # Qwen's own Qwen3-8B-Q4_K_M.gguf is listed at 5.03 GB; the issue that asked
    # for this saw 5.84 GB, which was weights plus the KV cache read per step.
    assert _weights("qwen3-8b", "q4_k_m") == pytest.approx(5.03e9, rel=TOLERANCE)
