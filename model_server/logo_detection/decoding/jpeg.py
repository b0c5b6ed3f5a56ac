"""JPEG bytes -> RGB pixels exactly as `tf.io.decode_image(channels=3)` decodes them, without TF.

TensorFlow decodes with libjpeg-turbo, fast integer DCT and fancy upsampling; simplejpeg's
libjpeg-turbo with `fastdct=True, fastupsample=False` gives the same pixels (baseline,
progressive, arithmetic-coded, restart intervals, every chroma subsampling, greyscale, RGB).
Four-channel files (CMYK, YCCK) are decoded to CMYK and converted the way TensorFlow does
(tensorflow/core/lib/jpeg/jpeg_mem.cc), in integer arithmetic: when libjpeg has seen an Adobe
APP14 marker the channels are stored inverted and R = K*C/255, otherwise R = (255-K)(255-C)/255.
EXIF orientation is not applied, as TensorFlow does not apply it.

Corrupt-but-recoverable data (libjpeg warnings) decodes as TensorFlow decodes it; a file that
ends before its EOI marker is refused, as TensorFlow refuses it. Before any pixel is decoded, the
marker segments are walked to cap the number of scans (a progressive-scan bomb) and to find the
Adobe marker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import simplejpeg

from ..errors import ErrorType, ImageError, undecodable

MAX_JPEG_SCANS = 100

_SOS, _EOI, _APP14 = 0xDA, 0xD9, 0xEE
_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOFn, not DHT/JPG/DAC
_PROGRESSIVE_FRAMES = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
_STANDALONE = frozenset({0x01, 0xD0, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8})
# libjpeg's next_marker(): bytes before a marker are skipped, as are 0xFF fill bytes.
_NEXT_MARKER = re.compile(rb"\xff+([^\x00\xff])")
# The end of entropy-coded data: 0xFF not followed by a stuffed 0x00 or an RSTn.
_END_OF_SCAN = re.compile(rb"\xff(?=[^\x00\xd0-\xd7])")


@dataclass
class JpegLayout:
    """What the marker segments of the first image say, as libjpeg reads them."""

    scans: int = 0
    components: int = 0  # in the frame header
    first_scan_components: int = 0
    progressive: bool = False
    adobe_before_first_scan: bool = False
    adobe_before_end: bool = False
    complete: bool = False  # an EOI marker follows the first scan
    # Bytes before a header marker that libjpeg skips with a warning (start, end offsets).
    header_garbage: list[tuple[int, int]] = field(default_factory=list)

    @property
    def buffers_whole_image(self) -> bool:
        """libjpeg reads to EOI before the first output row for multi-scan images."""
        return self.progressive or 0 < self.first_scan_components < self.components

    @property
    def saw_adobe_marker(self) -> bool:
        """libjpeg's `saw_Adobe_marker` as it stands when rows are converted."""
        if self.buffers_whole_image:
            return self.adobe_before_end
        return self.adobe_before_first_scan


def read_jpeg_layout(data: bytes) -> JpegLayout:
    """Walk the segments (APPn payloads and embedded thumbnails skipped); stops past the cap."""
    layout = JpegLayout()
    first_scan_at = _walk_segments(data, layout)
    # Entropy-coded data never holds FF D9: after the first scan it is the end of the image,
    # even where damage makes the walk lose its way (libjpeg resynchronises on restarts).
    layout.complete = first_scan_at > 0 and data.find(b"\xff\xd9", first_scan_at) >= 0
    return layout


def _walk_segments(data: bytes, layout: JpegLayout) -> int:
    """Fills `layout` in; returns where the first scan's data starts (0: no scan)."""
    at, first_scan_at = 2, 0
    while layout.scans <= MAX_JPEG_SCANS:
        found = _NEXT_MARKER.search(data, at)
        if found is None or found.group(1)[0] == _EOI:
            break
        if found.start() > at and layout.scans == 0:
            layout.header_garbage.append((at, found.start()))
        marker, at = found.group(1)[0], found.end()
        if marker in _STANDALONE:
            continue
        if at + 2 > len(data):
            break
        segment = data[at + 2 : at + int.from_bytes(data[at : at + 2], "big")]
        at += 2 + len(segment)
        _note_segment(layout, marker, segment)
        if marker == _SOS:
            layout.scans += 1
            first_scan_at = first_scan_at or at
            end_of_scan = _END_OF_SCAN.search(data, at)
            if end_of_scan is None:
                break
            at = end_of_scan.start()
    return first_scan_at


def _note_segment(layout: JpegLayout, marker: int, segment: bytes) -> None:
    if marker in _FRAME_MARKERS and len(segment) >= 6 and not layout.components:
        layout.components = segment[5]
        layout.progressive = marker in _PROGRESSIVE_FRAMES
    elif marker == _SOS and layout.scans == 0 and segment:
        layout.first_scan_components = segment[0]
    elif marker == _APP14 and len(segment) >= 12 and segment.startswith(b"Adobe"):
        layout.adobe_before_end = True
        layout.adobe_before_first_scan |= layout.scans == 0


def check_scan_count(layout: JpegLayout) -> None:
    """Each progressive scan is a pass over every block, and one can be a few bytes long:
    without a cap a 25 MiB file can hold a million passes. Encoders write about 10."""
    if layout.scans > MAX_JPEG_SCANS:
        raise ImageError(
            ErrorType.DECODE_FAILED,
            f"unsafe JPEG refused: more than {MAX_JPEG_SCANS} scans",
        )


def decode_jpeg(data: bytes, layout: JpegLayout) -> np.ndarray:
    """(height, width, 3) uint8 RGB, the pixels TensorFlow decodes."""
    if layout.header_garbage:
        data = _without(data, layout.header_garbage)
    if layout.components == 4:
        return _cmyk_to_rgb(_decompress(data, "CMYK", layout), layout.saw_adobe_marker)
    return _decompress(data, "RGB", layout)


def _decompress(data: bytes, colorspace: str, layout: JpegLayout) -> np.ndarray:
    try:
        return _libjpeg_turbo(data, colorspace, strict=True)
    except Exception as error:
        if not layout.complete or "Premature end" in str(error):
            raise undecodable("the JPEG data is truncated") from None
    # Only a warning stopped the strict decode: decode through it, as TensorFlow does.
    try:
        return _libjpeg_turbo(data, colorspace, strict=False)
    except Exception as error:  # simplejpeg raises ValueError, or worse on odd headers
        raise undecodable(error) from None


def _without(data: bytes, spans: list[tuple[int, int]]) -> bytes:
    """The bytes libjpeg would skip, removed: simplejpeg refuses a header with such a warning
    even when not strict, while TensorFlow decodes it."""
    kept, at = [], 0
    for start, end in spans:
        kept.append(data[at:start])
        at = end
    kept.append(data[at:])
    return b"".join(kept)


def _libjpeg_turbo(data: bytes, colorspace: str, strict: bool) -> np.ndarray:
    decoded: np.ndarray = simplejpeg.decode_jpeg(
        data, colorspace=colorspace, fastdct=True, fastupsample=False, strict=strict
    )
    return decoded


def _cmyk_to_rgb(cmyk: np.ndarray, adobe_inverted: bool) -> np.ndarray:
    """TensorFlow's conversion: integer products, truncating division by 255."""
    channels = cmyk.astype(np.uint16)  # 255 * 255 fits
    if not adobe_inverted:
        channels = 255 - channels
    return ((channels[:, :, :3] * channels[:, :, 3:]) // 255).astype(np.uint8)
