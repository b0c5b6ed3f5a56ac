"""Coloured maps rendered from the vector sources in ``meta/geo``, as non-logo training images.

Commons holds many political, administrative, locator and thematic maps: flat colour regions
with crisp borders, which a model trained only on photos and outline maps takes for logos. These
renderers draw such maps in many styles (palettes, projections, borders, labels, legends, crops of
regions) from Natural Earth's countries (a shapefile, read with pyshp) and from pygal's world SVG.
Every map is a pure function of its ``random.Random``, so the data set is reproducible.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import shapefile
from matplotlib.collections import PolyCollection
from matplotlib.patches import Patch, PathPatch
from matplotlib.path import Path as MplPath

from training.synthetic.graphics import save_figure

SHAPEFILE = "naturalearth_lowres.shp"
PYGAL_SVG = "pygal_worldmap.svg"
CATEGORICAL = ["tab10", "tab20", "Set1", "Set2", "Set3", "Pastel1", "Pastel2", "Paired", "Accent"]
SEQUENTIAL = ["viridis", "plasma", "YlOrRd", "YlGn", "Blues", "Greens", "Reds", "OrRd", "PuBu"]
DIVERGING = ["RdYlGn", "RdBu", "Spectral", "PiYG", "BrBG", "coolwarm"]
SEAS = ["#ffffff", "#cfe8ff", "#a6cee3", "#b3d9ff", "#e6f2ff", "#dfeff7", "#f0f0f0", "none"]
BORDERS = ["#ffffff", "#000000", "#333333", "#666666", "#999999", "#ffffcc"]
PROJECTIONS = ("plate-carree", "mercator", "miller", "sinusoidal", "robinson-like", "orthographic")
STYLES = ("political", "choropleth", "locator", "administrative", "continents")


@dataclass(frozen=True)
class Country:
    name: str
    continent: str
    iso: str
    population: float
    gdp: float
    rings: tuple[np.ndarray, ...]  # (n, 2) lon/lat per polygon ring


@functools.cache
def countries(geo_dir: Path) -> tuple[Country, ...]:
    """Natural Earth 1:110m countries (read once per process)."""
    reader = shapefile.Reader(str(geo_dir / SHAPEFILE))
    names = [f.name for f in reader.fields[1:]]
    out = []
    for sr in reader.iterShapeRecords():
        rec = dict(zip(names, sr.record, strict=True))
        points = np.asarray(sr.shape.points, float)
        bounds = [*sr.shape.parts, len(points)]
        rings = tuple(points[a:b] for a, b in itertools.pairwise(bounds) if b > a)
        out.append(
            Country(
                rec["name"],
                rec["continent"],
                rec["iso_a3"],
                float(rec["pop_est"] or 0),
                float(rec["gdp_md_est"] or 0),
                rings,
            )
        )
    return tuple(out)


def project(lonlat: np.ndarray, projection: str, centre: tuple[float, float]) -> np.ndarray:
    """lon/lat degrees -> plane coordinates; NaN where a point is not visible (orthographic)."""
    lon = np.radians(lonlat[:, 0] - centre[0] if projection == "orthographic" else lonlat[:, 0])
    lat = np.radians(np.clip(lonlat[:, 1], -85, 85))
    if projection == "mercator":
        return np.c_[lon, np.log(np.tan(np.pi / 4 + lat / 2))]
    if projection == "miller":
        return np.c_[lon, 1.25 * np.log(np.tan(np.pi / 4 + 0.4 * lat))]
    if projection == "sinusoidal":
        return np.c_[lon * np.cos(lat), lat]
    if projection == "robinson-like":  # a smooth pseudo-cylindrical compromise
        return np.c_[
            lon * (0.55 + 0.45 * np.cos(lat)), 1.1 * np.abs(np.sin(lat)) ** 0.9 * np.sign(lat)
        ]
    if projection == "orthographic":
        lat0 = math.radians(centre[1])
        cos_c = math.sin(lat0) * np.sin(lat) + math.cos(lat0) * np.cos(lat) * np.cos(lon)
        xy = np.c_[
            np.cos(lat) * np.sin(lon),
            math.cos(lat0) * np.sin(lat) - math.sin(lat0) * np.cos(lat) * np.cos(lon),
        ]
        xy[cos_c < 0] = np.nan
        return xy
    return np.c_[lon, lat]


def _values(rng: random.Random, items: tuple[Country, ...]) -> tuple[np.ndarray, str]:
    """A thematic variable per country, and its legend title."""
    kind = rng.choice(["population", "gdp", "gdp per capita", "index", "growth"])
    if kind == "population":
        return np.log10([max(c.population, 1) for c in items]), "Population (log10)"
    if kind == "gdp":
        return np.log10([max(c.gdp, 1) for c in items]), "GDP (log10, million USD)"
    if kind == "gdp per capita":
        return np.array(
            [math.log10(max(c.gdp, 1) * 1e6 / max(c.population, 1)) for c in items]
        ), "GDP per capita (log10 USD)"
    nprng = np.random.default_rng(rng.getrandbits(32))
    values = (
        nprng.normal(size=len(items)).cumsum() if kind == "growth" else nprng.random(len(items))
    )
    return values, rng.choice(["Index", "Change (%)", "Share", "Rate per 1000", "Score"])


def _palette(rng: random.Random, n: int) -> list:
    cmap = plt.get_cmap(rng.choice(CATEGORICAL))
    colours = [cmap(i % cmap.N) for i in range(max(n, 1))]
    rng.shuffle(colours)
    return colours


def _region(rng: random.Random, items: tuple[Country, ...]) -> tuple[Country, ...] | None:
    """All countries (world map) or one continent / one country and its surroundings."""
    choice = rng.random()
    if choice < 0.35:
        return None
    if choice < 0.75:
        continent = rng.choice(sorted({c.continent for c in items} - {"Seven seas (open ocean)"}))
        return tuple(c for c in items if c.continent == continent)
    return (rng.choice(items),)


def world_map(rng: random.Random, geo_dir: Path) -> tuple[bytes, str]:
    """One map from the shapefile: PNG (opaque or transparent), JPEG or SVG."""
    items = countries(geo_dir)
    style = rng.choice(STYLES)
    projection = rng.choice(PROJECTIONS)
    focus = _region(rng, items)
    if focus is not None:
        pts = np.concatenate([r for c in focus for r in c.rings])
        lo, hi = pts.min(0), pts.max(0)
        centre = (float((lo[0] + hi[0]) / 2), float((lo[1] + hi[1]) / 2))
    else:
        centre = (rng.uniform(-180, 180), rng.uniform(-40, 60))
    if projection == "orthographic" and focus is None:
        focus = items  # a globe: whole hemisphere
    values, legend_title = _values(rng, items)
    sea = rng.choice(SEAS)
    border = rng.choice(BORDERS)
    land = rng.choice(["#e0e0e0", "#f5f5dc", "#d9d9d9", "#fdfbe3", "#c8e6c9", "#ffffff"])
    highlight = rng.choice(["#c12838", "#e31a1c", "#ff7f00", "#1f78b4", "#33a02c", "#b15928"])
    colours: list = []
    cmap = plt.get_cmap(rng.choice(SEQUENTIAL + DIVERGING))
    if style in ("political", "administrative"):
        colours = _palette(rng, len(items))
    elif style == "continents":
        names = sorted({c.continent for c in items})
        pal = _palette(rng, len(names))
        colours = [pal[names.index(c.continent)] for c in items]
    elif style == "choropleth":
        bins = rng.choice([0, 4, 5, 6, 7])
        lo, hi = float(np.min(values)), float(np.max(values))
        norm = (values - lo) / max(hi - lo, 1e-9)
        if bins:
            norm = np.floor(norm * bins).clip(0, bins - 1) / (bins - 1)
        colours = [cmap(v) for v in norm]
    locator = rng.choice(focus) if focus and style == "locator" else rng.choice(items)

    fig = plt.figure(figsize=(rng.uniform(4, 9), rng.uniform(3, 7)), dpi=rng.choice([50, 72, 100]))
    ax = fig.add_axes((0, 0, 1, 1) if rng.random() < 0.6 else (0.04, 0.06, 0.92, 0.84))
    ax.set_axis_off()
    if sea != "none":
        fig.patch.set_facecolor(sea if rng.random() < 0.7 else "#ffffff")
        ax.set_facecolor(sea)
    polys, faces = [], []
    for i, c in enumerate(items):
        if style == "locator":
            face = highlight if c is locator else land
        elif colours:
            face = colours[i]
        else:
            face = land
        for ring in c.rings:
            xy = project(ring, projection, centre)
            if np.isnan(xy).any():
                continue
            polys.append(xy)
            faces.append(face)
    linewidth = rng.choice([0.2, 0.4, 0.7, 1.0, 1.5])
    ax.add_collection(
        PolyCollection(polys, facecolors=faces, edgecolors=border, linewidths=linewidth)
    )
    if style == "administrative":
        _subdivide(ax, rng, locator, projection, centre, border)
    shown = focus or items
    pts = [project(r, projection, centre) for c in shown for r in c.rings]
    pts = np.concatenate([p[~np.isnan(p).any(1)] for p in pts if len(p)] + [np.zeros((0, 2))])
    if not len(pts):  # nothing of the region visible: show all that is
        pts = np.concatenate(polys)
    lo, hi = pts.min(0), pts.max(0)
    margin = (hi - lo) * rng.uniform(0.02, 0.25)
    ax.set_xlim(lo[0] - margin[0], hi[0] + margin[0])
    ax.set_ylim(lo[1] - margin[1], hi[1] + margin[1])
    ax.set_aspect("equal" if rng.random() < 0.8 else "auto")
    if rng.random() < 0.35:
        _graticule(ax, projection, centre, rng)
    if rng.random() < 0.5:
        _labels(ax, rng, shown, projection, centre)
    if style == "choropleth" and rng.random() < 0.8:
        handles = [Patch(facecolor=cmap(k / 3), label=f"{k * 25}-{k * 25 + 25}") for k in range(4)]
        ax.legend(
            handles=handles,
            title=legend_title,
            loc=rng.choice(["lower left", "best"]),
            fontsize=rng.choice([6, 7, 8]),
            framealpha=rng.choice([0.6, 1.0]),
        )
    if rng.random() < 0.4:
        fig.suptitle(
            rng.choice([legend_title, locator.name, f"{locator.continent}", "Map"]),
            fontsize=rng.choice([9, 11, 14]),
        )
    return save_figure(
        fig, rng, {"png": 4, "png-transparent": 1, "jpg": 3, "svg": 2}, min_quality=50
    )


def _subdivide(ax, rng: random.Random, country: Country, projection: str, centre, border) -> None:
    """Administrative look: a country split into coloured cells, clipped to its outline."""
    from scipy.spatial import Voronoi

    ring = max(country.rings, key=len)
    xy = project(ring, projection, centre)
    if np.isnan(xy).any() or len(xy) < 4:
        return
    clip = PathPatch(MplPath(xy), transform=ax.transData, facecolor="none", edgecolor="none")
    ax.add_patch(clip)
    lo, hi = xy.min(0), xy.max(0)
    nprng = np.random.default_rng(rng.getrandbits(32))
    seeds = lo + nprng.random((rng.randint(5, 30), 2)) * (hi - lo)
    far = np.array([[-1e3, -1e3], [1e3, -1e3], [-1e3, 1e3], [1e3, 1e3]])
    vor = Voronoi(np.r_[seeds, far])
    colours = _palette(rng, len(seeds))
    cells = [
        vor.vertices[vor.regions[vor.point_region[i]]]
        for i in range(len(seeds))
        if -1 not in vor.regions[vor.point_region[i]] and vor.regions[vor.point_region[i]]
    ]
    coll = PolyCollection(
        cells, facecolors=colours[: len(cells)], edgecolors=border, linewidths=0.5
    )
    ax.add_collection(coll)
    coll.set_clip_path(clip)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])


def _graticule(ax, projection: str, centre, rng: random.Random) -> None:
    colour = rng.choice(["#999999", "#cccccc", "#6699cc"])
    for lon in range(-180, 181, 30):
        line = project(np.c_[np.full(50, lon), np.linspace(-80, 80, 50)], projection, centre)
        ax.plot(line[:, 0], line[:, 1], color=colour, lw=0.4, zorder=0)
    for lat in range(-60, 61, 30):
        line = project(np.c_[np.linspace(-180, 180, 90), np.full(90, lat)], projection, centre)
        ax.plot(line[:, 0], line[:, 1], color=colour, lw=0.4, zorder=0)


def _labels(ax, rng: random.Random, items, projection: str, centre) -> None:
    """Country names at their largest ring's centre (the biggest countries, or all of a region)."""
    ranked = sorted(items, key=lambda c: -max(len(r) for r in c.rings))[: rng.randint(5, 25)]
    size = rng.choice([5, 6, 7, 8])
    colour = rng.choice(["#000000", "#333333", "#444466"])
    for c in ranked:
        xy = project(max(c.rings, key=len), projection, centre)
        if np.isnan(xy).any():
            continue
        x, y = xy.mean(0)
        name = c.iso if rng.random() < 0.3 else c.name
        ax.text(x, y, name, fontsize=size, color=colour, ha="center", va="center", clip_on=True)


