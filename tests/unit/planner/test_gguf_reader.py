"""GGUF headers: exact bytes and parameters from real files; corrupt files give SpecError."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparkplane.planner import PlannerError, SpecError, plan, read_gguf_header, spec_from_gguf
from sparkplane.planner.tensors import Role

Factory = Callable[..., tuple[Path, dict[str, Any]]]


def test_exact_bytes_and_params_per_tensor(gguf_file: Factory) -> None:
    path, expected = gguf_file()
    spec = spec_from_gguf(path)
    got = {t.name: (t.nbytes, t.params, t.shape) for t in spec.tensors}
    assert got == {n: (e["bytes"], e["params"], e["shape"]) for n, e in expected.items()}
    assert spec.weight_bytes == sum(e["bytes"] for e in expected.values())
    assert spec.params_total == sum(e["params"] for e in expected.values())
    # The tensor data fills the file after the header (plus alignment padding).
    header = read_gguf_header(path)
    assert header.data_offset + spec.weight_bytes <= path.stat().st_size


@pytest.mark.parametrize(
    "qtype",
    [
        Q.Q8_0,
        Q.Q4_0,
        Q.Q4_1,
        Q.Q5_0,
        Q.Q5_1,
        Q.Q2_K,
        Q.Q3_K,
        Q.Q4_K,
        Q.Q5_K,
        Q.Q6_K,
        Q.IQ4_XS,
        Q.IQ4_NL,
        Q.IQ2_XXS,
        Q.IQ3_S,
        Q.MXFP4,
        Q.BF16,
        Q.F16,
    ],
)
def test_every_quant_type_is_sized_exactly(gguf_file: Factory, qtype: Q) -> None:
    types = {k: qtype for k in ("attn_q", "ffn_gate", "ffn_up", "ffn_down")}
    path, expected = gguf_file(types=types)
    spec = spec_from_gguf(path)
    by_name = {t.name: t for t in spec.tensors}
    t = by_name["blk.0.ffn_down.weight"]
    assert t.nbytes == expected["blk.0.ffn_down.weight"]["bytes"]
    assert t.fmt.gguf_type == int(qtype)


def test_architecture_comes_from_metadata(gguf_file: Factory) -> None:
    path, _ = gguf_file(layers=3, hidden=512, heads=8, kv_heads=4, ff=1024, vocab=300)
    a = spec_from_gguf(path).arch
    assert a is not None
    assert (a.layers, a.hidden, a.heads, a.kv_heads, a.head_dim) == (3, 512, 8, 4, 64)
    assert (a.intermediate, a.vocab, a.max_context) == (1024, 300, 4096)
    assert not a.tied_embeddings


def test_tied_embeddings_and_moe_are_recognised(gguf_file: Factory) -> None:
    path, _ = gguf_file(tied=True, experts=4)
    spec = spec_from_gguf(path)
    assert spec.arch is not None
    assert spec.arch.tied_embeddings
    assert (spec.arch.experts, spec.arch.experts_active) == (4, 2)
    roles = {t.role for t in spec.tensors}
    assert {Role.EXPERT, Role.EXPERT_DOWN, Role.ROUTER} <= roles
    assert Role.OUTPUT not in roles


def test_file_type_and_name_are_reported(gguf_file: Factory) -> None:
    spec = spec_from_gguf(gguf_file()[0])
    assert spec.quant_label == "Q4_K_M"
    assert spec.name == "tiny-test-model"


def test_truncated_download_is_reported(gguf_file: Factory) -> None:
    path, _ = gguf_file()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(SpecError, match="truncated"):
        spec_from_gguf(path)


def test_not_a_gguf_file(tmp_path: Path) -> None:
    path = tmp_path / "x.gguf"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(SpecError, match="not a GGUF"):
        read_gguf_header(path)


def test_huge_declared_counts_fail_fast_without_allocating(tmp_path: Path) -> None:
    path = tmp_path / "x.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 2**62, 2**62) + bytes(64))
    with pytest.raises(SpecError, match=r"corrupt|truncated"):
        read_gguf_header(path)


def test_huge_declared_string_length(tmp_path: Path) -> None:
    path = tmp_path / "x.gguf"
    body = struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2**60) + b"key"
    path.write_bytes(b"GGUF" + body)
    with pytest.raises(SpecError):
        read_gguf_header(path)


def test_unsupported_version(tmp_path: Path) -> None:
    path = tmp_path / "x.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 1, 0, 0))
    with pytest.raises(SpecError, match="version"):
        read_gguf_header(path)


def test_absurd_metadata_is_rejected(tmp_path: Path) -> None:
    from gguf import GGUFWriter

    w = GGUFWriter(tmp_path / "a.gguf", "llama")
    w.add_block_count(2**31)
    w.add_embedding_length(256)
    w.add_head_count(4)
    w.add_tensor("output_norm.weight", np.zeros((256,), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(SpecError, match="out of range"):
        spec_from_gguf(tmp_path / "a.gguf")


def test_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError):
        read_gguf_header(tmp_path / "absent.gguf")


class _Blob(bytes):
    """File contents with a short repr (Hypothesis prints its arguments on failure)."""

    def __repr__(self) -> str:
        return f"<{len(self)} bytes>"


@pytest.fixture(scope="module")
def valid_gguf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from planner_files import write_gguf

    path = tmp_path_factory.mktemp("g") / "v.gguf"
    write_gguf(path, layers=1, vocab=64)
    return _Blob(path.read_bytes())


_FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_FUZZ
@given(cut=st.integers(min_value=0, max_value=10**6))
def test_fuzz_truncation_never_crashes(valid_gguf: bytes, cut: int, tmp_path: Path) -> None:
    path = tmp_path / "t.gguf"
    data = valid_gguf[: cut % len(valid_gguf)]
    path.write_bytes(data)
    with pytest.raises(SpecError):
        spec_from_gguf(path)


@_FUZZ
@given(pos=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
def test_fuzz_corrupted_byte_parses_or_raises_spec_error(
    valid_gguf: bytes, pos: int, value: int, tmp_path: Path
) -> None:
    data = bytearray(valid_gguf)
    header_end = read_header_end(valid_gguf)
    data[pos % header_end] = value
    path = tmp_path / "c.gguf"
    path.write_bytes(bytes(data))
    try:
        spec = spec_from_gguf(path)
    except SpecError:
        return
    assert spec.weight_bytes <= len(data)
    # Whatever the metadata now says, planning it ends (in an answer or a PlannerError).
    with contextlib.suppress(PlannerError):
        plan(spec, devices="rtx-4090")


@_FUZZ
@given(blob=st.binary(max_size=512))
def test_fuzz_random_bytes_after_magic(blob: bytes, tmp_path: Path) -> None:
    path = tmp_path / "r.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<I", 3) + blob)
    with contextlib.suppress(SpecError):
        spec_from_gguf(path)


def read_header_end(data: bytes) -> int:
    """Offset where tensor data starts (corrupting data bytes would prove nothing)."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".gguf") as fh:
        fh.write(data)
        fh.flush()
        return read_gguf_header(fh.name).data_offset
