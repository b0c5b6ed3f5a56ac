"""Procedural non-logo graphics: charts, text pages, diagrams and screenshot-like images.

Commons holds many flat graphics that are not logos. The source data has none, so without these
the model would learn "flat colours and crisp edges = logo". Every generator is a pure function of
its ``random.Random``, so the data set is reproducible.
"""

from __future__ import annotations

import io
import itertools
import random
import string
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FONTS = ["DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "DejaVuSans-Bold.ttf"]
STYLES = ["default", "classic", "ggplot", "bmh", "seaborn-v0_8", "fivethirtyeight", "grayscale"]


def _font(rng: random.Random, size: int, name: str | None = None) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_DIR / (name or rng.choice(FONTS))), size)


def _word(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 10)))


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(_word(rng) for _ in range(n)).capitalize()


def _light(rng: random.Random) -> tuple[int, int, int]:
    return tuple(rng.randint(225, 255) for _ in range(3))  # type: ignore[return-value]


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return tuple(rng.randint(0, 255) for _ in range(3))  # type: ignore[return-value]


def chart(rng: random.Random) -> tuple[bytes, str]:
    """A matplotlib chart, saved as PNG (opaque or transparent), SVG or JPEG like Commons has."""
    nprng = np.random.default_rng(rng.getrandbits(32))
    kind = rng.choice(["line", "bar", "scatter", "hist", "pie", "area", "barh", "multi", "func"])
    with plt.style.context(rng.choice(STYLES)):
        fig, ax = plt.subplots(
            figsize=(rng.uniform(3, 8), rng.uniform(2.5, 6)), dpi=rng.choice([50, 72, 100])
        )
        n = rng.randint(5, 40)
        if kind == "line":
            for _ in range(rng.randint(1, 4)):
                ax.plot(
                    np.cumsum(nprng.normal(size=n)),
                    marker=rng.choice(["", "o", "s", "."]),
                    label=_word(rng),
                )
        elif kind == "bar":
            ax.bar([_word(rng)[:5] for _ in range(min(n, 12))], nprng.random(min(n, 12)) * 100)
        elif kind == "barh":
            ax.barh([_word(rng)[:8] for _ in range(min(n, 10))], nprng.random(min(n, 10)))
        elif kind == "scatter":
            ax.scatter(
                nprng.normal(size=n * 5),
                nprng.normal(size=n * 5),
                c=nprng.random(n * 5),
                s=rng.choice([5, 20, 50]),
            )
        elif kind == "hist":
            ax.hist(nprng.normal(size=500), bins=rng.randint(8, 40))
        elif kind == "pie":
            k = rng.randint(2, 7)
            labels = [_word(rng) for _ in range(k)] if rng.random() < 0.6 else None
            ax.pie(
                nprng.random(k), labels=labels, autopct="%1.0f%%" if rng.random() < 0.5 else None
            )
        elif kind == "area":
            ax.stackplot(range(n), nprng.random((rng.randint(2, 4), n)))
        elif kind == "multi":
            x = np.arange(n)
            ax.plot(x, nprng.random(n), "o-")
            ax.fill_between(x, 0, nprng.random(n) / 2, alpha=0.3)
        else:
            x = np.linspace(-5, 5, 200)
            ax.plot(x, np.sin(x * rng.uniform(0.5, 3)) * np.exp(-(x**2) / rng.uniform(2, 20)))
            ax.axhline(0, color="k", lw=0.5)
        if rng.random() < 0.7:
            ax.set_title(_sentence(rng, rng.randint(1, 5)))
        if rng.random() < 0.7:
            ax.set_xlabel(_word(rng))
            ax.set_ylabel(_word(rng))
        if kind in ("line", "multi") and rng.random() < 0.5:
            ax.legend()
        if rng.random() < 0.5:
            ax.grid(True)
        return save_figure(
            fig, rng, {"png": 5, "svg": 3, "png-transparent": 2, "jpg": 2}, min_quality=60
        )


def save_figure(
    fig: plt.Figure, rng: random.Random, weights: dict[str, int], min_quality: int
) -> tuple[bytes, str]:
    """A figure as Commons holds charts and maps: PNG (opaque or transparent), SVG or JPEG;
    ``weights`` picks the format. Returns (bytes, extension) and closes the figure."""
    fmt = rng.choices(list(weights), weights=list(weights.values()))[0]
    buf = io.BytesIO()
    if fmt == "svg":
        fig.savefig(buf, format="svg")
    elif fmt == "jpg":
        fig.savefig(buf, format="jpg", pil_kwargs={"quality": rng.randint(min_quality, 95)})
    else:
        fig.savefig(buf, format="png", transparent=fmt == "png-transparent")
    plt.close(fig)
    return buf.getvalue(), "png" if fmt.startswith("png") else fmt


