"""`python -m training pack`: a tiny prepared folder packed and read back through `--data-dir`'s
code path (same examples and splits, pixels within the documented error, checksums that catch a
damaged transfer, errors that say what to do), with Pillow and numpy only: no TensorFlow."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bench.harness.server_process import REPO_ROOT
from training import data
from training.__main__ import DEFAULT_PACK_QUALITY, default_cache
from training.pack import CODEC, pack

from .tiny_dataset import make_tiny_dataset

# Measured in docs/experiments-2026-12.md#packing-codec-size-and-fidelity: 99% of the sample's
# images decode back within 5.6 of 255 (mean 1.5); the tiny set's noise "photos" are the codec's
# worst case.
WORST_IMAGE_ERROR = 6.0
PREPARED_FROM = {"source_dir": "../shared/data", "seed": 1}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = make_tiny_dataset(tmp_path_factory.mktemp("tiny-data"))
    (root / "sources.json").write_text(json.dumps(PREPARED_FROM))
    return root


@pytest.fixture(scope="module")
def packed(folder, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("pack") / "data.zip"
    return out, pack(folder, out, data.SPLITS, DEFAULT_PACK_QUALITY)


def described(examples: list[data.Example], root: Path) -> list[tuple]:
    """What a folder and its pack must agree on: names, labels, sources, groups, splits."""
    return [
        (e.path.relative_to(root).as_posix(), e.label, e.key, e.group, data.split_of(e.group))
        for e in examples
    ]


def manifest(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read(data.PACK_MANIFEST))


def rewritten(path: Path, out: Path, member: str, change: Callable[[bytes], bytes]) -> Path:
    """A copy of the pack ``path`` with one member's bytes changed (a valid zip: CRCs match)."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            blob = src.read(info)
            dst.writestr(info, change(blob) if info.filename == member else blob)
    return out


def test_the_pack_lists_the_folders_examples_and_splits(folder, packed):
    path, info = packed
    assert info["images"] == len(data.list_examples(folder)) == 13
    for split in ("all", *data.SPLITS):
        from_folder = described(data.list_examples(folder, split), folder)
        assert described(data.list_examples(path, split), path) == from_folder
        assert from_folder or split == "all"
    entries = manifest(path)["entries"]
    assert {e["split"] for e in entries} == set(data.SPLITS)
    for e in entries:  # recorded when packing, recomputed when reading: the rule is deterministic
        assert (
            e["split"] == data.split_of(e["group"]) == data.split_of(data.group_of(Path(e["name"])))
        )
    kept = data.list_examples(path, exclude={"out_of_domain/noise"})
    assert {e.key for e in kept} == {"logo/shapes"}
    assert data.prepared_from(path) == data.prepared_from(folder) == PREPARED_FROM


def test_the_pack_holds_the_folders_pixels_within_the_documented_error(folder, packed, tmp_path):
    path, info = packed
    original, labels, examples = data.load_arrays(data.list_examples(folder))
    images, pack_labels, pack_examples = data.load_arrays(data.list_examples(path))
    assert [e.path.name for e in pack_examples] == [e.path.name for e in examples]
    assert images.shape == original.shape and images.dtype == np.uint8
    assert (pack_labels == labels).all()
    errors = np.abs(images.astype(np.int16) - original).mean(axis=(1, 2, 3))
    assert errors.max() < WORST_IMAGE_ERROR
    assert errors[labels == 1].max() < 1.0  # flat logos lose almost nothing at 4:4:4
    assert errors.mean() == pytest.approx(info["mean_abs_error"], abs=1e-3)
    assert 0 < info["mean_abs_error"] == manifest(path)["mean_abs_error"]


def test_a_pack_and_its_cache_move_together(packed, tmp_path):
    """Pack entries are cached by name and sha256, not by path: a moved pack keeps its cache."""
    path, _ = packed
    first = tmp_path / "a" / path.name
    first.parent.mkdir()
    shutil.copy(path, first)
    cache = default_cache(first)
    assert cache == first.parent / f"{path.name}.cache"
    images, labels, _ = data.load_subset(first, "train", cache)
    cached = sorted(p.name for p in cache.iterdir())
    assert cached and any(name.endswith(".npy") for name in cached)
    moved = tmp_path / "b"
    shutil.copytree(first.parent, moved)
    again, again_labels, examples = data.load_subset(
        moved / path.name, "train", default_cache(moved / path.name)
    )
    assert sorted(p.name for p in (moved / f"{path.name}.cache").iterdir()) == cached
    assert np.array_equal(np.asarray(again), np.asarray(images))
    assert (again_labels == labels).all() and all(e.pack == moved / path.name for e in examples)


