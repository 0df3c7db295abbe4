"""A bounded reader for safetensors headers.

A safetensors file is an 8-byte little-endian header length, that many bytes of
JSON describing each tensor (dtype, shape, byte range), then the data. Only the
header is read, and only after its declared length has been checked against a
limit and against the file's size; every entry is checked for a known dtype, a
sane shape and a byte range that matches the shape and stays inside the file.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SpecError

MAX_HEADER = 100 * 1024 * 1024
MAX_DIMS = 8

# Bits per element of each safetensors dtype.
DTYPE_BITS: dict[str, int] = {
    "F64": 64,
    "I64": 64,
    "U64": 64,
    "F32": 32,
    "I32": 32,
    "U32": 32,
    "F16": 16,
    "BF16": 16,
    "I16": 16,
    "U16": 16,
    "F8_E4M3": 8,
    "F8_E5M2": 8,
    "F8_E8M0": 8,
    "I8": 8,
    "U8": 8,
    "BOOL": 8,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "F4": 4,
}


@dataclass(frozen=True)
class SafetensorsEntry:
    """One tensor of a safetensors file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    offset: int = 0


@dataclass(frozen=True)
class SafetensorsHeader:
    """The parsed header of one safetensors file."""

    entries: tuple[SafetensorsEntry, ...]
    metadata: dict[str, str] = field(default_factory=dict)
    header_size: int = 0
    file_size: int = 0


def _entry(name: str, raw: Any, data_size: int, where: str) -> SafetensorsEntry:
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: entry {name!r} is not an object")
    dtype, shape, offsets = raw.get("dtype"), raw.get("shape"), raw.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise SpecError(f"{where}: tensor {name!r} has unknown dtype {dtype!r}")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMS
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise SpecError(f"{where}: tensor {name!r} has an invalid shape {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
    ):
        raise SpecError(f"{where}: tensor {name!r} has invalid data_offsets {offsets!r}")
    begin, end = offsets
    if not 0 <= begin <= end <= data_size:
        raise SpecError(
            f"{where}: tensor {name!r} bytes {begin}..{end} fall outside the data "
            f"({data_size} bytes; truncated file?)"
        )
    bits = math.prod(shape) * DTYPE_BITS[dtype]
    if bits % 8 or bits // 8 != end - begin:
        raise SpecError(
            f"{where}: tensor {name!r} is {end - begin} bytes but {dtype}{shape} needs {bits / 8:g}"
        )
    return SafetensorsEntry(name, dtype, tuple(shape), end - begin, begin)


def read_safetensors_header(path: str | os.PathLike[str]) -> SafetensorsHeader:
    """Read and check the header of a safetensors file.

    Raises :class:`SpecError` for a truncated file, a declared header length over
    :data:`MAX_HEADER` or past the end of the file, invalid JSON, or entries whose
    dtype, shape or byte range are impossible.
    """
    p = Path(path)
    where = p.name
    try:
        fh = p.open("rb")
    except OSError as exc:
        raise SpecError(f"cannot open {p}: {exc.strerror or exc}") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        if size < 8:
            raise SpecError(f"{where}: file too short for a safetensors header ({size} bytes)")
        (n,) = struct.unpack("<Q", fh.read(8))
        if n > MAX_HEADER:
            raise SpecError(f"{where}: header claims {n} bytes (limit {MAX_HEADER}); corrupt file")
        if 8 + n > size:
            raise SpecError(f"{where}: header claims {n} bytes but the file has {size}; truncated")
        raw = fh.read(n)
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SpecError(f"{where}: header is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise SpecError(f"{where}: header is not a JSON object")
    meta_raw = doc.pop("__metadata__", None) or {}
    if not isinstance(meta_raw, dict):
        raise SpecError(f"{where}: __metadata__ is not an object")
    metadata = {str(k): str(v) for k, v in meta_raw.items()}
    data_size = size - 8 - n
    entries = tuple(_entry(str(k), v, data_size, where) for k, v in doc.items())
    end = 0
    for e in sorted(entries, key=lambda e: (e.offset, e.nbytes)):
        if e.offset < end:
            raise SpecError(f"{where}: tensor {e.name!r} overlaps the tensor before it")
        end = e.offset + e.nbytes
    return SafetensorsHeader(entries, metadata, n, size)
