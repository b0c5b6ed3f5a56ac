"""Photo-like test images, generated procedurally (no files, no downloads) and encoded by Pillow.

A smooth random colour field plus a sky gradient, a few soft shapes and fine grain: close enough
to a photo that JPEG sizes and decode times are realistic (a flat image decodes unrealistically
fast).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZES = {
    "thumbnail": (160, 120),  # a Commons thumbnail, smaller than the model input
    "1024px": (1024, 768),
    "12MP": (4000, 3000),  # a phone camera photo
}


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    field = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(
        (width, height), Image.BICUBIC
    )
    sky = np.linspace(230, 60, height, dtype=np.float32)[:, None, None] * [0.55, 0.7, 1.0]
    pixels = 0.6 * np.asarray(field, np.float32) + 0.4 * sky
    image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(0.03, 0.2) * min(width, height)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(max(1.0, width / 800)))
    grain = rng.normal(0.0, 6.0, (height, width, 1)).astype(np.float32)
    noisy = np.asarray(image, np.float32) + grain
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8))


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def corpus(seed: int = 0) -> dict[str, bytes]:
    """One JPEG per size class."""
    return {
        name: jpeg(photo_like(width, height, seed + index))
        for index, (name, (width, height)) in enumerate(SIZES.items())
    }


def variants(name: str, count: int, seed: int = 100) -> list[bytes]:
    """`count` different JPEGs of one size class (so a 50-image request is 50 distinct images)."""
    width, height = SIZES[name]
    return [jpeg(photo_like(width, height, seed + index)) for index in range(count)]
