"""Draws the PWA icons (a white coin on café green) without an image library.

Run once; the PNGs are committed. ``maskable`` keeps the coin inside the 80 % safe zone.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

GREEN = (20, 83, 45)
WHITE = (255, 255, 255)
OUT = Path(__file__).resolve().parent.parent / "static" / "icons"


def _png(size: int, pixels: list[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + row for row in pixels)
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def icon(size: int, coin_fraction: float) -> bytes:
    centre = size / 2
    outer = size * coin_fraction / 2
    inner = outer * 0.72
    rows = []
    for y in range(size):
        row = bytearray()
        for x in range(size):
            d = ((x + 0.5 - centre) ** 2 + (y + 0.5 - centre) ** 2) ** 0.5
            row += bytes(WHITE if d <= outer and not (inner * 0.85 < d < inner) else GREEN)
        rows.append(bytes(row))
    return _png(size, rows)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "icon-192.png").write_bytes(icon(192, 0.8))
    (OUT / "icon-512.png").write_bytes(icon(512, 0.8))
    (OUT / "icon-maskable-512.png").write_bytes(icon(512, 0.6))
    print("icons written to", OUT)
