"""Listing, splitting and caching a ``<class>/<source>/...`` image folder, or a pack of one.

Images are decoded once, by the server's own ``image_to_model_input``, so training, evaluation
and serving see identical pixels; the 224x224 results are cached as uint8 (the rounding is far
below JPEG noise) in a ``.npy`` file keyed by the file list, so each epoch reads memory instead of
re-decoding and re-rasterizing.

Wherever a folder is read, a pack (``python -m training pack``: one zip of those 224x224 arrays,
lossily compressed, with a checksummed manifest) is read too, so the data can travel to a machine
that takes tens of MiB, not the folder's hundreds. Reading a pack needs Pillow and numpy only.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import zipfile
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np
import PIL
from PIL import Image, features

from model_server.logo_detection.decoding import image_to_model_input
from model_server.logo_detection.model_contract import DEFAULT_CLASS_NAMES, INPUT_SIZE
from training.progress import progress

CLASS_NAMES = list(DEFAULT_CLASS_NAMES)  # index 1 = logo, as the production model
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
PACK_FORMAT = 1  # raise it when the manifest or the entries change meaning
PACK_MANIFEST = "manifest.json"
PACK_CODECS = {"avif": "AVIF"}  # manifest codec -> Pillow format (pack.py says why AVIF)


@dataclass(frozen=True)
class Example:
    path: Path  # the file; in a pack, ``<pack>/<class>/<source>/<file>`` names its entry
    label: int
    source: str  # the sub-folder under the class folder ("" when files sit directly in it)
    group: str  # files sharing a group are variants of one original: never split apart
    pack: Path | None = None  # the pack holding the entry, None for a file
    sha256: str = ""  # a pack entry's checksum: what its cached pixels are keyed by

    @property
    def name(self) -> str:
        """A pack entry's name (``class/source/file``), as the manifest has it."""
        assert self.pack is not None, "only pack entries have a name"
        return self.path.relative_to(self.pack).as_posix()

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


def _checked_manifest(pack: zipfile.ZipFile, path: Path) -> dict:
    """The manifest of an open pack, if this checkout can read it; else an error that says what
    to do."""
    again = f"make it with `python -m training pack --data-dir FOLDER --out {path}`"
    try:
        manifest = json.loads(pack.read(PACK_MANIFEST))
        version = manifest["format"]
    except (KeyError, ValueError, TypeError, zipfile.BadZipFile) as exc:
        raise SystemExit(
            f"{path} is not a training pack (a zip with {PACK_MANIFEST}; {exc!r}): --data-dir "
            f"takes a folder with the class sub-folders {CLASS_NAMES} or a pack: {again}"
        ) from None
    if version != PACK_FORMAT:
        raise SystemExit(
            f"{path} is pack format {version}; this checkout reads format {PACK_FORMAT}: "
            f"pack the folder again with this checkout ({again})"
        )
    classes, size, codec = manifest["class_names"], manifest["input_size"], manifest["codec"]
    if classes != CLASS_NAMES or size != [INPUT_SIZE, INPUT_SIZE] or codec not in PACK_CODECS:
        raise SystemExit(
            f"{path} holds classes {classes} at {size} px in {codec}; this checkout trains "
            f"{CLASS_NAMES} at {INPUT_SIZE} px, from {list(PACK_CODECS)}: {again}"
        )
    if not features.check(codec):
        raise SystemExit(
            f"{path} holds {codec} images and this Pillow ({PIL.__version__}) cannot decode "
            f"{codec}: install the project's requirements (Pillow with {codec})"
        )
    missing = sorted(set(CLASS_NAMES) - {e["name"].split("/")[0] for e in manifest["entries"]})
    if missing:
        raise SystemExit(f"{path} holds no files of the class(es) {missing}: {again}")
    return manifest


