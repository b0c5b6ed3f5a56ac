"""GIF bytes -> the first frame's RGB pixels exactly as `tf.io.decode_image(channels=3,
expand_animations=False)` gives them.

TensorFlow (tensorflow/core/lib/gif/gif_io.cc, over giflib) does not composite like a browser:
its canvas is as large as the largest frame (the logical screen size is ignored), the first
frame is drawn at its offset on black, its transparent colour index is drawn black, and a colour
index beyond the colour table is an error. This module reads the block structure itself, lets
Pillow's LZW decoder expand the first frame's indices, and applies those rules.
Damage after the first frame is tolerated as giflib tolerates it: the walk stops there and the
frames read so far count (a missing trailer, a truncated later frame); a damaged first frame is
refused.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import undecodable

_IMAGE, _EXTENSION, _TRAILER = 0x2C, 0x21, 0x3B
_GRAPHIC_CONTROL = 0xF9
_DESCRIPTOR = struct.Struct("<HHHHB")


class _Truncated(Exception):
    """The bytes end inside a structure."""


@dataclass(frozen=True)
class GifFrame:
    left: int
    top: int
    width: int
    height: int
    interlaced: bool
    colors: bytes | None  # RGB triplets: the local table, else the global one
    transparent_index: int | None
    code_size: int  # LZW minimum code size
    pixel_data: slice  # the LZW sub-blocks


@dataclass(frozen=True)
class GifLayout:
    frames: int
    width: int  # of the largest frame: TensorFlow's canvas
    height: int
    first: GifFrame


def read_gif_layout(data: bytes) -> GifLayout:
    """Every frame's descriptor (pixel data skipped); raises ImageError (decode_failed)."""
    reader = _BlockReader(data)
    try:
        reader.read_screen()
        frames = reader.read_frames()
    except _Truncated:
        raise undecodable("the GIF is truncated") from None
    return GifLayout(
        frames=len(frames),
        width=max(frame.width for frame in frames),
        height=max(frame.height for frame in frames),
        first=frames[0],
    )


def decode_gif(data: bytes, layout: GifLayout) -> np.ndarray:
    """(height, width, 3) uint8 RGB of the first frame on TensorFlow's canvas."""
    frame = layout.first
    if frame.colors is None:
        raise undecodable("the first frame has no colour table")
    image = _frame_indices(data, frame)
    palette = bytearray(frame.colors.ljust(768, b"\0"))
    table_size, transparent = len(frame.colors) // 3, frame.transparent_index
    counts = image.histogram()
    if any(counts[index] for index in range(table_size, 256) if index != transparent):
        raise undecodable(f"a colour index lies outside the {table_size}-colour table")
    if transparent is not None:
        palette[3 * transparent : 3 * transparent + 3] = b"\0\0\0"
    image.putpalette(palette)
    rgb = np.asarray(image.convert("RGB"))
    if (frame.left, frame.top, frame.width, frame.height) == (0, 0, layout.width, layout.height):
        return rgb
    canvas = np.zeros((layout.height, layout.width, 3), np.uint8)
    top, left = min(frame.top, layout.height), min(frame.left, layout.width)
    visible = rgb[: layout.height - top, : layout.width - left]
    canvas[top : top + visible.shape[0], left : left + visible.shape[1]] = visible
    return canvas


def _frame_indices(data: bytes, frame: GifFrame) -> Image.Image:
    """The frame's colour indices, a "P" image, decoded by Pillow's LZW decoder."""
    if not 1 <= frame.code_size <= 8:
        raise undecodable(f"invalid LZW code size {frame.code_size}")
    try:
        return Image.frombytes(
            "P",
            (frame.width, frame.height),
            data[frame.pixel_data],
            "gif",
            frame.code_size,
            frame.interlaced,
        )
    except Exception as error:  # Pillow's decoder: ValueError/OSError on bad LZW data
        raise undecodable(f"the first frame's pixel data is corrupt: {error}") from None


class _BlockReader:
    """giflib's record walk: screen descriptor, then extensions and images until the trailer."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0
        self.global_colors: bytes | None = None

    def read_screen(self) -> None:
        self._take(6)  # signature, checked by the format sniffer
        _, _, flags, _, _ = struct.unpack("<HHBBB", self._take(7))
        if flags & 0x80:
            self.global_colors = self._take(3 << ((flags & 7) + 1))

    def read_frames(self) -> list[GifFrame]:
        frames: list[GifFrame] = []
        transparent: int | None = None
        seen_control = False
        while True:
            try:
                record = self._take(1)[0]
                if record == _TRAILER:
                    break
                if record == _EXTENSION:
                    label = self._take(1)[0]
                    first_block = self._skip_blocks()
                    if label == _GRAPHIC_CONTROL and not seen_control:
                        seen_control = True  # giflib uses a frame's first control block
                        if len(first_block) == 4 and first_block[0] & 1:
                            transparent = first_block[3]
                    continue
                if record != _IMAGE:
                    raise _Truncated  # an unknown record ends giflib's walk like missing bytes
                frames.append(self._read_image(transparent))
            except _Truncated:
                if frames:
                    break  # TensorFlow keeps the frames read so far
                raise
            transparent, seen_control = None, False
        if not frames:
            raise undecodable("the GIF has no image")
        return frames

    def _read_image(self, transparent: int | None) -> GifFrame:
        left, top, width, height, flags = _DESCRIPTOR.unpack(self._take(_DESCRIPTOR.size))
        if width == 0 or height == 0:
            raise undecodable(f"a frame of {width}x{height} pixels")
        colors = self._take(3 << ((flags & 7) + 1)) if flags & 0x80 else self.global_colors
        code_size = self._take(1)[0]
        start = self.at
        self._skip_blocks()  # a frame cut short is dropped, as giflib drops it
        return GifFrame(
            left=left,
            top=top,
            width=width,
            height=height,
            interlaced=bool(flags & 0x40),
            colors=colors,
            transparent_index=transparent,
            code_size=code_size,
            pixel_data=slice(start, self.at),
        )

    def _take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise _Truncated
        chunk = self.data[self.at : self.at + size]
        self.at += size
        return chunk

    def _skip_blocks(self) -> bytes:
        """Skip data sub-blocks up to the terminator; returns the first one."""
        first = b""
        while size := self._take(1)[0]:
            block = self._take(size)
            first = first or block
        return first
