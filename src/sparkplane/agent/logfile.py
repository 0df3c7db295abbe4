"""An engine's output in a rotating log file: `NAME.log`, then `NAME.log.1` ... `.N`.

The engine writes into a pipe the agent reads, not into the file itself, so the
file can be rotated while the engine runs (an engine holding the file open
would keep writing into the rotated one).
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO


class RotatingLog:
    """Appends bytes to `path`, rotating it past `max_bytes`, keeping `backups` old files."""

    def __init__(self, path: Path, max_bytes: int = 10 * 1024 * 1024, backups: int = 3) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO | None = None

    def write(self, data: bytes) -> None:
        """Append `data`, rotating first if it would pass the size limit."""
        if self._file is None:
            self._file = self.path.open("ab")
        if self._file.tell() and self._file.tell() + len(data) > self.max_bytes:
            self._rotate()
        assert self._file is not None
        self._file.write(data)
        self._file.flush()

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
        for index in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        if self.backups > 0:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._file = self.path.open("ab")

    def close(self) -> None:
        """Close the file (writing again reopens it)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def tail(self, lines: int) -> str:
        """The last `lines` lines, reaching into the newest rotated file if needed."""
        chunks: list[bytes] = []
        count = 0
        for path in (self.path, self.path.with_name(f"{self.path.name}.1")):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            chunks.insert(0, data)
            count += data.count(b"\n")
            if count >= lines:
                break
        text = b"".join(chunks).decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:]) + ("\n" if text else "")
