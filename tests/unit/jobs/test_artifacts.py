"""Client-given names cannot leave their folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkplane.jobs.artifacts import UnsafePath, safe_join, split_output_subfolder


@pytest.mark.parametrize(
    "names",
    [("..", "x"), ("a/../../b",), ("/etc/passwd",), ("a", "..\\b"), ("x\x00y",), ("C:/x",)],
)
def test_escapes_are_refused(tmp_path: Path, names: tuple[str, ...]) -> None:
    with pytest.raises(UnsafePath):
        safe_join(tmp_path, *names)


def test_plain_names_stay_inside(tmp_path: Path) -> None:
    assert safe_join(tmp_path, "sub/dir", "./a.png") == tmp_path / "sub" / "dir" / "a.png"


def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "inside").mkdir()
    (tmp_path / "inside" / "link").symlink_to(tmp_path.parent)
    with pytest.raises(UnsafePath):
        safe_join(tmp_path / "inside", "link", "x")


def test_output_subfolders_name_their_job() -> None:
    job = "0123456789abcdef0123456789abcdef"
    assert split_output_subfolder(f"{job}/sub/dir") == (job, "sub/dir")
    assert split_output_subfolder("not-a-job") is None
