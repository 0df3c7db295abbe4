"""The models folder listing with the planner's facts."""

from __future__ import annotations

import shutil
from pathlib import Path

from sparkplane.agent.models_dir import ModelShelf, scan
from tests.unit.planner.planner_files import write_hf_folder


def test_a_gguf_file_is_listed_with_what_it_needs(tmp_path: Path, tiny_llama_gguf: Path) -> None:
    shutil.copy(tiny_llama_gguf, tmp_path / "tiny.gguf")
    (tmp_path / "notes.txt").write_text("not a model")
    (entry,) = scan(tmp_path)
    assert entry.name == "tiny"
    assert entry.format == "gguf"
    assert entry.engine == "llamacpp"
    assert entry.bytes == tiny_llama_gguf.stat().st_size
    assert entry.need_bytes is not None
    assert entry.need_bytes > entry.bytes
    assert entry.context
    assert entry.kv_bytes_per_token
    assert entry.params
    assert entry.error is None


def test_a_file_the_planner_cannot_read_is_listed_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "broken.gguf").write_bytes(b"not a gguf file at all")
    (entry,) = scan(tmp_path)
    assert entry.name == "broken"
    assert entry.need_bytes is None
    assert entry.error


def test_later_parts_of_a_split_model_are_not_listed(tmp_path: Path) -> None:
    for part in ("m-00001-of-00002.gguf", "m-00002-of-00002.gguf"):
        (tmp_path / part).write_bytes(b"x")
    assert [e.name for e in scan(tmp_path)] == ["m-00001-of-00002"]


def test_a_missing_folder_lists_nothing(tmp_path: Path) -> None:
    assert scan(tmp_path / "nope") == []


def test_the_shelf_reads_a_file_again_only_when_it_changed(
    tmp_path: Path, tiny_llama_gguf: Path
) -> None:
    shelf = ModelShelf(tmp_path)
    shutil.copy(tiny_llama_gguf, tmp_path / "tiny.gguf")
    first = shelf.scan()
    assert shelf.scan()[0] is first[0]
    (tmp_path / "tiny.gguf").write_bytes(b"replaced by something unreadable")
    assert shelf.scan()[0].error


def test_a_hugging_face_folder_is_listed_for_vllm(tmp_path: Path) -> None:
    write_hf_folder(tmp_path / "tiny-llama-hf")
    (entry,) = scan(tmp_path)
    assert entry.name == "tiny-llama-hf"
    assert entry.format == "safetensors"
    assert entry.engine == "vllm"
    assert entry.bytes == sum(
        p.stat().st_size for p in (tmp_path / "tiny-llama-hf").glob("*.safetensors")
    )
    assert entry.need_bytes is not None
    assert entry.need_bytes > entry.bytes  # vLLM's runtime and the KV cache on top
    assert entry.error is None
