"""The training tools that need no training: leave-source-out selection, the map renderer, the
augmentation pipeline, progress bars, repository-relative metadata and the GPU requirements."""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import shapefile
from PIL import Image

from bench.harness.server_process import REPO_ROOT
from model_server.logo_detection.decoding import image_to_model_input
from training import data, lso, pipeline, prepare
from training.metadata import describe
from training.paths import repo_relative
from training.synthetic import emblems, maps

from .tiny_dataset import SVG_LOGO, add_source_copy, make_tiny_dataset

pytestmark = pytest.mark.training

COUNTRIES = [  # name, continent, iso, population, gdp, (lon, lat) of the lower-left corner
    ("Aland", "Europe", "ALA", 5e6, 2e5, (0, 40)),
    ("Borduria", "Europe", "BOR", 2e7, 4e5, (12, 44)),
    ("Syldavia", "Europe", "SYL", 1e6, 1e4, (20, 38)),
    ("Kivu", "Africa", "KIV", 4e7, 9e4, (10, -10)),
    ("Nuevo", "South America", "NUE", 3e6, 5e4, (-60, -20)),
    ("Tasma", "Oceania", "TAS", 8e5, 3e4, (140, -40)),
]


@pytest.fixture(scope="module")
def geo_dir(tmp_path_factory) -> Path:
    """A small shapefile and pygal-style SVG in the layout of ``meta/geo``."""
    root = tmp_path_factory.mktemp("geo")
    with shapefile.Writer(str(root / maps.SHAPEFILE), shapeType=shapefile.POLYGON) as w:
        w.field("pop_est", "N", 24, 15)
        w.field("continent", "C", 80)
        w.field("name", "C", 80)
        w.field("iso_a3", "C", 80)
        w.field("gdp_md_est", "N", 18, 0)
        for i, (name, continent, iso, pop, gdp, (x, y)) in enumerate(COUNTRIES):
            ring = [(x, y), (x, y + 8 + i), (x + 10, y + 6), (x + 9 - i, y - 1), (x, y)]
            w.poly([ring])
            w.record(pop, continent, name, iso, gdp)
    groups = "".join(
        f'<g class="{iso[:2].lower()} country map-element">'
        f'<path d="M{100 + 300 * i} 300h250v{200 + 40 * i}h-250z"/></g>'
        for i, (_, _, iso, *_rest) in enumerate(COUNTRIES)
    )
    (root / maps.PYGAL_SVG).write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" version="1.1" viewBox="0 0 2475 1388">'
        f'<g id="countries">{groups}</g></svg>'
    )
    return root


def test_holdout_removes_whole_sources_from_every_split(tmp_path):
    root = make_tiny_dataset(tmp_path)
    add_source_copy(root, "logo", "shapes", "crests")
    add_source_copy(root, "out_of_domain", "noise", "maps")
    held = {"logo/crests", "out_of_domain/maps"}
    everything = data.list_examples(root)
    assert held <= {e.key for e in everything}
    for split in ("all", *data.SPLITS):
        kept = data.list_examples(root, split, exclude=held)
        assert not {e.key for e in kept} & held
        assert {e.path for e in kept} == {
            e.path
            for e in everything
            if e.key not in held and split in ("all", data.split_of(e.group))
        }
    # the cached view of the whole folder selects exactly the same files and pixels
    x, y, ex = data.load_subset(root, "all", None, exclude=held)
    xc, yc, exc = data.load_subset(root, "all", tmp_path / "cache", exclude=held)
    assert [e.path for e in ex] == [e.path for e in exc]
    np.testing.assert_array_equal(np.asarray(x), np.asarray(xc))
    np.testing.assert_array_equal(y, yc)
    _, yh, exh = data.load_subset(root, "all", tmp_path / "cache", only=held)
    assert {e.key for e in exh} == held and len(exh) == 13
    assert sorted(set(yh.tolist())) == [0, 1]
    with pytest.raises(SystemExit, match="unknown sources"):
        lso.check_sources(root, ["logo/crests", "logo/no-such-source"])


