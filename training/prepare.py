"""Turn the source collection (all-SVG logos, mostly-photo non-logos) into Commons-like files.

Writes ``<out>/<class>/<source>/<group>__<variant>.<ext>``. ``group`` ties together every file
made from one source item (and one brand across sources), so ``training.data.split_of`` keeps
all of them in the same train/validation/test split. Every random choice is seeded by the item's
name, so the output does not depend on ordering or worker count.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import resvg_py
from PIL import Image, ImageFilter

from training.paths import repo_relative
from training.progress import progress
from training.synthetic import emblems, graphics, maps

LOGO, OTHER = "logo", "out_of_domain"
# Variants per source item, sized so the classes end up roughly balanced and small sources
# (kodak, artworks, maps) are not drowned out.
LOGO_VARIANTS = {"simple-icons": 1, "devicon": 2, "cryptocurrency-icons": 1, "football-icons": 2}
OTHER_VARIANTS = {
    "imagenet-sample-images": 2,
    "intel-scenes": 1,
    "kodak24": 6,
    "pd-artworks-artbreaker": 3,
    "svg-maps": 6,
    "tuxpaint-stamps": 2,
    "flag-icons": 2,
    "desktop-wallpapers": 4,
}
# Logos of the design families the icon sets lack, each from one simple-icons brand: one brand
# in GENERATED_LOGO_EVERY gets one (about 1,150).
GENERATED_LOGOS, GENERATED_LOGO_EVERY = "generated-logos", 3
SYNTH_COUNTS = {"charts": 1000, "text-pages": 450, "diagrams": 450, "screenshots": 400}
# Maps rendered from meta/geo: source folder -> (file in meta/geo, number of maps)
MAP_COUNTS = {
    "maps-naturalearth": (maps.SHAPEFILE, 1200),
    "maps-pygal": (maps.PYGAL_SVG, 300),
}


@dataclass(frozen=True)
class Job:
    """One output file to make: from a source file (``src``) or a generator (``src`` None)."""

    cls: str
    source: str
    group: str
    variant: int
    src: str | None = None
    colour: str | None = None
    title: str | None = None


def group_key(source: str, stem: str) -> str:
    """Brand name shared across sources: simple-icons' and devicon's python stay together."""
    if source == "devicon":
        stem = re.split(r"-(original|plain|line)", stem)[0]
    return re.sub(r"[^a-z0-9]", "", stem.lower()) or stem


def fix_root_size(svg: str) -> str:
    """Drop the root element's width/height so resvg sizes the image from its viewBox."""

    def fix(m: re.Match) -> str:
        tag = re.sub(r'\s(width|height)\s*=\s*"[^"]*"', "", m.group(0))
        return tag if "viewBox" in tag else tag.replace("<svg", '<svg width="512" height="512"', 1)

    return re.sub(r"<svg\b[^>]*>", fix, svg, count=1)


def usable_svg(svg: str) -> str:
    """Without a DOCTYPE (the server refuses DTDs) and with a root size resvg can read."""
    svg = re.sub(r"<!DOCTYPE[^>\[]*(\[[^\]]*\])?\s*>", "", svg, count=1)
    try:
        resvg_py.svg_to_bytes(svg_string=svg, width=16)
        return svg
    except ValueError:
        return fix_root_size(svg)


def rasterize(
    svg: str, width: int, background: str | None = None, style: str | None = None
) -> Image.Image:
    """SVG -> RGBA image with resvg (no network: external hrefs are never fetched)."""
    kwargs = {"svg_string": svg, "width": width, "background": background}
    if style:
        kwargs["style_sheet"] = style
    try:
        data = resvg_py.svg_to_bytes(**kwargs)
    except ValueError:  # a size resvg can't read (e.g. "200.0pt"): use the viewBox or a default
        kwargs["svg_string"] = fix_root_size(svg)
        data = resvg_py.svg_to_bytes(**kwargs)
    return Image.open(io.BytesIO(bytes(data))).convert("RGBA")


