"""Loader for the recorded ComfyUI fixtures (shared/fixtures/comfyui beside the checkout).

Where it looks: $SPARKPLANE_FIXTURES (the fixtures root holding comfyui/, or the
comfyui folder itself), then `shared/fixtures/comfyui` in the folder holding the
repository checkout and in each folder above it (so a worktree at /work/wt/x finds
/work/shared), then the copy kept in the repository (tests/fixtures/comfyui), so a
clone anywhere runs the conformance tests. tests/test_fixture_copy.py fails when
the copy and the shared original differ.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

ENV_VAR = "SPARKPLANE_FIXTURES"
VENDORED = Path(__file__).resolve().parents[2] / "fixtures" / "comfyui"


def _repo_root() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    return here.parents[3]


def candidate_dirs() -> list[Path]:
    """Every folder the loader tries, in order."""
    out = []
    override = os.environ.get(ENV_VAR)
    if override:
        out += [Path(override) / "comfyui", Path(override)]
    root = _repo_root()
    out += [parent / "shared" / "fixtures" / "comfyui" for parent in root.parents]
    out.append(VENDORED)
    return out


@cache
def fixtures_dir() -> Path | None:
    """The recorded fixtures folder, or None when none of the candidates exists."""
    for folder in candidate_dirs():
        if (folder / "README.md").is_file() and (folder / "ws_sequence.json").is_file():
            return folder
    return None


def missing_message() -> str:
    """Why fixture-based tests skip."""
    tried = ", ".join(str(p) for p in candidate_dirs())
    return f"ComfyUI fixtures not found (set {ENV_VAR}); looked in: {tried}"


def load(name: str) -> dict[str, Any]:
    """One fixture file by name, with or without '.json'."""
    folder = fixtures_dir()
    if folder is None:
        raise FileNotFoundError(missing_message())
    filename = name if name.endswith(".json") else f"{name}.json"
    with (folder / filename).open() as f:
        return dict(json.load(f))


def names(prefix: str = "") -> list[str]:
    """Fixture names (without .json) starting with `prefix`."""
    folder = fixtures_dir()
    if folder is None:
        return []
    return sorted(p.stem for p in folder.glob(f"{prefix}*.json"))
