"""Score individual files and draw them in a grid with their logo scores, for a quick look."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from model_server.logo_detection.decoding import image_to_model_input
from training.keras_file import read_keras_file
from training.scores import score_model

SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".svg"}


def expand(paths: list[Path]) -> list[Path]:
    """Files as given; image files found recursively in directories (READMEs etc. skipped)."""
    out = []
    for p in paths:
        if p.is_dir():
            out += sorted(
                f
                for f in p.rglob("*")
                if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in SUFFIXES
            )
        else:
            out.append(p)
    return out


def classify(
    model_path: Path, paths: list[Path], grid: Path | None, batch_size: int = 32
) -> list[tuple[Path, float | None, str]]:
    """(file, logo score or None, note) per input; prints a table and writes the grid image."""
    files = expand(paths)
    inputs, rows = [], []
    for f in files:
        try:
            inputs.append(image_to_model_input(f.read_bytes()))
            rows.append((f, None, ""))
        except Exception as exc:  # show unreadable files in the table instead of stopping
            rows.append((f, None, f"error: {exc}"))
    scores = iter(
        score_model(read_keras_file(model_path), np.stack(inputs), batch_size) if inputs else []
    )
    rows = [(f, float(next(scores)), "") if not note else (f, None, note) for f, _, note in rows]
    width = max([len(str(f)) for f, _, _ in rows] + [4])
    print(f"{'file':<{width}}  logo score  class")
    for f, s, note in rows:
        print(
            f"{f!s:<{width}}  {'' if s is None else f'{s:10.4f}'}  "
            f"{note or ('logo' if s >= 0.5 else 'out_of_domain')}"
        )
    if grid and inputs:
        draw_grid([r for r in rows if r[1] is not None], inputs, grid)
    return rows


def draw_grid(
    rows: list[tuple[Path, float | None, str]], inputs: list[np.ndarray], grid: Path
) -> None:
    """The model's 224x224 view of each input, titled with its score (red = logo)."""
    cols = min(6, len(rows))
    lines = math.ceil(len(rows) / cols)
    fig, axes = plt.subplots(lines, cols, figsize=(2.4 * cols, 2.7 * lines), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (f, s, _), x in zip(axes.flat, rows, inputs, strict=False):
        ax.imshow(x.astype(np.uint8))
        ax.set_title(
            f"{f.name[:22]}\nlogo {s:.3f}", fontsize=8, color="red" if s >= 0.5 else "black"
        )
    fig.tight_layout()
    grid.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(grid, dpi=80)
    plt.close(fig)