def test_lso_command_line_holds_out_listed_sources():
    from training.__main__ import parser, training_kwargs

    args = parser().parse_args(
        [
            "lso",
            "--data-dir",
            "d",
            "--out",
            "o",
            "--holdout",
            "out_of_domain/kodak24, logo/football-icons/,out_of_domain/tuxpaint-stamps",
            "--exclude",
            "out_of_domain/flag-icons",
            "--augmentation",
            "basic",
        ]
    )
    assert args.holdout == [
        "out_of_domain/kodak24",
        "logo/football-icons",
        "out_of_domain/tuxpaint-stamps",
    ]
    assert args.exclude == ["out_of_domain/flag-icons"]
    assert training_kwargs(args)["augmentation"] == "basic"
    train_args = parser().parse_args(
        ["train", "--data-dir", "d", "--out", "o", "--exclude", "out_of_domain/flag-icons,"]
    )
    assert train_args.exclude == ["out_of_domain/flag-icons"]


def test_held_out_table_scores_each_source_against_the_other_class():
    ex = [data.Example(Path(f"{i}.png"), 1, "crests", f"g{i}") for i in range(4)]
    ex += [data.Example(Path(f"m{i}.png"), 0, "maps", f"m{i}") for i in range(2)]
    labels = np.array([1, 1, 1, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.4, 0.7, 0.6, 0.1])
    other_labels, other_scores = np.array([0, 0, 1]), np.array([0.2, 0.5, 0.95])
    table = lso.held_out_table(ex, labels, scores, other_labels, other_scores)
    assert table["logo/crests"]["n"] == 4
    assert table["logo/crests"]["accuracy"] == 0.75
    # crests against maps (0.6, 0.1) and the other non-logos (0.2, 0.5): 0.4 loses to 2 of 4
    assert table["logo/crests"]["roc_auc"] == pytest.approx(14 / 16)
    assert table["out_of_domain/maps"]["accuracy"] == 0.5
    assert table["out_of_domain/maps"]["mean_logo_score"] == pytest.approx(0.35)


def test_map_renderer_makes_valid_varied_images(geo_dir):
    files = [maps.world_map(random.Random(i), geo_dir) for i in range(24)]
    files += [(maps.recoloured_svg(random.Random(i), geo_dir).encode(), "svg") for i in range(6)]
    assert {ext for _, ext in files} >= {"png", "jpg", "svg"}
    arrays = [image_to_model_input(raw) for raw, _ in files]
    assert all(a.shape == (224, 224, 3) for a in arrays)
    assert len({hashlib.sha1(raw).hexdigest() for raw, _ in files}) == len(files)
    colourful = [len(np.unique(a.reshape(-1, 3).round(-1), axis=0)) for a in arrays]
    assert np.median(colourful) > 8, "maps are coloured, not blank"
    means = np.array([a.mean(axis=(0, 1)) for a in arrays])
    assert means.std(axis=0).max() > 10, "palettes, seas and crops differ between maps"
    again = maps.world_map(random.Random(3), geo_dir)
    assert again == files[3], "a map is a pure function of its seed"


def test_strong_augmentation_is_label_blind_and_reproducible():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 224, 224, 3), dtype=np.uint8)
    labels = np.array([0, 1] * 4)

    def batch(augmentation: str):
        ds = pipeline.dataset(
            images, labels, 8, 64, train=True, min_scale=0.7, seed=3, augmentation=augmentation
        )
        return [tuple(t.numpy() for t in b) for b in ds.take(2)]

    strong, again, basic = batch("strong"), batch("strong"), batch("basic")
    for (x, y), (x2, _), (xb, yb) in zip(strong, again, basic, strict=True):
        assert x.shape == (8, 64, 64, 3) and x.min() >= 0.0 and x.max() <= 255.0
        np.testing.assert_array_equal(x, x2)
        assert y.sum(axis=0).tolist() == [4, 4] and yb.sum(axis=0).tolist() == [4, 4]
        assert not np.allclose(x, xb)


def test_capped_validation_sees_both_classes():
    images = np.zeros((64, 224, 224, 3), np.uint8)
    labels = np.array([0] * 48 + [1] * 16)  # listed class by class, as list_examples does
    ds = pipeline.dataset(images, labels, 8, 32)
    first = np.concatenate([y.numpy() for _, y in ds.take(2)])
    assert first[:, 1].sum() > 0 and first[:, 0].sum() > 0
    every = np.concatenate([y.numpy() for _, y in ds])
    assert every.sum(axis=0).tolist() == [48, 16], "each file exactly once"


