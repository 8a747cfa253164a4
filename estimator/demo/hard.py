"""The ground of the SYNTHETIC hard world (``estimator demo --preset hard``).

The easy world (:mod:`estimator.demo.landscape`) is nearly error-free: large plots, one
harvest rhythm, confusers that keep still. This module makes a ground where coca is hard to
see, as in Loreto or the VRAE (docs/hard_world.md has every effect and parameter):

- confusers with their own dynamics: fallow and secondary vegetation of every age, forest
  slashed and burned during the period (then maize or fallow), maize, cassava, plantain,
  cacao under shade trees, oil palm, pastures burned in the dry season;
- coca plots of 0.1-2 ha (log-normal sizes), some under partial shade, some planted, pruned
  (zoca) or abandoned during the period, harvest cycles of 55-130 days;
- mixed pixels: objects are rasterized on a 2.5 m grid; each 10 m pixel is the area-weighted
  mixture of the (up to three) objects in it, for the reflectance and for the truth alike;
- truth per date: every object has a class timeline, so the class (and the coca fraction)
  of every pixel is known on every acquisition date, on the cut-off date and at any time;
- labels: training plots come only from a western strip of the world while the regions lie
  east of it (geographic shift: more shade, cacao and plantain, shorter harvest cycles and
  brighter soils in the east), and 7 % of them are mislabelled or shifted.

Imaging (clouds, haze, illumination, SCL errors) is in :mod:`estimator.demo.hard_sky`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import shapely
from rasterio.features import rasterize
from scipy import ndimage
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry
from shapely.prepared import prep

from estimator.bands import REFLECTANCE_BANDS
from estimator.demo import landscape as easy
from estimator.demo.landscape import CLASS_CODE, DEMO_CLASSES, Grid, LandObject, Region

__all__ = [
    "FINE",
    "HARD_DEFAULTS",
    "HARD_VERSION",
    "KINDS",
    "LABEL_ERROR_SHARE",
    "TRAIN_STRIP",
    "HardLandscape",
    "LabelError",
    "build_hard_landscape",
    "class_fractions",
    "hard_ground_reflectance",
    "make_hard_labels",
    "make_hard_regions",
    "object_classes",
    "terrain_slopes",
    "truth_class",
]

#: Version of the hard world's generator; part of the world's generator version string.
HARD_VERSION = "1"

#: WorldSpec fields of the hard preset that differ from the easy defaults: 18 months
#: (the cut-off date is ``end``), more dates (a cloudier sky leaves fewer clear ones), and
#: many more, smaller coca plots (reference world of 1024 x 1024 px, scaled by area).
HARD_DEFAULTS: dict[str, Any] = {
    "size_px": 1024,
    "n_dates": 30,
    "start": "2021-03-01",
    "end": "2022-08-31",
    "n_coca_plots": 700,
}

#: Sub-pixels per 10 m pixel side: objects are rasterized at 2.5 m.
FINE = 4
#: Up to this many objects are kept per 10 m pixel; the rest of its area goes to the largest.
_MIX_K = 3

#: Column fractions (from the west edge) of the strip that training plots come from.
TRAIN_STRIP = (0.02, 0.30)
#: Column fractions of the regions that are estimated (east of the training strip).
_REGION_COLS = (0.34, 0.97)
#: Share of training plots with a wrong class or a shifted outline.
LABEL_ERROR_SHARE = 0.07

# Regions: (id, name, top, bottom as fractions of the height, relative coca density).
_HARD_REGIONS: tuple[tuple[str, str, float, float, float], ...] = (
    ("north", "Synthetic hard north (DEMO)", 0.03, 0.265, 1.0),
    ("centre-north", "Synthetic hard centre-north (DEMO)", 0.265, 0.50, 0.85),
    ("centre-south", "Synthetic hard centre-south (DEMO)", 0.50, 0.735, 0.7),
    ("south", "Synthetic hard south (DEMO)", 0.735, 0.97, 0.45),
)
_TRAIN_DENSITY = 0.8  # coca density of the training strip, relative

#: Object kinds; each has its own dynamics and maps onto a DEMO_CLASSES class per date.
KINDS: tuple[str, ...] = (
    "forest", "slash_burn", "fallow", "maize", "cassava", "plantain", "cacao", "oil_palm",
    "pasture", "pasture_burned", "bare_soil", "water", "settlement",
    "coca", "coca_planted", "coca_pruned", "coca_abandoned",
)  # fmt: skip
_K = {name: i for i, name in enumerate(KINDS)}

# Endmember spectra (REFLECTANCE_BANDS order), the easy world's plus burn scars, palm and cacao.
_SPECTRA: dict[str, tuple[float, ...]] = {
    **easy._SPECTRA,
    "char": (0.030, 0.035, 0.040, 0.075, 0.050, 0.062, 0.068, 0.078, 0.105, 0.090),
    "palm": (0.022, 0.050, 0.026, 0.330, 0.078, 0.220, 0.300, 0.340, 0.160, 0.070),
    "cacao": (0.025, 0.064, 0.030, 0.360, 0.094, 0.250, 0.322, 0.370, 0.190, 0.090),
}
# Per kind: canopy before an event, canopy after it, background.
_KIND_SPECTRA: dict[str, tuple[str, str, str]] = {
    "forest": ("forest", "forest", "soil"),
    "slash_burn": ("forest", "shrub", "soil"),  # after: maize, or regrowth for fallow (set below)
    "fallow": ("regrowth", "regrowth", "soil"),
    "maize": ("shrub", "shrub", "residue"),
    "cassava": ("shrub", "shrub", "soil"),
    "plantain": ("shrub", "shrub", "residue"),
    "cacao": ("cacao", "cacao", "residue"),
    "oil_palm": ("palm", "palm", "soil"),
    "pasture": ("grass", "grass", "soil"),
    "pasture_burned": ("grass", "grass", "soil"),
    "bare_soil": ("shrub", "shrub", "soil"),
    "water": ("shrub", "shrub", "water"),
    "settlement": ("shrub", "shrub", "roof"),
    "coca": ("coca_leaf", "coca_leaf", "soil"),
    "coca_planted": ("forest", "coca_leaf", "soil"),
    "coca_pruned": ("coca_leaf", "coca_leaf", "soil"),
    "coca_abandoned": ("coca_leaf", "regrowth", "soil"),
}
_PIXEL_COVER_STD = {**easy._PIXEL_COVER_STD, "coca": 0.06, "regrowth": 0.05, "other_crop": 0.06}
_PIXEL_BRIGHT_STD = {**easy._PIXEL_BRIGHT_STD, "coca": 0.06, "other_crop": 0.06, "regrowth": 0.06}
_EPOCH = dt.date(2000, 1, 1)


@dataclass(frozen=True)
class HardLandscape:
    """The hard world's ground: objects with class timelines, and the 10 m mixture of them."""

    grid: Grid
    """The 10 m grid."""
    objects: tuple[LandObject, ...]
    """All objects; ``cls`` is the class on the cut-off date."""
    kinds: tuple[str, ...]
    """KINDS name of every object."""
    params: dict[str, np.ndarray]
    """Per-object parameters of the dynamics (arrays of len(objects)); days since 2000-01-01."""
    mix_ids: np.ndarray
    """(K, size, size) int32 object ids in each 10 m pixel, largest share first."""
    mix_weights: np.ndarray
    """(K, size, size) float32 area shares of those objects; they sum to 1 per pixel."""
    canopy: np.ndarray
    """(2, n_objects, n_bands) canopy spectrum before and after the object's event."""
    background: np.ndarray
    """(n_objects, n_bands) soil (or water, roof) spectrum."""
    pixel_cover: np.ndarray
    """(size, size) float32 static per-pixel offset of fractional cover."""
    pixel_bright: np.ndarray
    """(size, size) float32 static per-pixel brightness factor."""
    terrain: np.ndarray
    """(2, size, size) float32 slopes dz/dx (east) and dz/dy (north) of the relief."""
    cutoff: dt.date
    """The period's last day: the date of the headline truth."""


