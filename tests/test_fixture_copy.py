"""The repository keeps a copy of the recorded ComfyUI exchanges so a clone
anywhere can run the conformance tests; it must not drift from the original."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.comfyui.recorded import VENDORED, candidate_dirs


def test_the_copy_matches_the_shared_original() -> None:
    originals = [d for d in candidate_dirs() if d != VENDORED and (d / "README.md").is_file()]
    if not originals:
        pytest.skip("the shared fixtures folder is not beside this checkout; nothing to compare")
    original: Path = originals[0]
    names = sorted(p.name for p in original.iterdir())
    assert names == sorted(p.name for p in VENDORED.iterdir())
    for name in names:
        assert (original / name).read_bytes() == (VENDORED / name).read_bytes(), name
