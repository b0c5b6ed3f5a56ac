"""Generated test images in every variant the training pipeline reads (never committed)."""

from __future__ import annotations

import io

import numpy as np
import tensorflow as tf
from PIL import Image


def photo_like(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus texture: compresses and resizes like a photo, not like flat art."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            127 + 100 * np.sin(x / (width / 6.0) + seed),
            127 + 100 * np.cos(y / (height / 5.0)),
            127 + 80 * np.sin((x + y) / (width / 9.0)),
        ],
        axis=-1,
    )
    noise = rng.normal(0, 18, size=(height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def reference_corpus() -> dict[str, bytes]:
    """Files named with the extensions keras.utils.image_dataset_from_directory reads."""
    rgb = Image.fromarray(photo_like(320, 240, seed=1))
    rgba = rgb.copy()
    alpha = np.zeros((240, 320), np.uint8)
    alpha[40:200, 60:260] = 255
    rgba.putalpha(Image.fromarray(alpha))
    frames = [Image.fromarray(photo_like(96, 64, seed=s)).convert("P") for s in range(3)]
    animated = io.BytesIO()
    frames[0].save(animated, "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
    rgb16 = (photo_like(130, 90, seed=4).astype(np.uint16) * 257 + 3).astype(np.uint16)
    gray16 = Image.fromarray(photo_like(70, 110, seed=5)[:, :, 0].astype(np.uint16) * 250)
    return {
        "jpeg_baseline.jpg": encode(rgb, "JPEG", quality=90),
        "jpeg_progressive.jpg": encode(rgb, "JPEG", quality=85, progressive=True),
        "jpeg_grayscale.jpg": encode(rgb.convert("L"), "JPEG", quality=90),
        "jpeg_cmyk.jpg": encode(rgb.convert("CMYK"), "JPEG", quality=90),
        "jpeg_subsampled_444.jpeg": encode(rgb, "JPEG", quality=95, subsampling=0),
        "jpeg_large_photo.jpg": encode(Image.fromarray(photo_like(3000, 2000, seed=2)), "JPEG"),
        "png_rgb.png": encode(rgb, "PNG"),
        "png_rgba.png": encode(rgba, "PNG"),
        "png_palette.png": encode(rgb.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        "png_palette_transparent.png": encode(
            rgba.convert("P", palette=Image.Palette.ADAPTIVE), "PNG", transparency=0
        ),
        "png_gray.png": encode(rgb.convert("L"), "PNG"),
        "png_gray_alpha.png": encode(rgba.convert("LA"), "PNG"),
        "png_16bit_rgb.png": tf.io.encode_png(rgb16).numpy(),
        "png_16bit_gray.png": encode(gray16, "PNG"),
        "png_tiny.png": encode(rgb.resize((7, 5)), "PNG"),
        "gif_static.gif": encode(rgb.convert("P"), "GIF"),
        "gif_animated.gif": animated.getvalue(),
        "bmp_rgb.bmp": encode(rgb, "BMP"),
        "bmp_palette.bmp": encode(rgb.convert("P"), "BMP"),
        "bmp_gray.bmp": encode(rgb.convert("L"), "BMP"),
    }


def pillow_only_corpus() -> dict[str, tuple[bytes, bytes]]:
    """(WebP/TIFF file, PNG of the same pixels): the reference can't read the former."""
    rgb = Image.fromarray(photo_like(200, 150, seed=7))
    rgba = rgb.copy()
    rgba.putalpha(128)
    return {
        "webp_lossless_rgb": (encode(rgb, "WEBP", lossless=True), encode(rgb, "PNG")),
        "webp_lossless_rgba": (encode(rgba, "WEBP", lossless=True), encode(rgba, "PNG")),
        "tiff_rgb": (encode(rgb, "TIFF"), encode(rgb, "PNG")),
        "tiff_rgba": (encode(rgba, "TIFF"), encode(rgba, "PNG")),
        "tiff_gray": (encode(rgb.convert("L"), "TIFF"), encode(rgb.convert("L"), "PNG")),
    }