@dataclass(frozen=True)
class LabelError:
    """A training plot whose label is wrong on purpose (recorded in label_errors.json)."""

    index: int
    """Index of the plot in the label list."""
    kind: str
    """``mislabelled`` (class swapped for a confusable one) or ``shifted`` (outline moved)."""
    true_class: str
    """Class of the ground under the original outline."""
    shift_m: float
    """Distance the outline was moved, metres (0 for a mislabelled plot)."""


# --------------------------------------------------------------------------- objects


def _days(when: dt.date) -> float:
    return float((when - _EPOCH).days)


def _east(grid: Grid, geom: BaseGeometry) -> float:
    """Column fraction (0 west .. 1 east) of a geometry's centroid."""
    return float((geom.centroid.x - grid.origin_x) / grid.width_m)


def _coca_density(grid: Grid, x: float, y: float) -> float:
    col, row = (x - grid.origin_x) / grid.width_m, (grid.origin_y - y) / grid.width_m
    if TRAIN_STRIP[0] <= col < TRAIN_STRIP[1]:
        return _TRAIN_DENSITY
    if _REGION_COLS[0] <= col < _REGION_COLS[1]:
        for *_, top, bottom, density in _HARD_REGIONS:
            if top <= row < bottom:
                return density
    return 0.1


