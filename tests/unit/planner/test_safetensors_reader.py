"""safetensors headers: exact entries from real files; malformed headers give SpecError."""

from __future__ import annotations

import contextlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from planner_files import write_raw_safetensors
from safetensors.numpy import save_file

from sparkplane.planner import SpecError, read_safetensors_header
from sparkplane.planner.safetensors_reader import MAX_HEADER


def test_entries_match_what_was_saved(tmp_path: Path) -> None:
    arrays = {
        "a": np.zeros((3, 5), np.float32),
        "b": np.zeros((7,), np.float16),
        "c": np.zeros((2, 2, 2), np.int8),
    }
    path = tmp_path / "m.safetensors"
    save_file(arrays, str(path), metadata={"format": "pt"})
    h = read_safetensors_header(path)
    got = {e.name: (e.dtype, e.shape, e.nbytes) for e in h.entries}
    assert got == {
        "a": ("F32", (3, 5), 60),
        "b": ("F16", (7,), 14),
        "c": ("I8", (2, 2, 2), 8),
    }
    assert h.metadata == {"format": "pt"}


def test_bf16_and_fp8_dtypes(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    write_raw_safetensors(path, {"w": ("BF16", [4, 8], 64), "q": ("F8_E4M3", [16, 8], 128)})
    h = read_safetensors_header(path)
    assert {e.name: e.nbytes for e in h.entries} == {"w": 64, "q": 128}


def _write(path: Path, header: bytes, data: bytes = b"") -> None:
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)


def test_header_longer_than_file_is_truncation(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", 1000) + b"{}")
    with pytest.raises(SpecError, match="truncated"):
        read_safetensors_header(path)


def test_huge_declared_header_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", MAX_HEADER + 1) + b"{}")
    with pytest.raises(SpecError, match="limit"):
        read_safetensors_header(path)


@pytest.mark.parametrize(
    "header",
    [
        b"not json",
        b"[1, 2]",
        json.dumps({"w": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}).encode(),
        json.dumps({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}).encode(),
        json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}).encode(),
        json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 400]}}).encode(),
        json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}).encode(),
        json.dumps({"w": "nope"}).encode(),
        b"[" * 100_000 + b"]" * 100_000,
        json.dumps(
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
            }
        ).encode(),
    ],
    ids=[
        "text",
        "list",
        "dtype",
        "negative",
        "size",
        "past-end",
        "reversed",
        "entry",
        "deep",
        "overlap",
    ],
)
def test_malformed_headers(tmp_path: Path, header: bytes) -> None:
    path = tmp_path / "m.safetensors"
    _write(path, header, bytes(8))
    with pytest.raises(SpecError):
        read_safetensors_header(path)


@pytest.fixture(scope="module")
def valid_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("s") / "v.safetensors"
    save_file({"x": np.zeros((4, 4), np.float32), "y": np.zeros((3,), np.float16)}, str(path))
    return path.read_bytes()  # small: Hypothesis may print it


_FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_FUZZ
@given(cut=st.integers(min_value=0, max_value=10**6))
def test_fuzz_truncation(valid_file: bytes, cut: int, tmp_path: Path) -> None:
    data = valid_file[: cut % len(valid_file)]
    path = tmp_path / "t.safetensors"
    path.write_bytes(data)
    with pytest.raises(SpecError):
        read_safetensors_header(path)


@_FUZZ
@given(blob=st.binary(max_size=256), declared=st.integers(min_value=0, max_value=2**64 - 1))
def test_fuzz_random_header(blob: bytes, declared: int, tmp_path: Path) -> None:
    path = tmp_path / "r.safetensors"
    path.write_bytes(struct.pack("<Q", declared) + blob)
    with contextlib.suppress(SpecError):
        read_safetensors_header(path)


@_FUZZ
@given(
    entries=st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.fixed_dictionaries(
            {
                "dtype": st.sampled_from(["F32", "F16", "BF16", "I8", "U8", "F4", "X"]),
                "shape": st.lists(st.integers(min_value=-2, max_value=2**40), max_size=4),
                "data_offsets": st.lists(st.integers(min_value=-5, max_value=2**40), max_size=3),
            }
        ),
        max_size=4,
    )
)
def test_fuzz_structured_headers(entries: dict[str, object], tmp_path: Path) -> None:
    path = tmp_path / "s.safetensors"
    _write(path, json.dumps(entries).encode(), bytes(64))
    try:
        h = read_safetensors_header(path)
    except SpecError:
        return
    assert sum(e.nbytes for e in h.entries) <= 64