class Pack:
    """A pack file open for reading: its manifest, checked on opening, and its images, each
    checked against the manifest's sha256 as it is read (a transfer must not silently corrupt
    training data)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.zip = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise SystemExit(
                f"{path} is not a training pack (not a zip: {exc}); --data-dir takes a folder "
                f"with the class sub-folders {CLASS_NAMES} or a file made by "
                f"`python -m training pack`"
            ) from None
        try:
            manifest = _checked_manifest(self.zip, path)
        except BaseException:
            self.zip.close()
            raise
        self.entries: list[dict] = manifest["entries"]
        self.splits: list[str] = manifest["splits"]
        self.prepared_from: dict | None = manifest.get("prepared_from")
        self.format = PACK_CODECS[manifest["codec"]]
        self.suffix = "." + manifest["codec"]
        self.sha256 = {e["name"]: e["sha256"] for e in self.entries}

    def __enter__(self) -> Pack:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.zip.close()

    def examples(self) -> list[Example]:
        """Every entry, in the manifest's (sorted) order; the split recorded for each must be
        the one ``split_of`` gives, or the pack was split by another rule than this checkout's."""
        out = []
        for e in self.entries:
            parts = e["name"].split("/")
            if len(parts) < 2 or parts[0] != CLASS_NAMES[e["label"]]:
                raise SystemExit(f"{self.path}: entry {e['name']} is not under its class folder")
            if split_of(e["group"]) != e["split"]:
                raise SystemExit(
                    f"{self.path}: {e['name']} was packed in split {e['split']}, but this "
                    f"checkout puts it in {split_of(e['group'])}: pack the folder again"
                )
            source = parts[1] if len(parts) > 2 else ""
            path = self.path / e["name"]
            out.append(Example(path, e["label"], source, e["group"], self.path, e["sha256"]))
        return out

    def image(self, name: str) -> np.ndarray:
        """The uint8 (224, 224, 3) image of entry ``name``, after checking its sha256."""
        try:
            blob = self.zip.read(name + self.suffix)
        except (KeyError, zipfile.BadZipFile, OSError) as exc:
            raise SystemExit(f"{self.path}: entry {name}: {exc}{self._refetch}") from None
        if hashlib.sha256(blob).hexdigest() != self.sha256[name]:
            raise SystemExit(f"{self.path}: entry {name} fails its sha256 check{self._refetch}")
        pixels = np.asarray(Image.open(io.BytesIO(blob), formats=[self.format]).convert("RGB"))
        if pixels.shape != (INPUT_SIZE, INPUT_SIZE, 3):
            raise SystemExit(f"{self.path}: entry {name} is {pixels.shape}, not {INPUT_SIZE} px")
        return pixels

    @property
    def _refetch(self) -> str:
        return (
            f"; the pack is damaged: copy it again and check it with "
            f"`sha256sum -c {self.path.name}.sha256`"
        )


def list_examples(
    data_dir: Path, split: str = "all", seed: int = 0, exclude: Collection[str] = ()
) -> list[Example]:
    """Image files under ``data_dir/<class>/`` (or the entries of a pack), optionally one split,
    sorted; ``exclude`` drops whole ``class/source`` folders (leave-source-out)."""
    if data_dir.is_file():
        with Pack(data_dir) as pack:
            found = pack.examples()
        if split != "all" and split not in pack.splits:
            raise SystemExit(
                f"{data_dir} holds the splits {pack.splits}, not {split}: pack the folder with "
                f"`--splits {','.join([*pack.splits, split])}`"
            )
    else:
        missing = [c for c in CLASS_NAMES if not (data_dir / c).is_dir()]
        if missing:
            raise SystemExit(
                f"{data_dir} needs one sub-folder per class {CLASS_NAMES}; missing {missing}"
            )
        found = []
        for label, cls in enumerate(CLASS_NAMES):
            root = data_dir / cls
            for path in sorted(
                p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")
            ):
                rel = path.relative_to(root)
                source = rel.parts[0] if len(rel.parts) > 1 else ""
                found.append(Example(path, label, source, group_of(path)))
    return [
        ex
        for ex in found
        if ex.key not in exclude and (split == "all" or split_of(ex.group, seed) == split)
    ]


def prepared_from(data_dir: Path) -> dict | None:
    """What ``prepare`` wrote to ``sources.json`` (the source collection, counts), from a folder
    or as a pack recorded it; None if there is none."""
    if data_dir.is_file():
        with Pack(data_dir) as pack:
            return pack.prepared_from
    sources = data_dir / "sources.json"
    return json.loads(sources.read_text()) if sources.exists() else None


def _decode(path: Path) -> np.ndarray | None:
    try:
        return np.rint(image_to_model_input(path.read_bytes())).astype(np.uint8)
    except Exception as exc:  # unreadable files are reported and left out, not fatal
        print(f"skipping {path}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return None


def load_arrays(
    examples: list[Example], cache_dir: Path | None = None, workers: int = 2
) -> tuple[np.ndarray, np.ndarray, list[Example]]:
    """Decode every example (or read the cache): uint8 (n, 224, 224, 3), labels, kept examples.

    A file is known by its path and mtime, a pack entry by its name and sha256 (so a pack and the
    cache beside it can move together); files that fail to decode are left out, pack entries that
    fail are an error (the pack was checked when it was made).
    """

    def known_as(e: Example) -> tuple[str, str | int]:
        return (e.name, e.sha256) if e.pack else (str(e.path), e.path.stat().st_mtime_ns)

    key = hashlib.sha256(
        json.dumps([(*known_as(e), e.label) for e in examples]).encode()
    ).hexdigest()[:16]
    if cache_dir:
        images_file, meta_file = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
        if images_file.exists() and meta_file.exists():
            kept = set(json.loads(meta_file.read_text()))
            kept_examples = [e for e in examples if known_as(e)[0] in kept]
            return (
                np.load(images_file, mmap_mode="r"),
                np.array([e.label for e in kept_examples]),
                kept_examples,
            )
    images = np.zeros((len(examples), INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
    ok = np.zeros(len(examples), bool)
    with ExitStack() as stack, ThreadPoolExecutor(workers) as pool:
        packs = {p: stack.enter_context(Pack(p)) for p in {e.pack for e in examples if e.pack}}
        decoded = pool.map(
            lambda e: packs[e.pack].image(e.name) if e.pack else _decode(e.path), examples
        )
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
        meta_file.write_text(json.dumps([known_as(e)[0] for e in kept_examples]))
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
