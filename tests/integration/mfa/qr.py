"""Decode a QR code from SVG: ``rsvg-convert`` (Debian librsvg2-bin) → PNG → zbar (pyzbar).

The PNG is read with the standard library (zlib and the five PNG row filters),
so no imaging library is needed: pyzbar accepts raw 8-bit grey pixels.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib

from pyzbar.pyzbar import decode


def svg_to_png(svg: str, zoom: int = 4) -> bytes:
    """Render ``svg`` on a white background."""
    exe = shutil.which("rsvg-convert")
    assert exe, "rsvg-convert missing: apt-get install -y librsvg2-bin"
    return subprocess.run(
        [exe, "--format=png", f"--zoom={zoom}", "--background-color=white"],
        input=svg.encode(),
        capture_output=True,
        check=True,
    ).stdout


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def png_to_grey(png: bytes) -> tuple[bytes, int, int]:
    """8-bit, non-interlaced grey/RGB/RGBA PNG → (grey pixels, width, height)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = depth = colour = 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", data[:10])
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    assert depth == 8, depth
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    raw, stride = zlib.decompress(idat), width * bpp
    prev, out, i = bytearray(stride), bytearray(), 0
    for _ in range(height):
        ftype, line = raw[i], bytearray(raw[i + 1 : i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            line[x] = (line[x] + (0, a, b, (a + b) // 2, _paeth(a, b, c))[ftype]) & 0xFF
        out.extend(line[x] for x in range(0, stride, bpp))  # first channel: grey or red
        prev = line
    return bytes(out), width, height


def decode_svg_qr(svg: str) -> list[str]:
    """Every QR payload in ``svg``."""
    return [s.data.decode() for s in decode(png_to_grey(svg_to_png(svg)))]
