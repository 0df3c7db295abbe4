"""Tiny image support for the fake: PNG encode/decode with zlib+struct, header sniffing.

ComfyUI hands tensors of shape [batch, height, width, channels] between nodes; the fake
hands tuples of `Frame`. A solid-colour frame (what EmptyImage makes) keeps only its
colour, so a 1024x1024 batch of 256 costs nothing until it is encoded, and encodings of
solid frames are cached.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageDecodeError(Exception):
    """The bytes are not an image the fake can read."""


@dataclass(frozen=True, eq=False)
class Frame:
    """One RGB image: either a solid colour or an explicit uint8 [H, W, 3] array."""

    width: int
    height: int
    color: tuple[int, int, int] | None = None
    pixels: np.ndarray | None = field(default=None, repr=False)

    @staticmethod
    def solid(width: int, height: int, color: tuple[int, int, int]) -> Frame:
        """A frame of one colour."""
        return Frame(width, height, color=color)

    @staticmethod
    def from_array(pixels: np.ndarray) -> Frame:
        """A frame holding explicit pixels (RGB, uint8)."""
        return Frame(int(pixels.shape[1]), int(pixels.shape[0]), pixels=pixels)

    def array(self) -> np.ndarray:
        """The pixels as an [H, W, 3] uint8 array."""
        if self.pixels is not None:
            return self.pixels
        assert self.color is not None
        return np.broadcast_to(np.array(self.color, dtype=np.uint8), (self.height, self.width, 3))

    def inverted(self) -> Frame:
        """Like ComfyUI's ImageInvert (1.0 - x), done on bytes."""
        if self.color is not None:
            r, g, b = self.color
            return Frame.solid(self.width, self.height, (255 - r, 255 - g, 255 - b))
        return Frame.from_array(255 - self.array())

    def scaled(self, width: int, height: int) -> Frame:
        """Nearest-neighbour resize (the fake does not reproduce other filters)."""
        if self.color is not None:
            return Frame.solid(width, height, self.color)
        src = self.array()
        rows = (np.arange(height) * self.height // max(height, 1)).clip(0, self.height - 1)
        cols = (np.arange(width) * self.width // max(width, 1)).clip(0, self.width - 1)
        return Frame.from_array(np.ascontiguousarray(src[rows][:, cols]))

    def png(self, compress_level: int = 6, texts: tuple[tuple[str, str], ...] = ()) -> bytes:
        """PNG bytes of this frame, with optional tEXt chunks (key, value)."""
        if self.color is not None:
            return _solid_png(self.width, self.height, self.color, compress_level, texts)
        return encode_png(self.array(), compress_level=compress_level, texts=texts)

    def __str__(self) -> str:
        # Error reports format inputs with str(), as ComfyUI does for tensors.
        return f"tensor(shape=[1, {self.height}, {self.width}, 3], dtype=float32)"


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def _png_from_raw(
    width: int,
    height: int,
    color_type: int,
    raw: bytes,
    compress_level: int,
    texts: tuple[tuple[str, str], ...],
) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    parts = [PNG_SIGNATURE, _chunk(b"IHDR", ihdr)]
    for key, value in texts:
        parts.append(_chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1")))
    parts.append(_chunk(b"IDAT", zlib.compress(raw, compress_level)))
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)


def encode_png(
    pixels: np.ndarray, *, compress_level: int = 6, texts: tuple[tuple[str, str], ...] = ()
) -> bytes:
    """Encode an [H, W] or [H, W, C] uint8 array (C = 1, 3 or 4) as PNG, filter 0 rows."""
    arr = np.ascontiguousarray(pixels, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    height, width, channels = arr.shape
    color_type = {1: 0, 3: 2, 4: 6}[channels]
    rows = arr.reshape(height, width * channels)
    raw = np.concatenate([np.zeros((height, 1), dtype=np.uint8), rows], axis=1).tobytes()
    return _png_from_raw(width, height, color_type, raw, compress_level, texts)


@lru_cache(maxsize=64)
def _solid_png(
    width: int,
    height: int,
    color: tuple[int, int, int],
    compress_level: int,
    texts: tuple[tuple[str, str], ...],
) -> bytes:
    row = b"\0" + bytes(color) * width
    return _png_from_raw(width, height, 2, row * height, compress_level, texts)


def png_chunks(data: bytes) -> list[tuple[str, bytes]]:
    """The (type, payload) chunks of a PNG file; raises ImageDecodeError if not a PNG."""
    if not data.startswith(PNG_SIGNATURE):
        raise ImageDecodeError("not a PNG file")
    chunks = []
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8].decode("latin-1")
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
        if kind == "IEND":
            break
    return chunks


def png_texts(data: bytes) -> dict[str, str]:
    """The tEXt key/value pairs of a PNG file."""
    out = {}
    for kind, payload in png_chunks(data):
        if kind == "tEXt":
            key, _, value = payload.partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
    return out


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(raw: bytes, height: int, stride: int, bpp: int) -> np.ndarray:
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    pos = 0
    for y in range(height):
        kind = raw[pos]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=pos + 1).copy()
        pos += stride + 1
        if kind == 1:
            cols = line.reshape(-1, bpp).astype(np.int64)
            line = (np.cumsum(cols, axis=0) % 256).astype(np.uint8).reshape(-1)
        elif kind == 2:
            line = line + prev
        elif kind in (3, 4):
            vals = line.tolist()
            up = prev.tolist()
            for i in range(stride):
                left = vals[i - bpp] if i >= bpp else 0
                if kind == 3:
                    vals[i] = (vals[i] + ((left + up[i]) >> 1)) & 0xFF
                else:
                    upleft = up[i - bpp] if i >= bpp else 0
                    vals[i] = (vals[i] + _paeth(left, up[i], upleft)) & 0xFF
            line = np.array(vals, dtype=np.uint8)
        elif kind != 0:
            raise ImageDecodeError(f"bad PNG filter {kind}")
        out[y] = line
        prev = line
    return out


def decode_png(data: bytes) -> np.ndarray:
    """Decode an 8-bit, non-interlaced PNG into an [H, W, C] uint8 array (C = 1..4)."""
    chunks = png_chunks(data)
    header = dict(chunks).get("IHDR")
    if header is None or len(header) != 13:
        raise ImageDecodeError("PNG without IHDR")
    width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(color_type)
    if depth != 8 or interlace != 0 or channels is None:
        raise ImageDecodeError("PNG variant not supported by the fake")
    try:
        raw = zlib.decompress(b"".join(p for k, p in chunks if k == "IDAT"))
    except zlib.error as exc:
        raise ImageDecodeError(str(exc)) from exc
    if len(raw) < height * (width * channels + 1):
        raise ImageDecodeError("truncated PNG data")
    arr = _unfilter(raw, height, width * channels, channels).reshape(height, width, channels)
    if color_type == 3:
        palette = np.frombuffer(dict(chunks).get("PLTE", b""), dtype=np.uint8).reshape(-1, 3)
        arr = palette[arr[:, :, 0]]
    return arr


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of a PNG, JPEG, GIF, BMP or WEBP file, else None."""
    if data.startswith(PNG_SIGNATURE) and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return width, abs(height)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        if data[12:16] == b"VP8X":
            w = int.from_bytes(data[24:27], "little") + 1
            return w, int.from_bytes(data[27:30], "little") + 1
        return 64, 64  # the fake does not parse VP8/VP8L headers
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 9 < len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in (0xC0, 0xC1, 0xC2):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    return None


def load_frame(data: bytes) -> tuple[Frame, np.ndarray | None]:
    """Decode bytes into an RGB frame and its alpha channel (None when opaque).

    Images the fake cannot decode (JPEG, GIF, 16-bit PNG...) become a grey frame of the
    size found in their header; bytes with no image header raise ImageDecodeError.
    """
    try:
        arr = decode_png(data)
    except ImageDecodeError:
        size = image_size(data)
        if size is None:
            raise
        return Frame.solid(size[0], size[1], (128, 128, 128)), None
    channels = arr.shape[2]
    alpha = arr[:, :, -1] if channels in (2, 4) else None
    rgb = arr[:, :, :3] if channels >= 3 else np.repeat(arr[:, :, :1], 3, axis=2)
    return Frame.from_array(np.ascontiguousarray(rgb)), alpha
