"""Image bytes -> the exact 224x224x3 float32 tensor the model was trained on, without TensorFlow.

Training read files with `keras.utils.image_dataset_from_directory(image_size=(224, 224))`,
which does `tf.io.decode_image(channels=3, expand_animations=False)` and then `tf.image.resize`
(bilinear, half-pixel centres, no antialiasing). Each step is reproduced bit for bit (the parity
tests compare against TensorFlow itself): JPEG with libjpeg-turbo as TensorFlow configures it
(jpeg.py), BMP by TensorFlow's own byte copy (bmp.py), GIF by TensorFlow's first-frame rules
over Pillow's LZW decoder (gif.py), PNG by Pillow, whose conventions here are TensorFlow's
(alpha dropped without compositing, grey expanded to RGB, 16-bit reduced to the high byte), and
the resize in numpy (resize.py). WebP and TIFF, which the
training pipeline does not read, follow the same Pillow convention; SVG is rendered to PNG bytes
first. Image dimensions are checked from the header before any pixels are decoded, so a
decompression bomb never allocates.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ErrorType, ImageError, undecodable
from ..model_contract import INPUT_SIZE  # the model's side of the contract
from .bmp import decode_bmp, read_bmp_header
from .gif import decode_gif, read_gif_layout
from .jpeg import check_scan_count, decode_jpeg, read_jpeg_layout
from .resize import resize_bilinear
from .sniff import ImageFormat, sniff_format
from .svg import SvgLimits, rasterize_svg

# Our pixel budget (DecodeLimits.max_pixels) is checked from the header, before any decoding.
# Pillow's own guard, the process-wide Image.MAX_IMAGE_PIXELS, is the importer's to set, never
# changed here: the server turns it off at start-up (__main__), so there our budget alone
# decides, as it always has; other importers (training, tools) keep it. Its warning is ignored
# (our budget decides), and an image past its error limit is refused as too_large.


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds on the work one image may cause (the table in docs/security.md#security)."""

    max_pixels: int = 100_000_000  # width x height x frames, before decoding
    svg: SvgLimits = field(default_factory=SvgLimits)


DEFAULT_LIMITS = DecodeLimits()


def image_to_model_input(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Decode untrusted image bytes into a (224, 224, 3) float32 array in 0..255."""
    return resize_bilinear(image_to_rgb(data, limits), INPUT_SIZE)


def image_to_rgb(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Decode untrusted image bytes into (height, width, 3) uint8 RGB, as TensorFlow decodes."""
    image_format = sniff_format(data)
    if image_format is ImageFormat.SVG:
        data = rasterize_svg(data, limits.svg)
        image_format = ImageFormat.PNG
    if image_format is ImageFormat.BMP:
        bmp = read_bmp_header(data)
        _check_pixel_budget(bmp.width, bmp.rows, 1, limits)
        return decode_bmp(data, bmp)
    if image_format is ImageFormat.GIF:
        gif = read_gif_layout(data)  # TensorFlow decodes every frame before keeping the first
        _check_pixel_budget(gif.width, gif.height, gif.frames, limits)
        return decode_gif(data, gif)
    with _open_header(data) as header:
        _check_pixel_budget(*header.size, 1, limits)
        if image_format is ImageFormat.JPEG:
            layout = read_jpeg_layout(data)
            check_scan_count(layout)
            return decode_jpeg(data, layout)
        return _pillow_rgb(header)


def _open_header(data: bytes) -> Image.Image:
    """Parse only the header (Pillow decodes lazily)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        raise _past_pillows_limit(error) from None
    except UnidentifiedImageError:
        raise ImageError(ErrorType.DECODE_FAILED, "the image header is corrupt") from None
    except Exception as error:  # Pillow raises many types for malformed headers
        raise ImageError(ErrorType.DECODE_FAILED, f"the image header is corrupt: {error}") from None


def _check_pixel_budget(width: int, height: int, frames: int, limits: DecodeLimits) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(ErrorType.DECODE_FAILED, f"invalid image dimensions {width}x{height}")
    if width * height * frames > limits.max_pixels:
        raise ImageError(
            ErrorType.TOO_LARGE,
            f"{width}x{height} pixels x {frames} frame(s) exceeds the limit of "
            f"{limits.max_pixels} pixels",
        )


def _past_pillows_limit(error: Image.DecompressionBombError) -> ImageError:
    return ImageError(ErrorType.TOO_LARGE, f"the image exceeds Pillow's pixel limit: {error}")


def _pillow_rgb(image: Image.Image) -> np.ndarray:
    """Pillow decode into TF's convention: frame 0, alpha dropped, grey expanded, 8 bits."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
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
    except Image.DecompressionBombError as error:  # a TIFF's tiles, checked by Pillow at load
        raise _past_pillows_limit(error) from None
    except Exception as error:  # truncated or corrupt pixel data
        raise undecodable(error) from None


def warm_up_decoding() -> None:
    """Decode one small image of each common format at start-up, so the first request doesn't
    pay for loading decoder code and tables."""
    for image_format in ("PNG", "JPEG"):
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), (255, 0, 0)).save(buffer, image_format)
        image_to_model_input(buffer.getvalue())