def _coca_plots(
    rng: np.random.Generator, grid: Grid, parcels: Sequence[tuple[str, Polygon]], obstacles: BaseGeometry, n: int
) -> list[Polygon]:
    """Coca plots of 0.1-2 ha, log-normal (median 0.45 ha): in clearings, on their edges, in forest."""
    inner = box(*grid.bounds).buffer(-30.0)
    blocked = prep(obstacles.buffer(15.0))
    plots: list[Polygon] = []
    tree_geoms: list[Polygon] = []
    for _ in range(100 * n):
        if len(plots) == n or not parcels:
            break
        mode = rng.uniform()
        if mode < 0.75:
            parcel = parcels[int(rng.integers(len(parcels)))][1]
            if mode < 0.35:
                p = easy._random_point_in(rng, parcel, 20)
                if p is None:
                    continue
                cx, cy = p.x, p.y
            else:
                ring = parcel.exterior
                p = ring.interpolate(rng.uniform(0, ring.length))
                cx, cy = p.x + rng.normal(0, 25.0), p.y + rng.normal(0, 25.0)
        else:
            cx, cy = rng.uniform(grid.bounds[0], grid.bounds[2]), rng.uniform(grid.bounds[1], grid.bounds[3])
        if rng.uniform() > _coca_density(grid, cx, cy):
            continue
        area = 1e4 * float(np.clip(math.exp(rng.normal(math.log(0.45), 0.75)), 0.1, 2.0))
        if rng.uniform() < 0.6:
            plot = easy._rect(cx, cy, area, rng.uniform(1.0, 3.0), rng.uniform(0, 180))
        else:
            plot = easy._blob(rng, cx, cy, area, 0.2)
        if not inner.contains(plot) or blocked.intersects(plot):
            continue
        if tree_geoms:
            near = shapely.STRtree(tree_geoms).query(plot, predicate="dwithin", distance=10.0)
            if len(near):
                continue
        plots.append(plot)
        tree_geoms.append(plot)
    return plots


def _parcel_kind(rng: np.random.Generator, east: float) -> str:
    """Kind of a clearing parcel; perennial crops (cacao, plantain) are commoner in the east."""
    kinds = (
        "pasture",
        "pasture_burned",
        "fallow",
        "slash_burn",
        "maize",
        "cassava",
        "plantain",
        "cacao",
        "oil_palm",
        "bare_soil",
    )
    w = np.array([0.20, 0.10, 0.22, 0.07, 0.09, 0.07, 0.05 + 0.06 * east, 0.03 + 0.08 * east, 0.04, 0.05])
    return str(rng.choice(kinds, p=w / w.sum()))


def _objects(rng: np.random.Generator, grid: Grid, n_coca: int) -> tuple[list[LandObject], list[str]]:
    scale = (grid.size_px / easy._REFERENCE_SIZE_PX) ** 2
    world = box(*grid.bounds)
    river, centre = easy._river(rng, grid)
    towns = easy._settlements(rng, grid, river, centre, max(2, round(5 * math.sqrt(scale))))
    roads = easy._roads(rng, grid, towns, centre)
    parcels = easy._clearings(rng, grid, centre, roads, max(10, round(260 * scale)))
    # A village and an oxbow lake in the training strip, so that its labels hold every class
    # (the river and the towns beside it may all lie east of it).
    x0, _ = grid.xy(TRAIN_STRIP[0] + 0.05, 0.0)
    x1, _ = grid.xy(TRAIN_STRIP[1] - 0.05, 0.0)
    village = easy._blob(rng, rng.uniform(x0, x1), grid.xy(0, rng.uniform(0.1, 0.4))[1], rng.uniform(6e4, 1.2e5), 0.2)
    lake = easy._blob(rng, rng.uniform(x0, x1), grid.xy(0, rng.uniform(0.6, 0.9))[1], rng.uniform(8e4, 1.5e5), 0.3)
    obstacles = shapely.union_all([river, lake, village, *towns, *roads])
    plots = _coca_plots(rng, grid, parcels, obstacles, n_coca)
    # A few forest patches are cut during the period too, away from any clearing.
    for _ in range(max(2, round(25 * scale))):
        x, y = rng.uniform(grid.bounds[0], grid.bounds[2]), rng.uniform(grid.bounds[1], grid.bounds[3])
        parcels.append(("slash", easy._blob(rng, x, y, math.exp(rng.uniform(math.log(5e3), math.log(4e4))), 0.3)))
    coca_kinds = ("coca", "coca_planted", "coca_pruned", "coca_abandoned")
    ordered: list[tuple[str, BaseGeometry]] = (
        [("water", river), ("water", lake)]
        + [("settlement", t) for t in [village, *towns]]
        + [("bare_soil", r) for r in roads]
        + [(str(rng.choice(coca_kinds, p=[0.62, 0.14, 0.12, 0.12])), p) for p in plots]
        + [("slash_burn" if c == "slash" else _parcel_kind(rng, _east(grid, g)), g) for c, g in parcels]
    )
    pieces = easy._disjoint(ordered, world)
    forest = world.difference(shapely.union_all([g for _, g in pieces]))
    pieces.append(("forest", forest))
    # ``cls`` is filled in once the timelines are known (class on the cut-off date).
    return [LandObject(i, "forest", g) for i, (_, g) in enumerate(pieces)], [k for k, _ in pieces]


