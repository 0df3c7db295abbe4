"""A bounded reader for GGUF headers: metadata and tensor table, never tensor data.

Every length read from the file is checked against the bytes that remain before
anything is allocated, so a corrupt, truncated or hostile file ends in a
:class:`~sparkplane.planner.errors.SpecError`, not a crash or a huge allocation.
Large arrays (the tokenizer's vocabulary) are skipped; their length is kept.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import SpecError
from .precision import GGML_TYPES, Format

GGUF_MAGIC = b"GGUF"
MAX_STRING = 16 * 1024 * 1024
MAX_DIMS = 8
MAX_ELEMENTS = 1 << 50
KEEP_ARRAY = 4096  # numeric arrays up to this length are kept (per-layer settings)

_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1),
    1: ("<b", 1),
    2: ("<H", 2),
    3: ("<h", 2),
    4: ("<I", 4),
    5: ("<i", 4),
    6: ("<f", 4),
    7: ("<?", 1),
    10: ("<Q", 8),
    11: ("<q", 8),
    12: ("<d", 8),
}
_STRING, _ARRAY = 8, 9

Value = int | float | bool | str | list[int] | list[float] | list[bool]


@dataclass(frozen=True)
class SkippedArray:
    """A metadata array too long to keep: its element type and length."""

    type: int
    count: int


@dataclass(frozen=True)
class GGUFTensor:
    """One entry of the tensor table. ``shape`` is PyTorch order (GGUF dims reversed)."""

    name: str
    shape: tuple[int, ...]
    fmt: Format
    offset: int
    nbytes: int


@dataclass(frozen=True)
class GGUFHeader:
    """What a GGUF file says about itself."""

    version: int
    metadata: dict[str, Value | SkippedArray]
    tensors: tuple[GGUFTensor, ...]
    alignment: int
    data_offset: int
    file_size: int


class _Cursor:
    """Reads from a file, refusing to go past its end."""

    def __init__(self, fh: BinaryIO, size: int) -> None:
        self.fh = fh
        self.size = size
        self.pos = 0

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise SpecError(
                f"GGUF truncated or corrupt: {what} needs {n} bytes at offset {self.pos}, "
                f"file has {self.size}"
            )

    def read(self, n: int, what: str) -> bytes:
        self.need(n, what)
        data = self.fh.read(n)
        if len(data) != n:
            raise SpecError(f"GGUF truncated: short read of {what} at offset {self.pos}")
        self.pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        self.pos += n
        self.fh.seek(self.pos)

    def u32(self, what: str) -> int:
        return int(struct.unpack("<I", self.read(4, what))[0])

    def u64(self, what: str) -> int:
        return int(struct.unpack("<Q", self.read(8, what))[0])

    def string(self, what: str) -> str:
        n = self.u64(f"length of {what}")
        if n > MAX_STRING:
            raise SpecError(f"GGUF corrupt: {what} claims {n} bytes (limit {MAX_STRING})")
        raw = self.read(n, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("utf-8", errors="replace")

    def skip_string(self, what: str) -> None:
        n = self.u64(f"length of {what}")
        self.skip(n, what)


def _scalar(cur: _Cursor, vtype: int, what: str) -> int | float | bool:
    fmt_, size = _SCALARS[vtype]
    value: int | float | bool = struct.unpack(fmt_, cur.read(size, what))[0]
    return value


def _array(cur: _Cursor, key: str) -> Value | SkippedArray:
    etype = cur.u32(f"element type of {key}")
    count = cur.u64(f"length of {key}")
    if etype in _SCALARS:
        size = _SCALARS[etype][1]
        cur.need(count * size, f"array {key}")
        if count <= KEEP_ARRAY:
            values: list[int] | list[float] | list[bool] = [
                _scalar(cur, etype, key) for _ in range(count)
            ]
            return values
        cur.skip(count * size, f"array {key}")
        return SkippedArray(etype, count)
    if etype == _STRING:
        cur.need(count * 8, f"string array {key}")  # every string has an 8-byte length
        for _ in range(count):
            cur.skip_string(f"element of {key}")
        return SkippedArray(etype, count)
    raise SpecError(f"GGUF corrupt: array {key} has unsupported element type {etype}")


def _value(cur: _Cursor, vtype: int, key: str) -> Value | SkippedArray:
    if vtype in _SCALARS:
        return _scalar(cur, vtype, key)
    if vtype == _STRING:
        return cur.string(f"value of {key}")
    if vtype == _ARRAY:
        return _array(cur, key)
    raise SpecError(f"GGUF corrupt: metadata {key!r} has unknown value type {vtype}")


def _tensor_info(cur: _Cursor, index: int) -> tuple[str, tuple[int, ...], Format, int]:
    name = cur.string(f"name of tensor {index}")
    n_dims = cur.u32(f"dimension count of {name}")
    if not 1 <= n_dims <= MAX_DIMS:
        raise SpecError(f"GGUF corrupt: tensor {name!r} has {n_dims} dimensions")
    dims = [cur.u64(f"dimension of {name}") for _ in range(n_dims)]
    if math.prod(dims) > MAX_ELEMENTS:
        raise SpecError(f"GGUF corrupt: tensor {name!r} claims {math.prod(dims)} elements")
    type_id = cur.u32(f"type of {name}")
    if type_id not in GGML_TYPES:
        raise SpecError(f"GGUF tensor {name!r} has unknown GGML type {type_id}")
    offset = cur.u64(f"offset of {name}")
    return name, tuple(reversed(dims)), GGML_TYPES[type_id], offset


def read_gguf_header(path: str | os.PathLike[str]) -> GGUFHeader:
    """Read and check a GGUF file's header.

    Raises :class:`SpecError` for a file that is not GGUF, is truncated, has
    impossible lengths or tensors reaching past its end.
    """
    p = Path(path)
    try:
        fh = p.open("rb")
    except OSError as exc:
        raise SpecError(f"cannot open GGUF file {p}: {exc.strerror or exc}") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        cur = _Cursor(fh, size)
        if size < 8 or cur.read(4, "magic") != GGUF_MAGIC:
            raise SpecError(f"{p.name} is not a GGUF file (bad magic)")
        version = cur.u32("version")
        if version not in (2, 3):
            if version in (0x02000000, 0x03000000):
                raise SpecError(f"{p.name} is a big-endian GGUF file, which is not supported")
            raise SpecError(f"{p.name}: unsupported GGUF version {version}")
        n_tensors = cur.u64("tensor count")
        n_kv = cur.u64("metadata count")
        # Each metadata entry takes at least 12 bytes and each tensor entry at least 28:
        # a count that could not fit in the file is corrupt, whatever it claims.
        cur.need(n_kv * 12 + n_tensors * 28, "metadata and tensor table")
        metadata: dict[str, Value | SkippedArray] = {}
        for i in range(n_kv):
            key = cur.string(f"key {i}")
            metadata[key] = _value(cur, cur.u32(f"type of {key}"), key)
        infos = [_tensor_info(cur, i) for i in range(n_tensors)]
        alignment = metadata.get("general.alignment", 32)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise SpecError(f"GGUF corrupt: general.alignment is {alignment!r}")
        data_offset = -(-cur.pos // alignment) * alignment
    tensors: list[GGUFTensor] = []
    for name, shape, fmt_, offset in infos:
        if not fmt_.fits_rows(shape[-1]):
            raise SpecError(f"GGUF corrupt: tensor {name!r} rows are not whole {fmt_.name} blocks")
        nbytes = fmt_.nbytes(shape)
        end = data_offset + offset + nbytes
        if end > size:
            raise SpecError(
                f"GGUF truncated: tensor {name!r} ends at byte {end} but the file has {size} "
                "(incomplete download?)"
            )
        tensors.append(GGUFTensor(name, shape, fmt_, offset, nbytes))
    end = 0
    for t in sorted(tensors, key=lambda t: t.offset):
        if t.offset < end:
            raise SpecError(f"GGUF corrupt: tensor {t.name!r} overlaps the tensor before it")
        end = t.offset + t.nbytes
    return GGUFHeader(version, metadata, tuple(tensors), alignment, data_offset, size)
