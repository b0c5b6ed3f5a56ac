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
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_server.logo_detection.decoding import image_to_model_input
from model_server.logo_detection.inference.model_file import DEFAULT_CLASS_NAMES, INPUT_SIZE
from training.progress import progress

CLASS_NAMES = list(DEFAULT_CLASS_NAMES)  # index 1 = logo, as the production model
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)


@dataclass(frozen=True)
class Example:
    path: Path
    label: int
    source: str  # the sub-folder under the class folder ("" when files sit directly in it)
    group: str  # files sharing a group are variants of one original: never split apart

    @property
    def key(self) -> str:
        """``class/source``, the name of the source in tables and in ``--holdout``."""
        cls = CLASS_NAMES[self.label]
        return f"{cls}/{self.source}" if self.source else cls


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


def list_examples(
    data_dir: Path, split: str = "all", seed: int = 0, exclude: Collection[str] = ()
) -> list[Example]:
    """Image files under ``data_dir/<class>/``, optionally one split, sorted; ``exclude`` drops
    whole ``class/source`` folders (leave-source-out)."""
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
            if ex.key not in exclude and (split == "all" or split_of(ex.group, seed) == split):
                out.append(ex)
    return out


def _decode(path: Path) -> np.ndarray | None:
    try:
        return np.rint(image_to_model_input(path.read_bytes())).astype(np.uint8)
    except Exception as exc:  # unreadable files are reported and left out, not fatal
        print(f"skipping {path}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
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
        decoded = pool.map(_decode, [e.path for e in examples])
        for i, arr in enumerate(progress(decoded, len(examples), "decoding")):
            if arr is not None:
                images[i], ok[i] = arr, True
    if not ok.all():  # a cache keeps what was left out: say how much, not only file by file
        print(f"decoding: left out {(~ok).sum()} of {len(examples)} files", file=sys.stderr)
    images = images[ok]
    kept_examples = [e for e, k in zip(examples, ok, strict=True) if k]
    if cache_dir:
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.save(images_file, images)
        meta_file.write_text(json.dumps([str(e.path) for e in kept_examples]))
    return images, np.array([e.label for e in kept_examples]), kept_examples


class Rows:
    """Some rows of a (memory-mapped) image array, read only when indexed.

    Lets every split and every leave-source-out subset share one decoded cache of the whole
    folder instead of decoding each subset again.
    """

    def __init__(self, images: np.ndarray, index: np.ndarray) -> None:
        self.images, self.index = images, index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key):
        return self.images[self.index[key]]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.asarray(self.images[self.index], dtype)


def load_subset(
    data_dir: Path,
    split: str = "all",
    cache_dir: Path | None = None,
    exclude: Collection[str] = (),
    only: Collection[str] | None = None,
) -> tuple[np.ndarray | Rows, np.ndarray, list[Example]]:
    """Images, labels and examples of one split (``only``: just these ``class/source`` keys).

    With a cache, the whole folder is decoded once and each subset is a view of it.
    """

    def wanted(e: Example, s: str) -> bool:
        return (s == "all" or split_of(e.group) == s) and (only is None or e.key in only)

    if not cache_dir:
        examples = [e for e in list_examples(data_dir, exclude=exclude) if wanted(e, split)]
        return load_arrays(examples, None)
    images, labels, everything = load_arrays(list_examples(data_dir), cache_dir)
    index = np.array(
        [i for i, e in enumerate(everything) if e.key not in exclude and wanted(e, split)], int
    )
    return Rows(images, index), labels[index], [everything[i] for i in index]


def counts(examples: list[Example]) -> dict[str, int]:
    """Files per ``class/source``, for the model's JSON and the model card."""
    out: dict[str, int] = {}
    for e in examples:
        out[e.key] = out.get(e.key, 0) + 1
    return dict(sorted(out.items()))