def _params(
    rng: np.random.Generator,
    grid: Grid,
    objects: Sequence[LandObject],
    kinds: Sequence[str],
    start: dt.date,
    end: dt.date,
) -> dict[str, np.ndarray]:
    """Per-object dynamics; every array is drawn for every object so draws do not depend on kinds."""
    n = len(objects)
    kind = np.array([_K[k] for k in kinds], dtype=np.int16)
    east = np.array([_east(grid, o.geometry) for o in objects])
    d0, d1 = _days(start), _days(end)
    is_kind = {k: kind == _K[k] for k in KINDS}
    shaded = rng.uniform(size=n) < 0.2 + 0.3 * east  # partial shade is commoner in the east
    shade = np.where(shaded, rng.uniform(0.2, 0.5, n), 0.0)
    shade = np.where(np.isin(kind, [_K[k] for k in KINDS if k.startswith("coca")]), shade, 0.0)
    shade = np.where(is_kind["cacao"], rng.uniform(0.3, 0.45, n), shade)
    # Harvest cycles: 80-130 days in the west, down to 55-90 days in the east.
    period = rng.uniform(80.0, 130.0, n) - east * rng.uniform(15.0, 40.0, n)
    steady = {  # baseline cover of the kinds whose cover is not a cycle
        "forest": (0.94, 0.99), "slash_burn": (0.94, 0.99), "coca_planted": (0.94, 0.99), "pasture": (0.6, 0.76),
        "pasture_burned": (0.6, 0.76), "bare_soil": (0.0, 0.06), "settlement": (0.02, 0.07), "plantain": (0.62, 0.8),
        "oil_palm": (0.75, 0.9),
    }  # fmt: skip
    cover = np.select([is_kind[k] for k in steady], [rng.uniform(lo, hi, n) for lo, hi in steady.values()], 0.0)
    return {
        "kind": kind,
        "event": rng.uniform(d0 + 60.0, d1 - 45.0, n),  # planting, pruning, abandonment, slash-and-burn day
        "after_fallow": (rng.uniform(size=n) < 0.45).astype(np.int8),  # slash_burn: fallow (else maize) after
        "period": period,
        "phase": rng.uniform(0.0, 365.0, n),
        "cover_min": rng.uniform(0.18, 0.45, n),
        "cover_max": rng.uniform(0.62, 0.86, n),
        "cover": cover,
        "age": rng.uniform(0.2, 6.0, n),  # fallow age in years at the start of the period
        "season_amp": rng.uniform(0.04, 0.1, n),
        "burn_doy": rng.uniform(200.0, 262.0, n),
        "shade": shade,
        "east": east,
        "brightness": rng.normal(1.0, 0.05, n),
        "start": np.full(n, d0),
    }


# --------------------------------------------------------------------------- dynamics


def _logistic(x: np.ndarray, mid: float, width: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(x - mid) / width))


