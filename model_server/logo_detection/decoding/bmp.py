"""BMP bytes -> RGB pixels exactly as `tf.io.decode_image(channels=3)` reads them.

TensorFlow does not use a BMP library: it reads the pixel offset, width, height and bits per
pixel from the header and copies bytes. 8-bit files are one grey channel (a palette, if any, is
not applied: the index is the grey level), 24-bit are BGR and 32-bit BGRA (alpha dropped); rows
are bottom-up unless the height is negative, padded to 4 bytes, and the file must end exactly
after the last row. Compression is not looked at. Other depths are refused. This module
reproduces that reading, so a BMP gives the model the pixels it was trained on.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..errors import undecodable

_HEADER = struct.Struct("<10xi4xii2xh")  # pixel offset @10, width @18, height @22, bpp @28
_MAX_PIXELS = (2**31 - 1) // 8  # TensorFlow's own bound on width x height


@dataclass(frozen=True)
class BmpHeader:
    pixel_offset: int
    width: int
    height: int  # negative: rows stored top-down
    channels: int  # 1 (grey), 3 (BGR) or 4 (BGRA)

    @property
    def rows(self) -> int:
        return abs(self.height)

    @property
    def row_bytes(self) -> int:
        return (self.channels * self.width + 3) // 4 * 4


def read_bmp_header(data: bytes) -> BmpHeader:
    """The fields TensorFlow reads, with its checks; raises ImageError (decode_failed)."""
    if len(data) < 32:
        raise undecodable(f"incomplete BMP header ({len(data)} bytes)")
    pixel_offset, width, height, bits_per_pixel = _HEADER.unpack_from(data)
    channels = int(bits_per_pixel / 8)  # C integer division
    if channels not in (1, 3, 4):
        raise undecodable(f"{bits_per_pixel} bits per pixel is not supported (8, 24 or 32)")
    if width <= 0 or height == 0 or pixel_offset < 0:
        raise undecodable(f"invalid BMP header (width {width}, height {height})")
    header = BmpHeader(pixel_offset, width, height, channels)
    if width * header.rows >= _MAX_PIXELS:
        raise undecodable(f"BMP of {width}x{header.rows} pixels is too large")
    size_difference = len(data) - pixel_offset - header.row_bytes * header.rows
    if size_difference != 0:
        raise undecodable(
            f"BMP size does not match its header (pixel offset + rows): off by {size_difference}"
        )
    return header


def decode_bmp(data: bytes, header: BmpHeader) -> np.ndarray:
    """(rows, width, 3) uint8 RGB, read-only, from a header `read_bmp_header` accepted."""
    rows = np.frombuffer(
        data, np.uint8, count=header.row_bytes * header.rows, offset=header.pixel_offset
    ).reshape(header.rows, header.row_bytes)
    pixels = rows[:, : header.width * header.channels].reshape(
        header.rows, header.width, header.channels
    )
    if header.height > 0:
        pixels = pixels[::-1]
    # Views of the file's bytes, no copies: the resize reads only the rows it needs.
    if header.channels == 1:
        return np.broadcast_to(pixels, (header.rows, header.width, 3))
    return pixels[:, :, 2::-1]
