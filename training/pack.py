"""``python -m training pack``: a prepared folder as one compact, checksummed file.

A GPU job receives at most 64 MiB of files; the prepared folder is several hundred MB. What
training reads of it is each file decoded to a 224x224 uint8 array (``data.load_arrays``, the
server's own decoding), so the pack holds those arrays, not the files: each one compressed with
AVIF at 4:4:4 chroma, which measured smallest for its error
(docs/experiments-2026-12.md#packing-codec-size-and-fidelity), in a zip (stored, not deflated:
the images are compressed already) with a ``manifest.json`` naming every entry's class, source,
group, split and sha256. ``--data-dir`` takes the pack wherever it takes a folder (``data.Pack``
reads it).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import zipfile
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from model_server.logo_detection.model_contract import INPUT_SIZE, file_sha256
from training import data
from training.progress import progress

CODEC = "avif"
ENCODER_OPTIONS = {"subsampling": "4:4:4"}  # full-resolution colour: logos' edges stay sharp
BUDGET = 60 * 2**20  # what a GPU job carries besides the Keras wheels
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed, so the same data and options give the same bytes


def encode(image: np.ndarray, quality: int) -> tuple[bytes, float]:
    """One 224x224 image compressed, and the mean absolute error (0-255) it decodes back with."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, data.PACK_CODECS[CODEC], quality=quality, **ENCODER_OPTIONS)
    blob = buf.getvalue()
    back = np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))
    return blob, float(np.abs(back.astype(np.int16) - image).mean())


def _write(archive: zipfile.ZipFile, name: str, blob: bytes, compression: int) -> None:
    info = zipfile.ZipInfo(name, ZIP_DATE)
    info.external_attr = 0o644 << 16  # a plain readable file when unzipped
    archive.writestr(info, blob, compression)


def _replace_atomically(path: Path, write) -> None:
    """``write(tmp)`` then rename over ``path``: an interrupted run never leaves half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def pack(
    data_dir: Path,
    out: Path,
    splits: Sequence[str],
    quality: int,
    cache_dir: Path | None = None,
    exclude: Collection[str] = (),
    workers: int = 2,
) -> dict:
    """Write the images of ``splits`` of ``data_dir`` (less ``exclude``d sources) to the pack
    ``out`` and its checksum to ``out.sha256``; returns what it wrote. ``quality``: AVIF's
    0-100 (``python -m training pack`` defaults to ``__main__.DEFAULT_PACK_QUALITY``)."""
    if data_dir.is_file():
        raise SystemExit(
            f"{data_dir} is a file; pack a folder made by `python -m training prepare`"
        )
    unknown = sorted(set(splits) - set(data.SPLITS))
    if unknown or not splits:
        raise SystemExit(f"--splits: {unknown or 'none'}; choose among {list(data.SPLITS)}")
    entries: list[dict] = []
    blobs: dict[str, bytes] = {}
    errors: list[float] = []
    for split in splits:  # with a cache, every split is a view of the folder's one decoding
        images, _, examples = data.load_subset(data_dir, split, cache_dir, exclude)
        with ThreadPoolExecutor(workers) as pool:
            rows = (np.asarray(images[i]) for i in range(len(examples)))  # memory-mapped views
            encoded = pool.map(partial(encode, quality=quality), rows)
            for e, (blob, error) in zip(
                examples, progress(encoded, len(examples), f"packing {split}"), strict=True
            ):
                name = e.path.relative_to(data_dir).as_posix()
                digest = hashlib.sha256(blob).hexdigest()
                entries.append(
                    {
                        "name": name,
                        "label": e.label,
                        "group": e.group,
                        "split": split,
                        "sha256": digest,
                    }
                )
                blobs[name] = blob
                errors.append(error)
    missing = [
        c for label, c in enumerate(data.CLASS_NAMES) if all(e["label"] != label for e in entries)
    ]
    if missing:  # a pack must train what a folder trains
        raise SystemExit(
            f"{data_dir} has no files of the class(es) {missing} to pack (--splits, --exclude)"
        )
    entries.sort(key=lambda e: (e["label"], Path(e["name"]).parts))  # a folder listing's order
    manifest = {
        "format": data.PACK_FORMAT,
        "input_size": [INPUT_SIZE, INPUT_SIZE],
        "class_names": data.CLASS_NAMES,
        "codec": CODEC,
        "quality": quality,
        "encoder_options": ENCODER_OPTIONS,
        "mean_abs_error": round(float(np.mean(errors)), 3) if errors else 0.0,
        "splits": list(splits),
        "excluded": sorted(exclude),
        "prepared_from": data.prepared_from(data_dir),
        "entries": entries,
    }

    def write_zip(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w") as archive:
            _write(archive, data.PACK_MANIFEST, json.dumps(manifest).encode(), zipfile.ZIP_DEFLATED)
            for e in entries:
                _write(archive, f"{e['name']}.{CODEC}", blobs[e["name"]], zipfile.ZIP_STORED)

    out.parent.mkdir(parents=True, exist_ok=True)
    _replace_atomically(out, write_zip)
    digest = file_sha256(out)
    checksum = out.with_name(out.name + ".sha256")
    _replace_atomically(checksum, lambda tmp: tmp.write_text(f"{digest}  {out.name}\n"))
    size = out.stat().st_size
    if size > BUDGET:
        print(
            f"warning: {out} is {size / 2**20:.1f} MiB, over the {BUDGET // 2**20} MiB a GPU job "
            f"carries: lower --quality or --exclude sources",
            file=sys.stderr,
        )
    per_split = {s: sum(e["split"] == s for e in entries) for s in splits}
    return {
        "pack": str(out),
        "images": len(entries),
        "splits": per_split,
        "bytes": size,
        "bytes_per_image": round(size / max(len(entries), 1)),
        "codec": f"{CODEC} quality {quality} {ENCODER_OPTIONS['subsampling']}",
        "mean_abs_error": manifest["mean_abs_error"],
        "sha256": digest,
        "checksum_file": str(checksum),
    }