def _state(p: dict[str, np.ndarray], day: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cover, canopy switch (0 before the event's canopy, 1 after), char share and class code
    of every object on ``day`` (days since 2000-01-01), without the date's random jitter."""
    k = p["kind"]
    doy = (day + _EPOCH.timetuple().tm_yday - 1) % 365.25
    since = day - p["event"]
    after = since >= 0
    cover = p["cover"].copy()
    switch = np.zeros_like(cover)
    char = np.zeros_like(cover)
    code = np.full(len(k), CLASS_CODE["forest"], dtype=np.uint8)

    def where(kind: str, mask: np.ndarray | None = None) -> np.ndarray:
        m = k == _K[kind]
        return m if mask is None else m & mask

    # Coca: leaves stripped at each harvest, then regrowth saturating over the cycle.
    ph = np.mod(day - p["phase"], p["period"]) / p["period"]
    cycle = p["cover_min"] + (p["cover_max"] - p["cover_min"]) * (1 - np.exp(-3.0 * ph)) / (1 - math.exp(-3.0))
    for kind in ("coca", "coca_pruned", "coca_abandoned", "coca_planted"):
        m = where(kind)
        cover[m], code[m] = cycle[m], CLASS_CODE["coca"]
    # Zoca: cut to stumps on the event day, back over about four months.
    m = where("coca_pruned", after & (since < 150))
    cover[m] = np.minimum(cycle[m], 0.08 + (p["cover_max"][m] - 0.08) * (1 - np.exp(-since[m] / 45.0)))
    # Abandoned: harvests stop 90 days before the event (the day it counts as regrowth);
    # weeds and shrubs take over.
    weeds = since + 90.0
    m = where("coca_abandoned", weeds >= 0)
    share = 1 - np.exp(-weeds[m] / 120.0)
    cover[m] = p["cover_max"][m] + (0.9 - p["cover_max"][m]) * share
    switch[m] = share
    code[where("coca_abandoned", after)] = CLASS_CODE["regrowth"]
    # Planted: forest slashed 30-60 days before, burned, then coca growing for months.
    for kind, lead in (("coca_planted", 45.0), ("slash_burn", 0.0)):
        burnt = since + lead
        m = where(kind, burnt < 0)
        cover[m], code[m] = p["cover"][m], CLASS_CODE["forest"]
        m = where(kind, (burnt >= 0) & (since < 0))
        cover[m], char[m], code[m] = 0.03, np.exp(-burnt[m] / 30.0), CLASS_CODE["bare_soil"]
    m = where("coca_planted", after)
    young = 0.05 + (p["cover_max"][m] - 0.05) * _logistic(since[m], 90.0, 25.0)
    cover[m] = np.where(since[m] > 150, np.minimum(young, cycle[m]), young)
    switch[m] = 1.0
    # Slash-and-burn: bare and charred for 45 days, then maize or fallow.
    m = where("slash_burn", (since >= 0) & (since < 45))
    cover[m], char[m], code[m] = 0.03, np.exp(-since[m] / 30.0), CLASS_CODE["bare_soil"]
    grown = since - 45.0
    m = where("slash_burn", grown >= 0)
    fallow = p["after_fallow"][m] == 1
    maize = 0.06 + 0.8 * _logistic(np.mod(grown[m], 182.5), 45.0, 9.0) * (np.mod(grown[m], 182.5) < 115)
    cover[m] = np.where(fallow, 0.1 + 0.75 * (1 - np.exp(-grown[m] / 200.0)), maize)
    code[m] = np.where(fallow, CLASS_CODE["regrowth"], CLASS_CODE["other_crop"])
    switch[m] = 1.0
    # Fallow: cover rises with age.
    m = where("fallow")
    age = p["age"][m] + (day - p["start"][m]) / 365.25
    cover[m], code[m] = 0.3 + 0.65 * (1 - np.exp(-age / 1.3)), CLASS_CODE["regrowth"]
    # Crops: maize twice a year, cassava about yearly, plantain, cacao (pruned yearly), oil palm.
    a = np.mod(day - p["phase"], 182.5)
    m = where("maize")
    cover[m] = np.where(a[m] < 110, 0.06 + 0.8 * _logistic(a[m], 45.0, 9.0), np.where(a[m] < 125, 0.2, 0.06))
    a = np.mod(day - p["phase"], 330.0)
    m = where("cassava")
    cover[m] = np.where(a[m] < 300, 0.05 + 0.72 * (1 - np.exp(-a[m] / 70.0)), 0.05)
    m = where("plantain")
    cover[m] = p["cover"][m] + 0.06 * np.sin(2 * np.pi * (day - p["phase"][m]) / 300.0)
    m = where("cacao")
    cover[m] = 0.86 - 0.25 * np.exp(-np.mod(day - p["phase"][m], 365.25) / 25.0)
    m = where("oil_palm")
    cover[m] = p["cover"][m] + 0.04 * np.sin(2 * np.pi * (day - p["phase"][m]) / 365.25)
    for kind in ("maize", "cassava", "plantain", "cacao", "oil_palm"):
        code[where(kind)] = CLASS_CODE["other_crop"]
    # Pasture: greens up around March; burned pastures burn once a dry season and recover.
    m = where("pasture") | where("pasture_burned")
    cover[m] = p["cover"][m] + p["season_amp"][m] * np.cos(2 * np.pi * (doy - 70.0) / 365.0)
    code[m] = CLASS_CODE["pasture"]
    b = np.mod(doy - p["burn_doy"], 365.25)
    m = where("pasture_burned", b < 90)
    cover[m] *= 1 - np.exp(-b[m] / 22.0)
    char[m] = np.exp(-b[m] / 15.0)
    for kind, cls in (("bare_soil", "bare_soil"), ("water", "water"), ("settlement", "settlement")):
        code[where(kind)] = CLASS_CODE[cls]
    return np.clip(cover, 0.0, 1.0), switch, char, code


def object_classes(land: HardLandscape, when: dt.date) -> np.ndarray:
    """Class code (CLASS_CODE) of every object on a date."""
    return _state(land.params, _days(when))[3]


# --------------------------------------------------------------------------- mixing


def _mixture(object_fine: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to _MIX_K (object id, area share) pairs per 10 m pixel from the 2.5 m object raster."""
    sub = object_fine.reshape(size, FINE, size, FINE).transpose(0, 2, 1, 3).reshape(size * size, FINE * FINE)
    s = np.sort(sub, axis=1)
    n, m = s.shape
    run = np.concatenate([np.zeros((n, 1), dtype=np.int64), np.cumsum(s[:, 1:] != s[:, :-1], axis=1)], axis=1)
    flat = (np.arange(n)[:, None] * m + run).ravel()
    counts = np.bincount(flat, minlength=n * m).reshape(n, m)
    ids = np.zeros((n, m), dtype=np.int32)
    ids.ravel()[flat] = s.ravel()
    order = np.argsort(-counts, axis=1, kind="stable")[:, :_MIX_K]
    top_ids = np.take_along_axis(ids, order, axis=1)
    top_w = np.take_along_axis(counts, order, axis=1).astype(np.float32) / m
    top_w[:, 0] += 1.0 - top_w.sum(axis=1)  # a fourth object's sliver goes to the largest
    top_ids[top_w == 0] = top_ids[:, :1].repeat(_MIX_K, axis=1)[top_w == 0]
    shape = (_MIX_K, size, size)
    return top_ids.T.reshape(shape).copy(), top_w.T.reshape(shape).copy()


def class_fractions(land: HardLandscape, codes: np.ndarray) -> np.ndarray:
    """(n_classes, size, size) area share of each DEMO_CLASSES class per 10 m pixel, given
    every object's class code (e.g. :func:`object_classes` on a date)."""
    out = np.zeros((len(DEMO_CLASSES), *land.mix_ids.shape[1:]), dtype=np.float32)
    for ids, w in zip(land.mix_ids, land.mix_weights, strict=True):
        c = codes[ids].astype(np.intp) - 1
        for k in range(len(DEMO_CLASSES)):
            out[k] += np.where(c == k, w, 0.0)
    return out


def truth_class(land: HardLandscape, codes: np.ndarray) -> np.ndarray:
    """Class code per 10 m pixel: the class covering most of it (ties: the largest object's)."""
    frac = class_fractions(land, codes)
    first = codes[land.mix_ids[0]].astype(np.intp) - 1
    frac += 1e-3 * (np.arange(len(DEMO_CLASSES))[:, None, None] == first[None])
    return (np.argmax(frac, axis=0) + 1).astype(np.uint8)


# --------------------------------------------------------------------------- build

_MAX_SLOPE = math.tan(math.radians(12.0))


def terrain_slopes(rng: np.random.Generator, size: int) -> np.ndarray:
    """(2, size, size) float32 slopes dz/dx (east) and dz/dy (north) of a smooth relief."""
    low = -(-size // 8)
    z = ndimage.gaussian_filter(rng.standard_normal((low, low)), 300.0 / 80.0, mode="wrap")
    z = ndimage.zoom(z, size / low, order=3, grid_mode=True, mode="nearest")[:size, :size]
    gy, gx = np.gradient(z)
    scale = _MAX_SLOPE / (np.quantile(np.hypot(gx, gy), 0.99) or 1.0)
    return np.stack([gx * scale, -gy * scale]).astype(np.float32)  # rows run south


def build_hard_landscape(
    grid: Grid, n_coca_plots: int, start: dt.date, end: dt.date, rng: np.random.Generator
) -> HardLandscape:
    """Draw the objects and their dynamics, and mix them into 10 m pixels.

    Parameters
    ----------
    grid
        The world's 10 m grid.
    n_coca_plots
        Number of coca plots to place (fewer if the world has no room for them).
    start, end
        The period; ``end`` is the cut-off date of the headline truth.
    rng
        Source of randomness; the landscape is a pure function of its state.
    """
    objects, kinds = _objects(rng, grid, n_coca_plots)
    size = grid.size_px
    forest_id = objects[-1].object_id  # the remainder of the world, drawn last
    fine = rasterize(
        [(o.geometry, o.object_id) for o in objects[:-1]],
        out_shape=(size * FINE, size * FINE),
        transform=grid.transform * grid.transform.scale(1.0 / FINE),
        fill=forest_id,
        dtype="int32",
    )
    mix_ids, mix_weights = _mixture(fine, size)
    del fine
    params = _params(rng, grid, objects, kinds, start, end)
    cut = _state(params, _days(end))[3]
    objects = [LandObject(o.object_id, DEMO_CLASSES[int(c) - 1], o.geometry) for o, c in zip(objects, cut, strict=True)]
    spectra = {k: np.array(v, dtype=np.float32) for k, v in _SPECTRA.items()}
    n_bands = len(REFLECTANCE_BANDS)
    jitter = rng.normal(1.0, 0.03, (len(objects), n_bands)).astype(np.float32)
    before = np.stack([spectra[_KIND_SPECTRA[k][0]] for k in kinds])
    after = np.stack(
        [
            spectra["regrowth" if k == "slash_burn" and f else _KIND_SPECTRA[k][1]]
            for k, f in zip(kinds, params["after_fallow"], strict=True)
        ]
    )
    canopy = np.stack([before * jitter, after * jitter])
    # Soils get brighter towards the east (another difference the training strip never sees).
    background = np.stack([spectra[_KIND_SPECTRA[k][2]] for k in kinds])
    soil_gain = rng.normal(1.0, 0.06, len(objects)) * (0.92 + 0.2 * params["east"])
    background *= np.where([_KIND_SPECTRA[k][2] == "water" for k in kinds], 1.0, soil_gain)[:, None].astype(np.float32)
    dominant = np.asarray([CLASS_CODE[o.cls] for o in objects], dtype=np.uint8)[mix_ids[0]]
    cover_std = np.array([0.0] + [_PIXEL_COVER_STD[c] for c in DEMO_CLASSES], dtype=np.float32)
    bright_std = np.array([0.0] + [_PIXEL_BRIGHT_STD[c] for c in DEMO_CLASSES], dtype=np.float32)
    pixel_cover = easy._smooth_noise(rng, (size, size), 1.5) * cover_std[dominant]
    pixel_bright = 1.0 + easy._smooth_noise(rng, (size, size), 1.0) * bright_std[dominant]
    return HardLandscape(
        grid, tuple(objects), tuple(kinds), params, mix_ids, mix_weights, canopy, background.astype(np.float32),
        pixel_cover.astype(np.float32), pixel_bright.astype(np.float32), terrain_slopes(rng, size), end,
    )  # fmt: skip


def hard_ground_reflectance(land: HardLandscape, when: dt.date, rng: np.random.Generator) -> np.ndarray:
    """Cloud-free surface reflectance (n_bands, size, size) on one date, with mixed pixels."""
    p = land.params
    cover, switch, char, _ = _state(p, _days(when))
    cover = np.clip(cover + rng.normal(0.0, 0.025, len(cover)) * (p["kind"] != _K["water"]), 0.0, 1.0)
    doy = when.timetuple().tm_yday
    season = 1.0 - 0.03 * np.cos(2 * np.pi * (doy - 230.0) / 365.0)
    forest = np.array(_SPECTRA["forest"], dtype=np.float32)
    soil = np.array(_SPECTRA["soil"], dtype=np.float32)
    char_spec = np.array(_SPECTRA["char"], dtype=np.float32)
    nir_like = np.array([b in ("nir", "nir08", "rededge3") for b in REFLECTANCE_BANDS])
    forest_season = np.where(nir_like, season, 1.0).astype(np.float32)
    canopy = land.canopy[0] * (1 - switch[:, None]) + land.canopy[1] * switch[:, None]
    canopy = np.where((p["kind"] == _K["forest"])[:, None], canopy * forest_season, canopy)
    background = land.background * (1 - char[:, None]) + char_spec * char[:, None]
    shade = p["shade"][:, None]
    shade_top = 0.95 * forest * forest_season + 0.05 * soil
    refl_obj = (1 - shade) * (cover[:, None] * canopy + (1 - cover[:, None]) * background) + shade * shade_top
    refl_obj *= p["brightness"][:, None]
    slope_obj = (1 - shade) * (canopy - background)  # d reflectance / d cover
    out = np.empty((len(REFLECTANCE_BANDS), *land.mix_ids.shape[1:]), dtype=np.float32)
    for b in range(len(REFLECTANCE_BANDS)):
        r = np.zeros(out.shape[1:], dtype=np.float32)
        for ids, w in zip(land.mix_ids, land.mix_weights, strict=True):
            r += w * (refl_obj[ids, b] + land.pixel_cover * slope_obj[ids, b]).astype(np.float32)
        r *= land.pixel_bright
        r = ndimage.gaussian_filter(r, 0.6, truncate=2.5)
        noise = rng.standard_normal(r.shape, dtype=np.float32)
        out[b] = r + noise * (0.002 + 0.015 * r)
    return np.clip(out, 0.0, None, out=out)


# --------------------------------------------------------------------------- labels and regions


def _in_strip(grid: Grid) -> Polygon:
    x0, _ = grid.xy(TRAIN_STRIP[0], 0.0)
    x1, _ = grid.xy(TRAIN_STRIP[1], 0.0)
    return box(x0, grid.bounds[1], x1, grid.bounds[3])


_CONFUSED_WITH = {
    "coca": ("regrowth", "other_crop"), "regrowth": ("coca", "forest"), "other_crop": ("coca", "regrowth"),
    "pasture": ("regrowth", "bare_soil"), "forest": ("regrowth", "other_crop"), "bare_soil": ("pasture", "settlement"),
    "water": ("bare_soil",), "settlement": ("bare_soil",),
}  # fmt: skip


def make_hard_labels(
    land: HardLandscape, rng: np.random.Generator, *, coca_share: float = 0.5, per_class: int = 25
) -> tuple[list[tuple[str, Polygon]], list[LabelError]]:
    """Training plots from the western strip only, 7 % of them wrong on purpose.

    Classes are those on the cut-off date. Coca labels are whole plots (half of the strip's
    coca plots); other labels are 0.2-1 ha polygons as in the easy world (a class with fewer
    than two in the strip gets none). Then
    :data:`LABEL_ERROR_SHARE` of the plots get a confusable class (half of the errors) or are
    moved 15-40 m (the other half), as a hurried interpreter or a GPS error would.

    Returns
    -------
    (labels, errors)
        labels as (class name, polygon in UTM metres); errors as :class:`LabelError`.
    """
    strip = _in_strip(land.grid)
    inside = [
        LandObject(o.object_id, o.cls, o.geometry.intersection(strip))
        for o in land.objects
        if o.geometry.intersects(strip)
    ]
    labels: list[tuple[str, Polygon]] = []
    coca = [o for o in inside if o.cls == "coca" and strip.contains(land.objects[o.object_id].geometry)]
    chosen = rng.permutation(len(coca))[: round(coca_share * len(coca))]
    labels.extend(("coca", easy._largest(coca[int(i)].geometry)) for i in chosen)
    view = cast(easy.Landscape, _ObjectsView(tuple(o for o in inside if not o.geometry.is_empty)))
    for cls in DEMO_CLASSES[1:]:
        polys = easy._class_labels(view, cls, per_class, rng)
        # Cross-validation needs two plots of a class; a class the strip barely holds
        # (a town or the river at its edge) is left out, so the model never learns it.
        labels.extend((cls, poly) for poly in polys if len(polys) >= 2)
    # A swap never leaves a class with fewer than the two plots cross-validation needs, nor
    # invents a class the labels lack; where it would, the plot is shifted instead.
    count = {c: sum(lc == c for lc, _ in labels) for c in DEMO_CLASSES}
    n_err = max(1, round(LABEL_ERROR_SHARE * len(labels)))
    errors: list[LabelError] = []
    for j, i in enumerate(sorted(int(i) for i in rng.choice(len(labels), n_err, replace=False))):
        cls, geom = labels[i]
        options = [c for c in _CONFUSED_WITH[cls] if count[c] >= 2]
        if j % 2 == 0 and count[cls] >= 3 and options:
            new = str(options[int(rng.integers(len(options)))])
            count[cls], count[new] = count[cls] - 1, count[new] + 1
            labels[i] = (new, geom)
            errors.append(LabelError(i, "mislabelled", cls, 0.0))
        else:
            dist, ang = rng.uniform(15.0, 40.0), rng.uniform(0, 2 * np.pi)
            moved = shapely.affinity.translate(geom, dist * math.cos(ang), dist * math.sin(ang))
            labels[i] = (cls, shapely.set_precision(moved, 0.01))
            errors.append(LabelError(i, "shifted", cls, round(float(dist), 2)))
    return labels, errors


@dataclass(frozen=True)
class _ObjectsView:
    """The one attribute :func:`estimator.demo.landscape._class_labels` reads."""

    objects: tuple[LandObject, ...]


def make_hard_regions(grid: Grid, rng: np.random.Generator) -> list[Region]:
    """Four regions stacked north to south east of the training strip, with wavy borders."""
    n = max(8, int(grid.width_m / 50.0))
    cols = np.linspace(*_REGION_COLS, n)
    edges = [np.full(n, _HARD_REGIONS[0][2])]
    for *_, top, _bottom, _d in _HARD_REGIONS[1:]:
        edges.append(top + 0.015 * np.sin(2 * np.pi * cols / rng.uniform(0.4, 0.8) + rng.uniform(0, 2 * np.pi)))
    edges.append(np.full(n, _HARD_REGIONS[-1][3]))
    regions = []
    for k, (rid, name, *_rest) in enumerate(_HARD_REGIONS):
        upper = edges[k] + (0.005 if k > 0 else 0.0)
        lower = edges[k + 1] - (0.005 if k < len(_HARD_REGIONS) - 1 else 0.0)
        x, y = grid.xy(np.concatenate([cols, cols[::-1]]), np.concatenate([upper, lower[::-1]]))
        regions.append(Region(rid, name, shapely.orient_polygons(Polygon(np.column_stack([x, y])))))
    return regions
