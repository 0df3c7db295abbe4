"""The fake's folders (input/, output/, temp/) and ComfyUI's file-name rules.

Reproduced from ComfyUI 0.3.64 behaviour: annotated names ("x.png [output]"), the
"<prefix>_<counter:05>_.png" numbering that continues from files already on disk,
LoadImage's list of top-level image files, and /upload/image's duplicate handling.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

_ANNOTATIONS = {"[output]": "output", "[input]": "input", "[temp]": "temp"}


@dataclass(frozen=True)
class UploadResult:
    """What /upload/image answered, and whether it wrote a file."""

    name: str
    subfolder: str
    type: str
    written: bool


class Folders:
    """input/, output/ and temp/ under one base folder."""

    def __init__(self, base: Path) -> None:
        self.base = base.resolve()
        self.input = self.base / "input"
        self.output = self.base / "output"
        self.temp = self.base / "temp"
        for folder in (self.input, self.output, self.temp):
            folder.mkdir(parents=True, exist_ok=True)

    def clear_temp(self) -> None:
        """ComfyUI empties temp/ when it starts."""
        shutil.rmtree(self.temp, ignore_errors=True)
        self.temp.mkdir(parents=True, exist_ok=True)

    def by_type(self, kind: str) -> Path | None:
        """The folder for a `type` value, None for an unknown one."""
        return {"input": self.input, "output": self.output, "temp": self.temp}.get(kind)

    def annotated(self, name: str) -> tuple[str, Path | None]:
        """Split "file.png [output]" into ("file.png", output folder)."""
        for suffix, kind in _ANNOTATIONS.items():
            if name.endswith(suffix):
                return name[: -len(suffix) - 1], self.by_type(kind)
        return name, None

    def annotated_path(self, name: str) -> Path:
        """Where LoadImage looks for `name` (input/ unless annotated)."""
        stripped, folder = self.annotated(name)
        return (folder or self.input) / stripped

    def input_images(self) -> list[str]:
        """LoadImage's combo: sorted top-level files of input/ with an image mimetype."""
        names = [p.name for p in self.input.iterdir() if p.is_file()]
        return sorted(n for n in names if content_type(n).startswith("image/"))

    def save_target(
        self, prefix: str, folder: Path, width: int, height: int
    ) -> tuple[Path, str, int, str]:
        """(folder, file stem, first free counter, subfolder) for SaveImage's prefix."""
        if "%" in prefix:
            now = time.localtime()
            for key, value in {
                "%width%": str(width),
                "%height%": str(height),
                "%year%": str(now.tm_year),
                "%month%": f"{now.tm_mon:02}",
                "%day%": f"{now.tm_mday:02}",
                "%hour%": f"{now.tm_hour:02}",
                "%minute%": f"{now.tm_min:02}",
                "%second%": f"{now.tm_sec:02}",
            }.items():
                prefix = prefix.replace(key, value)
        normalized = os.path.normpath(prefix)
        subfolder, stem = os.path.dirname(normalized), os.path.basename(normalized)
        target = (folder / subfolder).resolve()
        if os.path.commonpath((folder, target)) != str(folder):
            raise PermissionError(
                "**** ERROR: Saving image outside the output folder is not allowed."
                f"\n full_output_folder: {target}\n         output_dir: {folder}"
            )
        target.mkdir(parents=True, exist_ok=True)
        counters = [0]
        for existing in os.listdir(target):
            head, rest = existing[: len(stem)], existing[len(stem) :]
            if head == stem and rest.startswith("_"):
                digits = rest[1:].split("_")[0]
                if digits.isdigit() and rest[1 + len(digits) :].startswith("_"):
                    counters.append(int(digits))
        return target, stem, max(counters) + 1, subfolder

    def upload(
        self, filename: str, data: bytes, subfolder: str, kind: str, overwrite: bool
    ) -> UploadResult | None:
        """Store an upload as ComfyUI does; None when the path escapes the folder."""
        folder = self.by_type(kind)
        if folder is None:
            # ComfyUI fails with UnboundLocalError here, which becomes a 500.
            raise ValueError(f"unknown upload type {kind!r}")
        target_dir = Path(os.path.join(folder, os.path.normpath(subfolder)))
        path = Path(os.path.abspath(target_dir / filename))
        if os.path.commonpath((folder, path)) != str(folder):
            return None
        target_dir.mkdir(parents=True, exist_ok=True)
        stem, ext = os.path.splitext(filename)
        if not overwrite:
            i = 1
            while path.exists():
                if _sha256(path.read_bytes()) == _sha256(data):
                    return UploadResult(filename, subfolder, kind, written=False)
                filename = f"{stem} ({i}){ext}"
                path = target_dir / filename
                i += 1
        path.write_bytes(data)
        return UploadResult(filename, subfolder, kind, written=True)


def content_type(name: str) -> str:
    """Mimetype from the extension (ComfyUI registers .webp, older Pythons lack it)."""
    if name.lower().endswith(".webp"):
        return "image/webp"
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