def test_decoding_shows_a_progress_bar(tmp_path, capsys):
    root = make_tiny_dataset(tmp_path)
    data.load_arrays(data.list_examples(root), None)
    err = capsys.readouterr().err
    assert re.search(r"decoding: .*13/13 \[.*file/s\]", err), err[-500:]


def test_metadata_names_data_relative_to_the_repository(tmp_path):
    data_dir = REPO_ROOT.parent / "some-cache" / "training-data"
    assert repo_relative(data_dir) == "../some-cache/training-data"
    assert repo_relative(REPO_ROOT / "build" / "data") == "build/data"
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    (prepared / "sources.json").write_text(json.dumps({"source_dir": str(REPO_ROOT / "x")}))
    info = describe(prepared, {}, {}, {})
    assert info["data"]["prepared_from"]["source_dir"] == "x"
    assert not Path(info["data"]["data_dir"]).is_absolute()


def _strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def test_committed_model_metadata_has_no_absolute_paths():
    for sidecar in (REPO_ROOT / "models").glob("*.json"):
        info = json.loads(sidecar.read_text())
        absolute = [s for s in _strings(info) if s.startswith("/") or re.match(r"[A-Z]:\\", s)]
        assert not absolute, f"{sidecar.name}: {absolute}"


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"([A-Za-z0-9_.-]+)(\[[^\]]+\])?==(\S+)", line.strip())
        if m:
            pins[m.group(1).lower()] = m.group(3)
    return pins


def test_gpu_requirements_match_the_cpu_pins():
    """The GPU lock (make lock) has the dev lock's versions, TensorFlow's CUDA build in place of
    tensorflow-cpu, and the training and export tools."""
    dev = _pins(REPO_ROOT / "requirements-dev.txt")
    gpu = _pins(REPO_ROOT / "requirements-gpu.txt")
    assert "tensorflow-cpu" not in gpu and gpu["tensorflow"] == dev["tensorflow-cpu"]
    assert any(name.startswith("nvidia-cudnn") for name in gpu), "no CUDA libraries"
    tools = {"keras", "keras-cv", "tf2onnx", "onnx", "matplotlib", "scikit-learn", "tqdm", "pyshp"}
    assert tools <= gpu.keys()
    shared = gpu.keys() & dev.keys()
    assert {name: gpu[name] for name in shared} == {name: dev[name] for name in shared}
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "install-gpu:" in makefile and "--require-hashes -r requirements-gpu.txt" in makefile


def _source_collection(root: Path, geo_dir: Path) -> Path:
    """A tiny ``../shared/data``: manifest, simple-icons colours, meta/geo and a few images."""
    files = {
        "logo/simple-icons/acme.svg": SVG_LOGO.replace(b' fill="#e34f26"', b""),
        "logo/simple-icons/umbrella.svg": SVG_LOGO.replace(b' fill="#e34f26"', b""),
        "logo/devicon/acme-original.svg": SVG_LOGO,
        "out_of_domain/flag-icons/xx.svg": (
            b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 4 3">'
            b'<path fill="#06c" d="M0 0h4v3H0z"/><path fill="#fc0" d="M0 1h4v1H0z"/></svg>'
        ),
        "out_of_domain/tuxpaint-stamps/apple.png": _png(
            Image.new("RGBA", (60, 50), (200, 0, 0, 255)), 0
        ),
        "out_of_domain/kodak24/kodim01.png": _png(Image.new("RGB", (96, 64), (10, 120, 30)), 1),
    }
    rows = ["class,source,path"]
    for rel, raw in files.items():
        path = root / "images" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        rows.append(f"{rel.split('/')[0]},{rel.split('/')[1]},images/{rel}")
    (root / "meta" / "geo").mkdir(parents=True)
    (root / "meta" / "manifest.csv").write_text("\n".join(rows) + "\n")
    (root / "meta" / "simple-icons.json").write_text(
        json.dumps(
            [
                {"slug": "acme", "hex": "00AA77", "title": "Acme"},
                {"slug": "umbrella", "hex": "CC0000", "title": "Umbrella Corporation"},
            ]
        )
    )
    for f in geo_dir.iterdir():
        (root / "meta" / "geo" / f.name).write_bytes(f.read_bytes())
    return root