def _luma(rgb: tuple[int, int, int]) -> float:
    return (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    """``"RRGGBB"`` (simple-icons' brand colours) -> (r, g, b)."""
    return tuple(int(hex_colour[i : i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]


def _background(rng: random.Random) -> tuple[int, int, int]:
    r = rng.random()
    if r < 0.5:
        return (255, 255, 255)
    if r < 0.65:
        return tuple(rng.randint(220, 255) for _ in range(3))  # type: ignore[return-value]
    if r < 0.8:
        return tuple(rng.randint(0, 50) for _ in range(3))  # type: ignore[return-value]
    return tuple(rng.randint(0, 255) for _ in range(3))  # type: ignore[return-value]


def _simple_icon_colour(rng: random.Random, brand_hex: str | None) -> tuple[int, int, int]:
    r = rng.random()
    if brand_hex and r < 0.6:
        return _rgb(brand_hex)
    if r < 0.75:
        return (0, 0, 0)
    if r < 0.85:
        return (255, 255, 255)
    return tuple(rng.randint(0, 255) for _ in range(3))  # type: ignore[return-value]


def _size(rng: random.Random) -> int:
    """Longest side: Commons thumbnails (small) up to full-size uploads."""
    return int(rng.choice([rng.uniform(40, 160), rng.uniform(160, 500), rng.uniform(500, 900)]))


def _placement(rng: random.Random) -> tuple[float, int]:
    """A file's padding and the longest side of what it shows (the file's size less padding)."""
    side = _size(rng)
    pad = _padding(rng)
    return pad, max(16, int(side / (1 + 2 * pad)))


def _encode(img: Image.Image, rng: random.Random, fmt: str) -> tuple[bytes, str]:
    buf = io.BytesIO()
    if fmt == "jpg":
        img.convert("RGB").save(buf, "JPEG", quality=rng.randint(45, 95))
    elif fmt == "gif":
        img.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE).save(buf, "GIF")
    else:
        if img.mode == "RGB" and rng.random() < 0.2:
            img = img.quantize(rng.choice([16, 64, 256]))
        img.save(buf, "PNG")
    return buf.getvalue(), fmt


def _thumbnail(img: Image.Image, rng: random.Random) -> Image.Image:
    side = _size(rng)
    scale = side / max(img.size)
    if scale < 1:
        img = img.resize(
            (max(1, round(img.width * scale)), max(1, round(img.height * scale))),
            Image.Resampling.LANCZOS,
        )
    return img


def logo_file(job: Job, rng: random.Random) -> tuple[bytes, str]:
    """One Commons-like rendition of a logo: SVG, transparent PNG, or PNG/JPEG/GIF on a colour."""
    svg = Path(job.src).read_text(encoding="utf-8", errors="replace")  # type: ignore[arg-type]
    if job.source == "simple-icons":  # fill-less paths: give them a (brand) colour
        fill = _simple_icon_colour(rng, job.colour)
        svg = re.sub(r"<svg\b", f'<svg fill="{_hex(fill)}"', svg, count=1)
    else:
        fill = None
    fmt = rng.choices(["svg", "png-alpha", "png", "jpg", "gif"], weights=[12, 25, 35, 23, 5])[0]
    if fmt == "svg" and fill is not None and _luma(fill) < 0.3:
        fmt = "png"  # the server renders SVGs on black: a dark single-colour icon would vanish
    if fmt == "svg":
        return usable_svg(svg).encode(), "svg"
    pad, inner = _placement(rng)
    logo = rasterize(svg, inner)
    if max(logo.size) > inner:  # tall logos: fit the longest side
        logo = logo.resize(
            (
                max(1, logo.width * inner // max(logo.size)),
                max(1, logo.height * inner // max(logo.size)),
            )
        )
    return compose(logo, rng, "png" if fmt == "png-alpha" else fmt, pad, fill, fmt == "png-alpha")


def generated_logo_file(job: Job, rng: random.Random) -> tuple[bytes, str]:
    """A wordmark, lettermark, combination mark or emblem for one brand, placed like a logo."""
    svg = Path(job.src).read_text(encoding="utf-8", errors="replace")  # type: ignore[arg-type]
    glyph = rasterize(re.sub(r"<svg\b", '<svg fill="#000000"', svg, count=1), 384)
    if job.colour and rng.random() < 0.8:
        brand = _rgb(job.colour)
    else:
        brand = tuple(rng.randint(0, 255) for _ in range(3))
    logo = emblems.generated_logo(rng, job.title or job.group, brand, glyph)  # type: ignore[arg-type]
    pad, inner = _placement(rng)
    scale = inner / max(logo.size)
    logo = logo.resize(
        (max(1, round(logo.width * scale)), max(1, round(logo.height * scale))),
        Image.Resampling.LANCZOS,
    )
    fmt = rng.choices(["png-alpha", "png", "jpg", "gif"], weights=[30, 40, 25, 5])[0]
    return compose(
        logo,
        rng,
        "png" if fmt == "png-alpha" else fmt,
        pad,
        brand,  # type: ignore[arg-type]
        transparent=fmt == "png-alpha",
        silhouette=False,  # a multi-colour emblem as one white shape would be a blank badge
    )


def _padding(rng: random.Random) -> float:
    return rng.choice([0.0, 0.0, rng.uniform(0, 0.15), rng.uniform(0.1, 0.4)])


def compose(
    item: Image.Image,
    rng: random.Random,
    fmt: str,
    pad: float,
    fill: tuple[int, int, int] | None = None,
    transparent: bool = False,
    silhouette: bool = True,
) -> tuple[bytes, str]:
    """An RGBA item (logo, cut-out, photo) padded on a plain background, as Commons files are:
    a transparent PNG (what hides under transparent pixels varies) or a PNG/JPEG/GIF on white,
    light, dark or coloured backgrounds. Logos and non-logos go through the same code, so a
    plain background or transparency says nothing about the class."""
    extra_w = int(item.width * pad * 2) + (
        int(item.width * rng.uniform(0, 1.5)) if rng.random() < 0.15 else 0
    )
    extra_h = int(item.height * pad * 2)
    canvas_size = (item.width + extra_w, item.height + extra_h)
    if transparent:
        under = rng.choices([(0, 0, 0), (255, 255, 255), _background(rng)], weights=[7, 2, 1])[0]
        if (
            fill is not None and abs(_luma(fill) - _luma(under)) < 0.25
        ):  # else invisible once alpha is dropped
            under = (255, 255, 255) if _luma(fill) < 0.5 else (0, 0, 0)
        canvas = Image.new("RGBA", canvas_size, (*under, 0))
        canvas.alpha_composite(item, (extra_w // 2, extra_h // 2))
        arr = np.asarray(canvas).copy()
        arr[arr[..., 3] == 0, :3] = under  # what editors leave under fully transparent pixels
        return _encode(Image.fromarray(arr, "RGBA"), rng, "png")
    bg = _background(rng)
    if fill is not None and abs(_luma(fill) - _luma(bg)) < 0.25:  # keep single-colour icons visible
        bg = (255, 255, 255) if _luma(fill) < 0.5 else (20, 20, 20)
    # app-icon style: a white glyph on the brand colour
    if silhouette and fill is not None and rng.random() < 0.15:
        bg, item = (
            fill,
            Image.merge(
                "RGBA", (*Image.new("RGB", item.size, (255, 255, 255)).split(), item.split()[3])
            ),
        )
    canvas = Image.new("RGBA", canvas_size, (*bg, 255))
    canvas.alpha_composite(item, (extra_w // 2, extra_h // 2))
    img = canvas.convert("RGB")
    if rng.random() < 0.1:  # low-quality re-uploads: scaled down and up, or blurred
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    return _encode(img, rng, fmt)


def cutout_file(job: Job, rng: random.Random) -> tuple[bytes, str]:
    """A cut-out (object on transparency) as uploaded, or composed like a logo would be."""
    path = Path(job.src)  # type: ignore[arg-type]
    if job.variant == 0 and rng.random() < 0.4:
        return path.read_bytes(), path.suffix.lower().lstrip(".")
    item = _thumbnail(Image.open(path).convert("RGBA"), rng)
    fmt = rng.choices(["png-alpha", "png", "jpg", "gif"], weights=[30, 35, 30, 5])[0]
    return compose(
        item, rng, "png" if fmt == "png-alpha" else fmt, _padding(rng), None, fmt == "png-alpha"
    )


def wallpaper_file(job: Job, rng: random.Random) -> tuple[bytes, str]:
    """A wallpaper: SVG ones as SVG or rendered full-frame; raster ones like photos."""
    if not job.src.endswith(".svg"):  # type: ignore[union-attr]
        return photo_file(job, rng)
    svg = usable_svg(Path(job.src).read_text(encoding="utf-8", errors="replace"))  # type: ignore[arg-type]
    if job.variant == 0:
        return svg.encode(), "svg"
    img = rasterize(svg, _size(rng) + 100).convert("RGB")
    return _encode(img, rng, rng.choice(["png", "jpg"]))


def rendered_map_file(job: Job, rng: random.Random) -> tuple[bytes, str]:
    """A coloured map from ``meta/geo``: matplotlib from the shapefile, or pygal's SVG."""
    geo_dir = Path(job.src).parent  # type: ignore[arg-type]
    if job.source == "maps-naturalearth":
        return maps.world_map(rng, geo_dir)
    svg = maps.recoloured_svg(rng, geo_dir)
    fmt = rng.choice(["svg", "png", "png-alpha", "jpg"])
    if fmt == "svg":
        return svg.encode(), "svg"
    img = rasterize(svg, _size(rng) + 100, None if fmt == "png-alpha" else "#ffffff")
    return _encode(img if fmt == "png-alpha" else img.convert("RGB"), rng, fmt[:3])


def map_file(job: Job, rng: random.Random) -> tuple[bytes, str]:
    """An outline map: as SVG, or rasterized with varied fills and strokes like Commons' maps."""
    svg = Path(job.src).read_text(encoding="utf-8", errors="replace")  # type: ignore[arg-type]
    fill = rng.choice(
        [
            "#d0d0d0",
            "#c8e6c9",
            "#f5f5dc",
            "#ffffff",
            "#e0c090",
            _hex(tuple(rng.randint(100, 255) for _ in range(3))),
        ]
    )  # type: ignore[arg-type]
    stroke = rng.choice(["#ffffff", "#333333", "#888888"])
    style = f"path {{ fill: {fill}; stroke: {stroke}; stroke-width: {rng.uniform(0.3, 2):.1f} }}"
    region = _hex(tuple(rng.randint(0, 255) for _ in range(3)))  # type: ignore[arg-type]
    style += f" path:nth-child({rng.randint(2, 5)}n) {{ fill: {region} }}"
    fmt = rng.choice(["svg", "png-alpha", "png", "jpg"])
    if fmt == "svg":
        return re.sub(
            r"<svg\b[^>]*>", lambda m: f"{m.group(0)}<style>{style}</style>", svg, count=1
        ).encode(), "svg"
    bg = None if fmt == "png-alpha" else rng.choice(["#ffffff", "#ffffff", "#cfe8ff", "#f0f0f0"])
    img = rasterize(svg, _size(rng) + 100, bg, style)
    return _encode(
        img if fmt == "png-alpha" else img.convert("RGB"), rng, "jpg" if fmt == "jpg" else "png"
    )


def photo_file(job: Job, rng: random.Random) -> tuple[bytes, str]:
    """A photo as uploaded (original file), re-encoded as PNG, or as a small JPEG thumbnail."""
    path = Path(job.src)  # type: ignore[arg-type]
    kind = rng.choices(
        ["original", "png", "thumb", "crop", "matted"],
        weights=[4, 2, 4, 2 if job.source == "kodak24" else 0, 2],
    )[0]
    if job.variant >= 1 and kind == "original":  # only the first variant may be the original
        kind = "thumb"
    if kind == "original":
        return path.read_bytes(), path.suffix.lower().lstrip(".")
    img = Image.open(path)
    if kind == "matted":  # a photo on a plain or transparent background, like a logo can be
        fmt = rng.choices(["png-alpha", "png", "jpg"], weights=[1, 2, 3])[0]
        item = _thumbnail(img.convert("RGBA"), rng)
        return compose(item, rng, fmt[:3], rng.uniform(0.05, 0.4), None, fmt == "png-alpha")
    img = img.convert("RGB") if kind != "png" or img.mode not in ("P", "RGB") else img
    if kind == "crop":
        w, h = img.size
        cw, ch = int(w * rng.uniform(0.4, 0.9)), int(h * rng.uniform(0.4, 0.9))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        img = img.crop((x, y, x + cw, y + ch))
    if kind in ("thumb", "crop"):
        img = _thumbnail(img, rng)
        if job.source == "intel-scenes" and rng.random() < 0.5:
            img = img.resize((rng.randint(120, 300),) * 2, Image.Resampling.BICUBIC)
    return _encode(img, rng, "png" if kind == "png" else "jpg")


def generated_file(job: Job, rng: random.Random) -> tuple[bytes, str]:
    """A procedurally generated chart, text page, diagram or screenshot."""
    if job.source == "charts":
        data, ext = graphics.chart(rng)
        return (usable_svg(data.decode()).encode(), ext) if ext == "svg" else (data, ext)
    img = graphics.GENERATORS[job.source](rng)
    if rng.random() < 0.3:
        img = _thumbnail(img, rng)
    return _encode(img, rng, rng.choices(["png", "jpg"], weights=[3, 2])[0])


def make(job: Job, out: Path, seed: int) -> str:
    """Write one job's file; returns its path relative to ``out``."""
    rng = random.Random(f"{seed}:{job.cls}:{job.source}:{job.group}:{job.src}:{job.variant}")
    suffix = Path(job.src).suffix.lower() if job.src else ""
    if job.src is None:
        data, ext = generated_file(job, rng)
    elif job.source == GENERATED_LOGOS:
        data, ext = generated_logo_file(job, rng)
    elif job.source in MAP_COUNTS:
        data, ext = rendered_map_file(job, rng)
    elif job.cls == LOGO or job.source == "flag-icons":
        data, ext = logo_file(job, rng)
    elif job.source == "svg-maps":
        data, ext = map_file(job, rng)
    elif job.source == "desktop-wallpapers":
        data, ext = wallpaper_file(job, rng)
    elif suffix == ".svg":  # drawings (tuxpaint's cartoons): rendered and placed like logos
        data, ext = logo_file(job, rng)
    elif job.source == "tuxpaint-stamps" and suffix == ".png":
        data, ext = cutout_file(job, rng)
    else:
        data, ext = photo_file(job, rng)
    rel = Path(job.cls) / job.source / f"{output_stem(job)}.{ext}"
    part = out / rel.parent / f".{rel.name}.part"  # hidden until complete: a killed run resumes
    part.write_bytes(data)
    part.replace(out / rel)
    return str(rel)


def output_stem(job: Job) -> str:
    """The file name without its extension (which depends on the random format)."""
    stem = Path(job.src).stem if job.src else f"{job.variant:05d}"
    return f"{job.group}__{stem}-{job.variant}"


def capped(todo: list[Job], max_per_source: int | None, seed: int) -> list[Job]:
    """At most ``max_per_source`` files per source: a fixed pseudo-random choice of items,
    variants of one item kept together, so a capped set is a subset of the full one."""
    if not max_per_source:
        return todo

    def rank(j: Job) -> tuple[str, int]:
        item = f"{seed}:{j.source}:{j.src or j.group}"
        return hashlib.sha256(item.encode()).hexdigest(), j.variant

    by_source: dict[tuple[str, str], list[Job]] = {}
    for j in todo:
        by_source.setdefault((j.cls, j.source), []).append(j)
    return [j for js in by_source.values() for j in sorted(js, key=rank)[:max_per_source]]


def _make_safe(args: tuple[Job, Path, int]) -> str | None:
    try:
        return make(*args)
    except Exception as exc:  # a broken source file must not stop the whole build
        print(f"skipped {args[0].src or args[0].source}: {exc}", flush=True)
        return None


def _chosen(name: str, every: int) -> bool:
    """A fixed one-in-``every`` choice by name (independent of order and seed)."""
    return int(hashlib.sha256(name.encode()).hexdigest(), 16) % every == 0


def jobs(source_dir: Path) -> list[Job]:
    """Every file to make, from the source manifest plus the synthetic generators."""
    brands = json.loads((source_dir / "meta" / "simple-icons.json").read_text())
    colours = {i["slug"]: i["hex"] for i in brands}
    titles = {i["slug"]: i["title"] for i in brands}
    out: list[Job] = []
    with open(source_dir / "meta" / "manifest.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            cls, source, path = row["class"], row["source"], source_dir / row["path"]
            n = (LOGO_VARIANTS if cls == LOGO else OTHER_VARIANTS).get(source, 1)
            group = group_key(source, path.stem)
            colour = colours.get(path.stem) if source == "simple-icons" else None
            out += [Job(cls, source, group, v, str(path), colour) for v in range(n)]
            if source == "simple-icons" and _chosen(path.stem, GENERATED_LOGO_EVERY):
                out.append(
                    Job(LOGO, GENERATED_LOGOS, group, 0, str(path), colour, titles.get(path.stem))
                )
    for source, n in SYNTH_COUNTS.items():
        out += [Job(OTHER, source, f"{source}{i:05d}", i) for i in range(n)]
    for source, (geo_file, n) in MAP_COUNTS.items():
        src = str(source_dir / "meta" / "geo" / geo_file)
        out += [Job(OTHER, source, f"{source}{i:05d}", i, src) for i in range(n)]
    return out


def prepare(
    source_dir: Path,
    out: Path,
    seed: int = 1,
    workers: int = 2,
    max_per_source: int | None = None,
    fresh: bool = False,
) -> dict:
    """Build the data set under ``out`` and write ``out/sources.json`` describing it.

    Files already in ``out`` (from an interrupted or capped run with the same seed) are kept,
    not made again; ``fresh`` starts from an empty folder.
    """
    if fresh and out.exists():
        shutil.rmtree(out)
    todo = capped(jobs(source_dir), max_per_source, seed)
    existing: dict[str, str] = {}
    for d in {(j.cls, j.source) for j in todo}:
        folder = out / d[0] / d[1]
        folder.mkdir(parents=True, exist_ok=True)
        for f in folder.iterdir():
            if not f.name.startswith("."):
                existing[str(Path(d[0]) / d[1] / f.stem)] = str(f.relative_to(out))
    done = []
    missing = []
    for j in todo:
        have = existing.get(str(Path(j.cls) / j.source / output_stem(j)))
        (done if have else missing).append(have or j)
    with ProcessPoolExecutor(workers) as pool:
        made = pool.map(_make_safe, [(j, out, seed) for j in missing], chunksize=8)
        done += [p for p in progress(made, len(missing), "prepare") if p]
    counts: dict[str, int] = {}
    for p in done:
        key = "/".join(Path(p).parts[:2])
        counts[key] = counts.get(key, 0) + 1
    info = {
        "source_dir": repo_relative(source_dir),
        "seed": seed,
        "max_per_source": max_per_source,
        "counts": dict(sorted(counts.items())),
        "manifest_sha1": hashlib.sha1(
            (source_dir / "meta" / "manifest.csv").read_bytes()
        ).hexdigest(),
    }
    (out / "sources.json").write_text(json.dumps(info, indent=2))
    return info
