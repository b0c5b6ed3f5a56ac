"""Image bytes -> the exact 224x224x3 float32 tensor the model was trained on.

Training read files with `keras.utils.image_dataset_from_directory(image_size=(224, 224))`,
which does `tf.io.decode_image(channels=3, expand_animations=False)` and then
`tf.image.resize` (bilinear, half-pixel centres, no antialiasing). For the formats that pipeline
reads (JPEG, PNG, GIF, BMP) we run those same TensorFlow ops, fused in one compiled graph: it is
the only way to get TF's fast-integer-DCT JPEG pixels, and it is as fast as any alternative.
WebP and TIFF, which the reference cannot read, are decoded by Pillow into the same convention
(first frame, alpha dropped without compositing, grey expanded to RGB, 16-bit scaled to 8-bit);
SVG is rendered to PNG bytes first. Image dimensions are checked from the header before any
pixels are decoded, so a decompression bomb never allocates.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, UnidentifiedImageError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf

from .errors import ErrorType, ImageError
from .image_format import TENSORFLOW_FORMATS, ImageFormat, sniff_format
from .model_file import INPUT_SIZE
from .settings import Settings
from .svg import SvgLimits, rasterize_svg

# Our own pixel limit applies before Pillow's; disable Pillow's so it can't fire first.
Image.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds on the work one image may cause (see the README's security table)."""

    max_pixels: int = 100_000_000  # width x height x frames, before decoding
    svg: SvgLimits = field(default_factory=SvgLimits)

    @classmethod
    def from_settings(cls, settings: Settings) -> DecodeLimits:
        return cls(
            max_pixels=settings.max_image_pixels,
            svg=SvgLimits(
                max_bytes=settings.max_svg_bytes,
                max_elements=settings.max_svg_elements,
                render_size=settings.svg_render_size,
                timeout_s=settings.svg_render_timeout_s,
            ),
        )


DEFAULT_LIMITS = DecodeLimits()
MAX_JPEG_SCANS = 100
# The next marker after entropy-coded data: 0xFF not followed by a stuffed 0x00 or an RSTn.
_JPEG_MARKER = re.compile(rb"\xff(?=[^\x00\xd0-\xd7])")


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def _tensorflow_decode_and_resize(data: tf.Tensor) -> tf.Tensor:
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    return tf.image.resize(image, (INPUT_SIZE, INPUT_SIZE))


@tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
def _tensorflow_resize(rgb: tf.Tensor) -> tf.Tensor:
    return tf.image.resize(rgb, (INPUT_SIZE, INPUT_SIZE))


def image_to_model_input(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Decode untrusted image bytes into a (224, 224, 3) float32 array in 0..255."""
    image_format = sniff_format(data)
    if image_format is ImageFormat.SVG:
        data = rasterize_svg(data, limits.svg)
        image_format = ImageFormat.PNG
    with _open_header(data) as header:
        _check_pixel_budget(header, limits)
        if image_format is ImageFormat.JPEG:
            _check_jpeg_scans(data)
        if image_format in TENSORFLOW_FORMATS:
            return _decode_with_tensorflow(data)
        return _tensorflow_resize(_pillow_rgb(header)).numpy()


def _open_header(data: bytes) -> Image.Image:
    """Parse only the header (Pillow decodes lazily)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(ErrorType.DECODE_FAILED, "the image header is corrupt") from None
    except Exception as error:  # Pillow raises many types for malformed headers
        raise ImageError(ErrorType.DECODE_FAILED, f"the image header is corrupt: {error}") from None


def _check_pixel_budget(header: Image.Image, limits: DecodeLimits) -> None:
    width, height = header.size
    if width <= 0 or height <= 0:
        raise ImageError(ErrorType.DECODE_FAILED, f"invalid image dimensions {width}x{height}")
    frames = _frame_count(header) if header.format == "GIF" else 1
    if width * height * frames > limits.max_pixels:
        raise ImageError(
            ErrorType.TOO_LARGE,
            f"{width}x{height} pixels x {frames} frame(s) exceeds the limit of "
            f"{limits.max_pixels} pixels",
        )


def _check_jpeg_scans(data: bytes) -> None:
    """Each progressive scan is a pass over every block, and one can be a few bytes long:
    without a cap a 25 MiB file can hold a million passes. Encoders write about 10."""
    scans = _jpeg_scan_count(data)
    if scans > MAX_JPEG_SCANS:
        raise ImageError(
            ErrorType.DECODE_FAILED,
            f"unsafe JPEG refused: more than {MAX_JPEG_SCANS} scans",
        )


def _jpeg_scan_count(data: bytes) -> int:
    """SOS markers of the first image, walking segments (APPn payloads and later embedded
    images are skipped, so their bytes can't be miscounted); stops past the cap."""
    scans, at = 0, 2
    while at + 4 <= len(data) and scans <= MAX_JPEG_SCANS:
        if data[at] != 0xFF:
            return scans  # corrupt: the decoder will say so
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker == 0xD9:  # EOI
            return scans
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length field
            at += 2
            continue
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
        if marker == 0xDA:  # entropy-coded data follows: 0xFF in it is stuffed (FF00) or RSTn
            scans += 1
            next_marker = _JPEG_MARKER.search(data, at)
            if next_marker is None:
                return scans
            at = next_marker.start()
    return scans


def _frame_count(header: Image.Image) -> int:
    """GIF frames: TensorFlow decodes all of them before keeping the first."""
    try:
        return max(1, int(getattr(header, "n_frames", 1)))
    except Exception as error:
        raise ImageError(ErrorType.DECODE_FAILED, f"corrupt GIF: {error}") from None


def _decode_with_tensorflow(data: bytes) -> np.ndarray:
    try:
        return _tensorflow_decode_and_resize(tf.constant(data)).numpy()
    except tf.errors.OpError as error:
        raise _undecodable(_tensorflow_reason(error)) from None


def _tensorflow_reason(error: tf.errors.OpError) -> str:
    """The decoder's own words, without the graph-execution traceback around them."""
    noise = ("Graph execution error", "Detected at node", "File ", "[[")
    lines = [line.strip() for line in (error.message or "").splitlines()]
    reasons = [line for line in lines if line and not line.startswith(noise)]
    return reasons[-1] if reasons else type(error).__name__


def _pillow_rgb(image: Image.Image) -> np.ndarray:
    """Pillow decode into TF's convention: frame 0, alpha dropped, grey expanded, 8 bits."""
    try:
        image.seek(0)
        image.load()
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            grey = (np.asarray(image, dtype=np.uint32) >> 8).clip(0, 255).astype(np.uint8)
            return np.repeat(grey[:, :, None], 3, axis=2)
        if image.mode in ("RGBA", "RGBa", "LA", "La", "PA"):
            image = image.convert("RGBA")
            return np.ascontiguousarray(np.asarray(image)[:, :, :3])
        return np.asarray(image.convert("RGB"))
    except ImageError:
        raise
    except Exception as error:  # truncated or corrupt pixel data
        raise _undecodable(error) from None


def _undecodable(reason: object) -> ImageError:
    return ImageError(ErrorType.DECODE_FAILED, f"the image could not be decoded: {reason}")


def warm_up_decoding() -> None:
    """Trace the decode graph at start-up, so the first request's decode isn't ~200 ms slower."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(buffer, "PNG")
    image_to_model_input(buffer.getvalue())