def _png(img: Image.Image, seed: int) -> bytes:
    arr = np.asarray(img).copy()
    arr[: 10 + seed, :10] = 255 - arr[: 10 + seed, :10]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def test_capped_prepare_is_a_subset_and_resumes(tmp_path, geo_dir, capsys):
    source = _source_collection(tmp_path / "source", geo_dir)
    out = tmp_path / "prepared"
    info = prepare.prepare(source, out, seed=1, workers=1, max_per_source=2)
    bar = capsys.readouterr().err
    assert re.search(r"prepare: .*\d+/\d+ \[.*file/s\]", bar), bar[-300:]
    assert not Path(info["source_dir"]).is_absolute()
    counts = info["counts"]
    assert (
        counts["out_of_domain/maps-naturalearth"] == 2 and counts["out_of_domain/maps-pygal"] == 2
    )
    assert counts["out_of_domain/tuxpaint-stamps"] == 2 and counts["out_of_domain/flag-icons"] == 2
    assert counts["logo/devicon"] == 2 and max(counts.values()) == 2
    assert counts["logo/generated-logos"] == 1  # one brand in three; "umbrella" is one
    made = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "sources.json")
    for f in made:  # every file is one the server reads
        assert image_to_model_input(f.read_bytes()).shape == (224, 224, 3)
    mtimes = {f: f.stat().st_mtime_ns for f in made}
    again = prepare.prepare(source, out, seed=1, workers=1, max_per_source=3)
    assert all(f.stat().st_mtime_ns == t for f, t in mtimes.items()), "made again, not resumed"
    assert again["counts"]["out_of_domain/maps-naturalearth"] == 3
    full_jobs = prepare.jobs(source)
    small = prepare.capped(full_jobs, 2, 1)
    assert set(small) <= set(prepare.capped(full_jobs, 3, 1)) <= set(full_jobs)


@pytest.mark.parametrize("family", ["wordmark", "combination", "lettermark", "emblem"])
def test_generated_logos_are_visible_multi_colour_designs(family):
    glyph = prepare.rasterize(SVG_LOGO.decode(), 128)
    colours = [(0, 90, 200), (255, 255, 255), (200, 16, 46)]
    for seed in range(6):
        rng = random.Random(seed)
        if family == "lettermark":
            img = emblems.lettermark(rng, "Umbrella Corporation", colours)
        elif family == "emblem":
            img = emblems.emblem(rng, "Umbrella Corporation", colours, glyph)
        else:
            img = emblems.wordmark(
                rng, "Umbrella", colours, glyph if family == "combination" else None
            )
        rgba = np.asarray(img)
        opaque = rgba[rgba[..., 3] > 0][:, :3]
        assert img.mode == "RGBA" and rgba[..., 3].any(), f"{family} {seed}: nothing drawn"
        assert len(opaque) > 0.02 * img.width * img.height, f"{family} {seed}: almost no ink"
        if family in ("lettermark", "emblem"):  # letters or a glyph on a filled shape
            assert len(np.unique(opaque, axis=0)) > 2, f"{family} {seed}: one flat colour"
        assert img.width >= img.height / 2, f"{family} {seed}: {img.size}"


def test_generated_logo_files_share_their_brands_split(tmp_path, geo_dir):
    source = _source_collection(tmp_path / "source", geo_dir)
    all_jobs = prepare.jobs(source)
    generated = [j for j in all_jobs if j.source == prepare.GENERATED_LOGOS]
    assert [(j.group, j.title) for j in generated] == [("umbrella", "Umbrella Corporation")]
    brand = next(j for j in all_jobs if j.source == "simple-icons" and j.group == "umbrella")
    names = [Path(prepare.output_stem(j) + ".png") for j in (generated[0], brand)]
    assert data.group_of(names[0]) == data.group_of(names[1]) == "umbrella"  # one split for both
    made = {prepare.generated_logo_file(generated[0], random.Random(s)) for s in range(4)}
    assert len(made) == 4  # each seed a different file
    for raw, ext in made:
        assert ext in {"png", "jpg", "gif"}
        pixels = image_to_model_input(raw)
        assert pixels.shape == (224, 224, 3) and pixels.std() > 5
