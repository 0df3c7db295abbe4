"""Fixtures writing small, real model files for the planner's tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from planner_files import write_gguf, write_hf_folder


@pytest.fixture
def gguf_file(tmp_path: Path) -> Callable[..., tuple[Path, dict[str, Any]]]:
    """Factory: write a small GGUF file and return its path and expected tensors."""

    def make(**kw: Any) -> tuple[Path, dict[str, Any]]:
        path = tmp_path / f"model-{len(list(tmp_path.iterdir()))}.gguf"
        return path, write_gguf(path, **kw)

    return make


@pytest.fixture
def hf_folder(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A small Hugging Face model folder and the arrays it holds."""
    folder = tmp_path / "tiny-llama"
    return folder, write_hf_folder(folder)
