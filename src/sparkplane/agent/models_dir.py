"""The model files in an agent's models folder, with the planner's facts.

GGUF files (`*.gguf`; of a split model only its first part) and Hugging Face
folders (a `config.json` beside `*.safetensors`). Nothing is downloaded: a
model the node should run is a file put in this folder (or a path given).
Files the planner cannot read are still listed, with the reason.
"""

from __future__ import annotations

import re
from pathlib import Path

from sparkplane.agent.protocol import ModelFile
from sparkplane.agent.sizing import size
from sparkplane.planner import PlannerError, load_model

_PART = re.compile(r"-(\d+)-of-\d+\.gguf$")
MAX_FILES = 500


def _candidates(folder: Path) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    for path in sorted(folder.rglob("*.gguf")):
        part = _PART.search(path.name)
        if path.is_file() and (part is None or int(part.group(1)) == 1):
            found.append((path, "gguf"))
    for config in sorted(folder.rglob("config.json")):
        if any(config.parent.glob("*.safetensors")):
            found.append((config.parent, "safetensors"))
    return found[:MAX_FILES]


def _bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.glob("*.safetensors"))


def describe(path: Path, fmt: str) -> ModelFile:
    """One model with the planner's facts (or the reason they are missing)."""
    engine = "llamacpp" if fmt == "gguf" else "vllm"
    name = path.stem if fmt == "gguf" else path.name
    entry = ModelFile(
        name=name,
        path=str(path.resolve()),
        format="gguf" if fmt == "gguf" else "safetensors",
        bytes=_bytes(path),
        engine=engine,
    )
    try:
        sizing = size(load_model(str(path)), engine)
    except PlannerError as exc:
        entry.error = exc.message
        return entry
    except (OSError, ValueError) as exc:
        entry.error = f"unreadable: {exc}"[:300]
        return entry
    if sizing is not None:
        entry.need_bytes = sizing.need_bytes
        entry.context = sizing.context
        entry.kv_bytes_per_token = sizing.kv_bytes_per_token
        entry.quant = sizing.quant
        entry.params = sizing.params
    return entry


def scan(folder: Path) -> list[ModelFile]:
    """Every model in `folder` (none when it does not exist)."""
    if not folder.is_dir():
        return []
    return [describe(path, fmt) for path, fmt in _candidates(folder)]


class ModelShelf:
    """The models folder, re-listed on demand; a file's facts are read once per
    version of it (its size and modification time), since headers take a while."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._known: dict[tuple[str, int, int], ModelFile] = {}

    def scan(self) -> list[ModelFile]:
        """Every model in the folder now."""
        if not self.folder.is_dir():
            return []
        out: list[ModelFile] = []
        known: dict[tuple[str, int, int], ModelFile] = {}
        for path, fmt in _candidates(self.folder):
            try:
                stat = path.stat()
            except OSError:
                continue
            key = (str(path), stat.st_size, stat.st_mtime_ns)
            entry = self._known.get(key) or describe(path, fmt)
            known[key] = entry
            out.append(entry)
        self._known = known
        return out
