"""A tiny training folder generated on the fly, for the training tests: flat shapes for logos,
noise for photos, one SVG."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SVG_LOGO = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="#e34f26">'
    b'<path d="M2 2h20v20H2z M7 7h10v10H7z"/></svg>'
)


def encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def make_tiny_dataset(root: Path, per_class: int = 6) -> Path:
    """Flat shapes on plain backgrounds vs. noisy 'photos': a handful of files per class."""
    rng = np.random.default_rng(0)
    for cls, source in (("logo", "shapes"), ("out_of_domain", "noise")):
        (root / cls / source).mkdir(parents=True)
    for i in range(per_class):
        img = Image.new("RGB", (96 + 8 * i, 64), (255, 255, 255))
        ImageDraw.Draw(img).ellipse((10, 10, 50, 50), fill=(30 * i, 80, 200))
        fmt = "PNG" if i % 2 else "JPEG"
        (root / "logo" / "shapes" / f"shape{i}.{fmt.lower()}").write_bytes(encode(img, fmt))
        noise = rng.integers(0, 255, (64 + 4 * i, 80, 3), dtype=np.uint8)
        (root / "out_of_domain" / "noise" / f"photo{i}.jpg").write_bytes(
            encode(Image.fromarray(noise), "JPEG")
        )
    (root / "logo" / "shapes" / "svglogo.svg").write_bytes(SVG_LOGO)
    return root


def add_source_copy(root: Path, cls: str, source: str, new: str) -> None:
    """A second source folder (same pixels, other names): for leave-source-out runs."""
    (root / cls / new).mkdir()
    for f in (root / cls / source).iterdir():
        (root / cls / new / f"{new}-{f.name}").write_bytes(f.read_bytes())