def text_page(rng: random.Random) -> Image.Image:
    """A rendered or 'scanned' page of text: documents, letters, book pages."""
    w = rng.randint(300, 900)
    h = int(w * rng.uniform(0.6, 1.5))
    paper = (
        _light(rng)
        if rng.random() < 0.7
        else (rng.randint(200, 240), rng.randint(190, 230), rng.randint(150, 210))
    )
    img = Image.new("RGB", (w, h), paper)
    draw = ImageDraw.Draw(img)
    ink = tuple(rng.randint(0, 60) for _ in range(3))
    size = rng.randint(9, 22)
    font = _font(rng, size)
    margin = rng.randint(10, w // 8)
    y = margin
    if rng.random() < 0.6:
        draw.text(
            (margin, y),
            _sentence(rng, rng.randint(2, 6)),
            fill=ink,
            font=_font(rng, size * 2, "DejaVuSans-Bold.ttf"),
        )
        y += size * 3
    while y < h - margin:
        if rng.random() < 0.1:
            y += size
            continue
        line = ""
        while draw.textlength(line, font=font) < w - 2 * margin - size * 6:
            line += _word(rng) + " "
        draw.text((margin, y), line.strip(), fill=ink, font=font)
        y += int(size * rng.uniform(1.2, 1.8))
    if rng.random() < 0.4:  # a scan: slight rotation, noise and blur
        img = img.rotate(rng.uniform(-2, 2), expand=False, fillcolor=paper)
        arr = np.asarray(img).astype(np.float32) + np.random.default_rng(
            rng.getrandbits(32)
        ).normal(0, 6, (h, w, 3))
        img = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    return img


def diagram(rng: random.Random) -> Image.Image:
    """Flowcharts, box-and-arrow diagrams and tables."""
    w, h = rng.randint(300, 900), rng.randint(250, 700)
    img = Image.new("RGB", (w, h), _light(rng) if rng.random() < 0.8 else _colour(rng))
    draw = ImageDraw.Draw(img)
    font = _font(rng, rng.randint(10, 18))
    line = tuple(rng.randint(0, 90) for _ in range(3))
    if rng.random() < 0.35:  # a table
        rows, cols = rng.randint(3, 12), rng.randint(2, 6)
        cw, rh = (w - 20) // cols, min(40, (h - 20) // rows)
        for r in range(rows):
            for c in range(cols):
                box = (10 + c * cw, 10 + r * rh, 10 + (c + 1) * cw, 10 + (r + 1) * rh)
                draw.rectangle(box, outline=line, fill=(220, 220, 230) if r == 0 else None)
                draw.text(
                    (box[0] + 4, box[1] + 4),
                    _word(rng) if r == 0 or c == 0 else str(rng.randint(0, 9999)),
                    fill=line,
                    font=font,
                )
        return img
    nodes = []
    for _ in range(rng.randint(3, 9)):
        bw, bh = rng.randint(60, 160), rng.randint(25, 60)
        x, y = rng.randint(5, max(6, w - bw - 5)), rng.randint(5, max(6, h - bh - 5))
        fill = _light(rng) if rng.random() < 0.6 else tuple(rng.randint(120, 255) for _ in range(3))
        shape = rng.choice(["rect", "round", "ellipse"])
        box = (x, y, x + bw, y + bh)
        if shape == "rect":
            draw.rectangle(box, outline=line, fill=fill, width=rng.randint(1, 3))
        elif shape == "round":
            draw.rounded_rectangle(box, radius=10, outline=line, fill=fill, width=rng.randint(1, 3))
        else:
            draw.ellipse(box, outline=line, fill=fill, width=rng.randint(1, 3))
        draw.text((x + 6, y + bh // 3), _word(rng), fill=line, font=font)
        nodes.append((x + bw // 2, y + bh // 2))
    for a, b in itertools.pairwise(nodes):
        draw.line([a, b], fill=line, width=rng.randint(1, 3))
        draw.regular_polygon((b[0], b[1], 5), 3, fill=line)
    return img


def screenshot(rng: random.Random) -> Image.Image:
    """Application windows and web pages: title bar, menu, sidebar, text and widgets."""
    w, h = rng.randint(400, 1000), rng.randint(300, 750)
    dark = rng.random() < 0.25
    bg = (rng.randint(20, 50),) * 3 if dark else _light(rng)
    fg = (220, 220, 220) if dark else (30, 30, 30)
    img = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(img)
    font = _font(rng, rng.randint(10, 15), "DejaVuSans.ttf")
    bar = rng.randint(20, 40)
    draw.rectangle((0, 0, w, bar), fill=_colour(rng) if rng.random() < 0.5 else (200, 200, 205))
    draw.text((8, bar // 4), _sentence(rng, 3), fill=fg, font=font)
    side = rng.randint(0, w // 4)
    if side:
        draw.rectangle((0, bar, side, h), fill=(235, 235, 240) if not dark else (40, 40, 48))
        for i in range(rng.randint(4, 15)):
            draw.text((8, bar + 10 + i * 22), _word(rng), fill=fg, font=font)
    y = bar + 10
    while y < h - 30:
        r = rng.random()
        if r < 0.15:
            bw = rng.randint(60, 140)
            draw.rounded_rectangle(
                (side + 10, y, side + 10 + bw, y + 24), radius=4, fill=_colour(rng)
            )
            draw.text((side + 18, y + 5), _word(rng), fill=(255, 255, 255), font=font)
            y += 34
        elif r < 0.25:
            bh = rng.randint(40, 140)
            draw.rectangle(
                (side + 10, y, min(w - 10, side + 10 + rng.randint(80, 400)), y + bh),
                fill=_colour(rng),
            )
            y += bh + 10
        else:
            draw.text((side + 10, y), _sentence(rng, rng.randint(3, 12)), fill=fg, font=font)
            y += 20
    return img


GENERATORS: dict[str, Callable[[random.Random], Image.Image]] = {
    "text-pages": text_page,
    "diagrams": diagram,
    "screenshots": screenshot,
}