@pytest.mark.parametrize("damage", ["flipped byte", "entry replaced"])
def test_a_damaged_entry_is_refused_by_name(packed, tmp_path, damage):
    path, _ = packed
    entry = manifest(path)["entries"][0]["name"]
    member = f"{entry}.{CODEC}"
    bad = tmp_path / path.name
    if damage == "flipped byte":  # what a broken transfer does; the zip's CRC-32 sees it
        with zipfile.ZipFile(path) as archive:
            blob = archive.read(member)
        raw = bytearray(path.read_bytes())
        raw[raw.index(blob) + len(blob) // 2] ^= 0xFF
        bad.write_bytes(raw)
    else:  # other bytes under the same name, with a CRC that matches them: the sha256 sees it
        rewritten(path, bad, member, lambda blob: blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(SystemExit, match=f"entry {entry}.*sha256sum -c {bad.name}.sha256"):
        data.load_arrays(data.list_examples(bad))


def test_the_checksum_file_checks_the_pack(packed, tmp_path):
    path, info = packed
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert info["sha256"] == digest
    checksum = path.with_name(path.name + ".sha256")
    assert checksum.read_text() == f"{digest}  {path.name}\n"
    if shutil.which("sha256sum"):  # what the receiving machine runs
        shutil.copy(path, tmp_path / path.name)
        shutil.copy(checksum, tmp_path / checksum.name)
        ok = subprocess.run(["sha256sum", "-c", checksum.name], cwd=tmp_path, capture_output=True)
        assert ok.returncode == 0, ok
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 1
        (tmp_path / path.name).write_bytes(raw)
        bad = subprocess.run(["sha256sum", "-c", checksum.name], cwd=tmp_path, capture_output=True)
        assert bad.returncode != 0


def edit_manifest(change: Callable[[dict], None]) -> Callable[[bytes], bytes]:
    def edit(blob: bytes) -> bytes:
        content = json.loads(blob)
        change(content)
        return json.dumps(content).encode()

    return edit


def wrong_split(m: dict) -> None:
    m["entries"][0]["split"] = next(s for s in data.SPLITS if s != m["entries"][0]["split"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(format=99), "pack format 99; this checkout reads format 1: pack"),
        (
            lambda m: m.update(entries=[e for e in m["entries"] if e["label"] == 0]),
            r"holds no files of the class\(es\) \['logo'\]",
        ),
        (lambda m: m.update(class_names=["a", "b"]), r"holds classes \['a', 'b'\]"),
        (wrong_split, "was packed in split .* pack the folder again"),
    ],
    ids=["format version", "missing class", "other classes", "other split rule"],
)
def test_a_pack_this_checkout_cannot_use_is_refused_saying_why(packed, tmp_path, change, message):
    path, _ = packed
    bad = rewritten(path, tmp_path / "bad.zip", data.PACK_MANIFEST, edit_manifest(change))
    with pytest.raises(SystemExit, match=message):
        data.list_examples(bad)


def test_a_file_that_is_not_a_pack_is_refused_saying_what_data_dir_takes(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a zip")
    bare = tmp_path / "bare.zip"
    with zipfile.ZipFile(bare, "w") as archive:
        archive.writestr("logo/x.png", b"")
    for path in (text, bare):
        with pytest.raises(SystemExit, match=r"is not a training pack.*python -m training pack"):
            data.list_examples(path)


def test_a_split_or_class_the_pack_lacks_is_an_error_not_an_empty_set(folder, tmp_path):
    path = tmp_path / "train.zip"
    info = pack(folder, path, ["train"], DEFAULT_PACK_QUALITY)
    assert info["splits"] == {"train": len(data.list_examples(path))} == {"train": 10}
    assert data.list_examples(path) == data.list_examples(path, "train")
    with pytest.raises(
        SystemExit, match=r"holds the splits \['train'\], not val.*--splits train,val"
    ):
        data.list_examples(path, "val")
    with pytest.raises(SystemExit, match="is a file"):
        pack(path, tmp_path / "again.zip", ["train"], DEFAULT_PACK_QUALITY)
    with pytest.raises(SystemExit, match=r"no files of the class\(es\) \['logo'\] to pack"):
        pack(folder, tmp_path / "no-logo.zip", ["train"], 60, exclude={"logo/shapes"})
    assert not (tmp_path / "no-logo.zip").exists()


def test_the_command_line_packs_the_same_bytes_and_reading_needs_no_tensorflow(
    folder, packed, tmp_path
):
    path, info = packed
    out = tmp_path / "cli" / "data.zip"
    options = ["--data-dir", str(folder), "--out", str(out), "--splits", "train,val,test"]
    result = subprocess.run(
        [sys.executable, "-m", "training", "pack", *options, "--workers", "1"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"{info['images']} images" in result.stdout and info["sha256"] in result.stdout
    assert out.read_bytes() == path.read_bytes()  # the same folder and options: the same pack
    assert not list(out.parent.glob(".*tmp"))  # written to a temporary file, then renamed
    reader = (
        "import sys; from pathlib import Path; from training import data\n"
        f"x, y, ex = data.load_subset(Path({str(out)!r}), 'train', Path({str(tmp_path)!r}))\n"
        "assert len(ex) == len(y) == len(x) > 0, len(ex)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'tensorflow', 'keras'}))\n"
    )
    read = subprocess.run(
        [sys.executable, "-c", reader], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == "[]"
