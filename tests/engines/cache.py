"""A content-addressed folder for the model files the test suite writes itself.

Files are keyed by a hash of what produced them (generator parameters and the
generator's version), so changing either writes a new file instead of reusing a
stale one. Writes are atomic: a file appears under its final name complete or
not at all, so parallel test sessions can share the folder.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

_ENV_VAR = "SPARKPLANE_TEST_CACHE"


def cache_dir() -> Path:
    """The cache folder: `$SPARKPLANE_TEST_CACHE` or `~/.cache/sparkplane-tests`."""
    configured = os.environ.get(_ENV_VAR)
    folder = Path(configured) if configured else Path.home() / ".cache" / "sparkplane-tests"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def cache_key(params: Mapping[str, Any]) -> str:
    """A short stable hash of JSON-serialisable parameters."""
    blob = json.dumps(params, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def source_version(*sources: str | Path) -> str:
    """A hash of the generator's source files and the gguf package version.

    Used as the "script version" part of a cache key: editing a generator (or
    upgrading the writer library) can never serve a file the old code wrote.
    """
    digest = hashlib.sha256(importlib.metadata.version("gguf").encode())
    for source in sources:
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()[:16]


def cached_file(stem: str, params: Mapping[str, Any], write: Callable[[Path], None]) -> Path:
    """Return `<cache>/<stem>-<key>.gguf`, calling `write(tmp_path)` first if it is missing."""
    target = cache_dir() / f"{stem}-{cache_key(params)}.gguf"
    if target.is_file():
        return target
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{stem}-", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