def recoloured_svg(rng: random.Random, geo_dir: Path) -> str:
    """pygal's world SVG with a palette, sea colour and borders set by a style sheet."""
    svg = (geo_dir / PYGAL_SVG).read_text(encoding="utf-8")
    codes = sorted(set(re.findall(r'class="([a-z]{2}) country', svg)))
    style = rng.choice(["political", "choropleth", "locator"])
    if style == "political":
        pal = _palette(rng, len(codes))
    elif style == "choropleth":
        cmap = plt.get_cmap(rng.choice(SEQUENTIAL + DIVERGING))
        pal = [cmap(rng.random()) for _ in codes]
    else:
        pal = [(0.85, 0.85, 0.85, 1.0)] * len(codes)
        pal[rng.randrange(len(codes))] = (0.8, 0.1, 0.15, 1.0)
    border = rng.choice(BORDERS)
    rules = [
        f".{code} path {{ fill: {matplotlib.colors.to_hex(c)}; stroke: {border}; "
        f"stroke-width: {rng.choice([0.3, 0.6, 1, 2])} }}"
        for code, c in zip(codes, pal, strict=True)
    ]
    sea = rng.choice(SEAS)
    background = "" if sea == "none" else f'<rect width="100%" height="100%" fill="{sea}"/>'
    width, height = 2475, 1388  # pygal's viewBox
    if rng.random() < 0.5:  # a region: crop the view box
        w = rng.uniform(0.2, 0.7) * width
        h = w * rng.uniform(0.5, 0.9)
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - min(h, height))
        svg = svg.replace(
            f'viewBox="0 0 {width} {height}"', f'viewBox="{x:.0f} {y:.0f} {w:.0f} {h:.0f}"'
        )
    return re.sub(
        r"<svg\b[^>]*>",
        lambda m: f"{m.group(0)}<style>{' '.join(rules)}</style>{background}",
        svg,
        count=1,
    )
