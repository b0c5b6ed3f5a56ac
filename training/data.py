"""Listing, splitting and caching a ``<class>/<source>/...`` image folder.

Images are decoded once, by the server's own ``image_to_model_input``, so training, evaluation
and serving see identical pixels; the 224x224 results are cached as uint8 (the rounding is far
below JPEG noise) in a ``.npy`` file keyed by the file list, so each epoch reads memory instead of
re-decoding and re-rasterizing.
"""

from __future__ import annotations

import hashlib
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_server.logo_detection.preprocess import image_to_model_input
from model_server.logo_detection.tf.architecture import DEFAULT_CLASS_NAMES, INPUT_SIZE

CLASS_NAMES = list(DEFAULT_CLASS_NAMES)  # index 1 = logo, as the production model
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)


@dataclass(frozen=True)
class Example:
    path: Path
    label: int
    source: str  # the sub-folder under the class folder ("" when files sit directly in it)
    group: str  # files sharing a group are variants of one original: never split apart


def group_of(path: Path) -> str:
    """``<group>__<rest>`` names (``training.prepare`` writes them) share a group; others don't."""
    stem = path.stem
    return stem.split("__", 1)[0] if "__" in stem else stem


def split_of(group: str, seed: int = 0) -> str:
    """Deterministic split from a hash of the group, so it never depends on listing order."""
    digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
    x = int.from_bytes(digest[:8], "big") / 2**64
    edges = np.cumsum(SPLIT_FRACTIONS)
    return SPLITS[int(np.searchsorted(edges, x, side="right"))]


def list_examples(data_dir: Path, split: str = "all", seed: int = 0) -> list[Example]:
    """All image files under ``data_dir/<class>/``, optionally one split of them, sorted."""
    missing = [c for c in CLASS_NAMES if not (data_dir / c).is_dir()]
    if missing:
        raise SystemExit(
            f"{data_dir} needs one sub-folder per class {CLASS_NAMES}; missing {missing}"
        )
    out = []
    for label, cls in enumerate(CLASS_NAMES):
        root = data_dir / cls
        for path in sorted(
            p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")
        ):
            rel = path.relative_to(root)
            ex = Example(path, label, rel.parts[0] if len(rel.parts) > 1 else "", group_of(path))
            if split == "all" or split_of(ex.group, seed) == split:
                out.append(ex)
    return out


def _decode(path: Path) -> np.ndarray | None:
    try:
        return np.rint(image_to_model_input(path.read_bytes())).astype(np.uint8)
    except Exception as exc:  # unreadable files are reported and left out, not fatal
        print(f"skipping {path}: {exc}", file=sys.stderr, flush=True)
        return None


def load_arrays(
    examples: list[Example], cache_dir: Path | None = None, workers: int = 2
) -> tuple[np.ndarray, np.ndarray, list[Example]]:
    """Decode every example (or read the cache): uint8 (n, 224, 224, 3), labels, kept examples."""
    key = hashlib.sha256(
        json.dumps([(str(e.path), e.path.stat().st_mtime_ns, e.label) for e in examples]).encode()
    ).hexdigest()[:16]
    if cache_dir:
        images_file, meta_file = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
        if images_file.exists() and meta_file.exists():
            kept = set(json.loads(meta_file.read_text()))
            kept_examples = [e for e in examples if str(e.path) in kept]
            return (
                np.load(images_file, mmap_mode="r"),
                np.array([e.label for e in kept_examples]),
                kept_examples,
            )
    images = np.zeros((len(examples), INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
    ok = np.zeros(len(examples), bool)
    with ThreadPoolExecutor(workers) as pool:
        for i, arr in enumerate(pool.map(_decode, [e.path for e in examples])):
            if arr is not None:
                images[i], ok[i] = arr, True
            if (i + 1) % 1000 == 0:
                print(f"decoded {i + 1}/{len(examples)}", flush=True)
    images = images[ok]
    kept_examples = [e for e, k in zip(examples, ok, strict=True) if k]
    if cache_dir:
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.save(images_file, images)
        meta_file.write_text(json.dumps([str(e.path) for e in kept_examples]))
    return images, np.array([e.label for e in kept_examples]), kept_examples


def counts(examples: list[Example]) -> dict[str, int]:
    """Files per ``class/source``, for the model's JSON and the model card."""
    out: dict[str, int] = {}
    for e in examples:
        key = f"{CLASS_NAMES[e.label]}/{e.source}" if e.source else CLASS_NAMES[e.label]
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))
