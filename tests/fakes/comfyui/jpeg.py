"""A small baseline JPEG encoder (JFIF, 4:4:4, standard Huffman tables), numpy only.

Used where ComfyUI re-encodes with Pillow: `/view?preview=jpeg;Q` and JPEG latent
previews on the websocket. Quality scaling follows the IJG convention.
"""

from __future__ import annotations

import struct

import numpy as np

_LUMA_Q = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]  # fmt: skip
_CHROMA_Q = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
] + [99] * 32  # fmt: skip

# (bits per code length 1..16, symbol values) from the JPEG standard, annex K.3.
_DC_LUMA = ([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0], list(range(12)))
_DC_CHROMA = ([0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0], list(range(12)))
_AC_LUMA = (
    [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D],
    [
        0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51,
        0x61, 0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1,
        0x15, 0x52, 0xD1, 0xF0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18,
        0x19, 0x1A, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39,
        0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57,
        0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75,
        0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x92,
        0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
        0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3,
        0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8,
        0xD9, 0xDA, 0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2,
        0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
    ],
)  # fmt: skip
_AC_CHROMA = (
    [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77],
    [
        0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07,
        0x61, 0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09,
        0x23, 0x33, 0x52, 0xF0, 0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25,
        0xF1, 0x17, 0x18, 0x19, 0x1A, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38,
        0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56,
        0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74,
        0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
        0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5,
        0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA,
        0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6,
        0xD7, 0xD8, 0xD9, 0xDA, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2,
        0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
    ],
)  # fmt: skip


def _zigzag() -> list[int]:
    order = []
    for s in range(15):
        rows = range(max(0, s - 7), min(s, 7) + 1)
        for row in rows if s % 2 else reversed(rows):
            order.append(row * 8 + (s - row))
    return order


_ZIGZAG = _zigzag()
_DCT = np.array(
    [
        [
            (np.sqrt(0.125) if k == 0 else 0.5) * np.cos((2 * n + 1) * k * np.pi / 16)
            for n in range(8)
        ]
        for k in range(8)
    ]
)


def _codes(spec: tuple[list[int], list[int]]) -> dict[int, tuple[int, int]]:
    bits, values = spec
    table, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            table[values[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return table


def _scaled_table(base: list[int], quality: int) -> np.ndarray:
    quality = min(max(quality, 1), 100)
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    table: np.ndarray = np.clip((np.array(base) * scale + 50) // 100, 1, 255).astype(np.int64)
    return table


class _BitWriter:
    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.nbits = 0

    def write(self, code: int, length: int) -> None:
        self.acc = (self.acc << length) | code
        self.nbits += length
        while self.nbits >= 8:
            self.nbits -= 8
            byte = (self.acc >> self.nbits) & 0xFF
            self.out.append(byte)
            if byte == 0xFF:
                self.out.append(0)  # byte stuffing
        self.acc &= (1 << self.nbits) - 1

    def flush(self) -> bytes:
        if self.nbits:
            self.write((1 << (8 - self.nbits)) - 1, 8 - self.nbits)
        return bytes(self.out)


def _magnitude(value: int) -> tuple[int, int]:
    size = abs(value).bit_length()
    return size, (value if value >= 0 else value + (1 << size) - 1)


def _encode_block(w: _BitWriter, zz: list[int], prev_dc: int, dc: dict, ac: dict) -> int:  # type: ignore[type-arg]
    size, bits = _magnitude(zz[0] - prev_dc)
    w.write(*dc[size])
    if size:
        w.write(bits, size)
    run = 0
    for coef in zz[1:]:
        if coef == 0:
            run += 1
            continue
        while run > 15:
            w.write(*ac[0xF0])
            run -= 16
        size, bits = _magnitude(coef)
        w.write(*ac[(run << 4) | size])
        w.write(bits, size)
        run = 0
    if run:
        w.write(*ac[0x00])
    return zz[0]


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """Encode an [H, W, 3] uint8 array as a baseline JFIF JPEG."""
    height, width = rgb.shape[:2]
    px = rgb.astype(np.float64)
    ycc = np.stack(
        [
            0.299 * px[..., 0] + 0.587 * px[..., 1] + 0.114 * px[..., 2] - 128,
            -0.168736 * px[..., 0] - 0.331264 * px[..., 1] + 0.5 * px[..., 2],
            0.5 * px[..., 0] - 0.418688 * px[..., 1] - 0.081312 * px[..., 2],
        ]
    )
    ph, pw = -(-height // 8) * 8, -(-width // 8) * 8
    ycc = np.pad(ycc, ((0, 0), (0, ph - height), (0, pw - width)), mode="edge")
    qtables = [_scaled_table(_LUMA_Q, quality), _scaled_table(_CHROMA_Q, quality)]
    huff = [(_codes(_DC_LUMA), _codes(_AC_LUMA)), (_codes(_DC_CHROMA), _codes(_AC_CHROMA))]
    blocks = ycc.reshape(3, ph // 8, 8, pw // 8, 8).transpose(0, 1, 3, 2, 4)
    coefs = np.einsum("ij,cyxjk,lk->cyxil", _DCT, blocks, _DCT).reshape(3, ph // 8, pw // 8, 64)
    quant = [np.rint(coefs[c] / qtables[min(c, 1)]).astype(np.int64) for c in range(3)]
    writer = _BitWriter()
    prev = [0, 0, 0]
    for by in range(ph // 8):
        for bx in range(pw // 8):
            for c in range(3):
                zz = quant[c][by, bx][_ZIGZAG].tolist()
                dc, ac = huff[min(c, 1)]
                prev[c] = _encode_block(writer, zz, prev[c], dc, ac)
    return _headers(width, height, qtables) + writer.flush() + b"\xff\xd9"


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def _headers(width: int, height: int, qtables: list[np.ndarray]) -> bytes:
    out = b"\xff\xd8" + _segment(0xE0, b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    for index, table in enumerate(qtables):
        out += _segment(0xDB, bytes([index]) + bytes(table[_ZIGZAG].tolist()))
    comps = b"".join(bytes([c + 1, 0x11, min(c, 1)]) for c in range(3))
    out += _segment(0xC0, struct.pack(">BHHB", 8, height, width, 3) + comps)
    for klass, index, (bits, values) in [
        (0, 0, _DC_LUMA),
        (1, 0, _AC_LUMA),
        (0, 1, _DC_CHROMA),
        (1, 1, _AC_CHROMA),
    ]:
        out += _segment(0xC4, bytes([(klass << 4) | index]) + bytes(bits) + bytes(values))
    scan = b"".join(bytes([c + 1, (min(c, 1) << 4) | min(c, 1)]) for c in range(3))
    return out + _segment(0xDA, b"\x03" + scan + b"\x00\x3f\x00")
