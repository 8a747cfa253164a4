"""The ground of the SYNTHETIC demo world: land-cover objects, truth rasters and spectra.

Everything here is made up, deterministically from a seed, so that the demo has a known
truth to compare estimates with. The ground is built in three steps:

1. objects as shapely polygons in the world's UTM CRS (river, settlements, roads,
   clearings split into parcels, coca plots, forest as the remainder), made disjoint by
   priority (water > settlement > road > coca > clearing parcels > forest);
2. the objects rasterized on the 10 m grid (pixel-centre rule) into an object-index raster
   and a class raster;
3. a per-object temporal vegetation model (fractional green cover) mixed with per-class
   endmember spectra, giving a 10-band bottom-of-atmosphere reflectance field per date.

Training plots (labels) and regions are drawn from the same objects, and
:func:`true_areas_ha` measures true ground areas (geodesic) of the class raster per region.
Imaging (clouds, SCL, DN encoding, COGs, STAC) lives in :mod:`estimator.demo.world`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from affine import Affine
from pyproj import Geod, Transformer
from rasterio.features import rasterize
from scipy import ndimage
from shapely.geometry import LineString, Point, Polygon, box
from shapely.geometry.base import BaseGeometry
from shapely.prepared import prep

from estimator.bands import REFLECTANCE_BANDS

__all__ = [
    "CLASS_CODE",
    "DEMO_CLASSES",
    "Grid",
    "LandObject",
    "Landscape",
    "Region",
    "build_landscape",
    "from_lonlat",
    "geodesic_area_ha",
    "ground_reflectance",
    "make_labels",
    "make_regions",
    "pixel_area_m2",
    "to_lonlat",
    "true_areas_ha",
]

#: Land-cover classes of the demo world; class code = index + 1 in truth rasters, 0 = nodata.
DEMO_CLASSES: tuple[str, ...] = (
    "coca",
    "forest",
    "regrowth",
    "other_crop",
    "pasture",
    "bare_soil",
    "water",
    "settlement",
)
CLASS_CODE: dict[str, int] = {name: i + 1 for i, name in enumerate(DEMO_CLASSES)}

_GEOD = Geod(ellps="WGS84")
_RES = 10.0  # metres, the 10 m Sentinel-2 grid
_REFERENCE_SIZE_PX = 1024  # object counts are given for a world of this size

# Endmember spectra (reflectance), bands in REFLECTANCE_BANDS order:
# blue, green, red, nir, rededge1, rededge2, rededge3, nir08, swir16, swir22.
_SPECTRA: dict[str, tuple[float, ...]] = {
    "forest": (0.020, 0.045, 0.024, 0.300, 0.070, 0.200, 0.270, 0.310, 0.140, 0.060),
    "shrub": (0.025, 0.065, 0.030, 0.380, 0.095, 0.260, 0.340, 0.390, 0.190, 0.090),
    "coca_leaf": (0.026, 0.068, 0.031, 0.370, 0.098, 0.255, 0.330, 0.380, 0.195, 0.092),
    "regrowth": (0.023, 0.055, 0.027, 0.345, 0.083, 0.235, 0.310, 0.355, 0.170, 0.078),
    "grass": (0.035, 0.070, 0.050, 0.330, 0.100, 0.220, 0.290, 0.340, 0.220, 0.120),
    "soil": (0.070, 0.100, 0.140, 0.200, 0.160, 0.180, 0.190, 0.210, 0.300, 0.240),
    "residue": (0.065, 0.095, 0.125, 0.230, 0.150, 0.190, 0.210, 0.240, 0.310, 0.230),
    "water": (0.050, 0.065, 0.060, 0.035, 0.055, 0.040, 0.037, 0.033, 0.015, 0.010),
    "roof": (0.100, 0.120, 0.140, 0.180, 0.160, 0.170, 0.175, 0.185, 0.250, 0.210),
}
# Per class: (green canopy endmember, background endmember under/between the canopy).
_CLASS_ENDMEMBERS: dict[str, tuple[str, str]] = {
    "coca": ("coca_leaf", "soil"),
    "forest": ("forest", "soil"),
    "regrowth": ("regrowth", "soil"),
    "other_crop": ("shrub", "residue"),
    "pasture": ("grass", "soil"),
    "bare_soil": ("shrub", "soil"),
    "water": ("shrub", "water"),
    "settlement": ("shrub", "roof"),
}
# Std of the static, spatially smooth per-pixel variation of cover and brightness.
_PIXEL_COVER_STD = {
    "coca": 0.04,
    "forest": 0.015,
    "regrowth": 0.03,
    "other_crop": 0.04,
    "pasture": 0.05,
    "bare_soil": 0.03,
    "water": 0.0,
    "settlement": 0.04,
}
_PIXEL_BRIGHT_STD = {
    "coca": 0.04,
    "forest": 0.05,
    "regrowth": 0.05,
    "other_crop": 0.04,
    "pasture": 0.04,
    "bare_soil": 0.06,
    "water": 0.08,
    "settlement": 0.15,
}

# Regions as bands of the world (fractions of its height from the top), and how much of
# the coca goes into each band: two regions hold plenty, the southern one little.
_REGION_BANDS: tuple[tuple[str, str, float, float, float], ...] = (
    ("north", "Synthetic north valley (DEMO)", 0.03, 0.34, 0.42),
    ("centre", "Synthetic central valley (DEMO)", 0.34, 0.66, 0.43),
    ("south", "Synthetic south valley (DEMO)", 0.66, 0.97, 0.15),
)
_REGION_GAP_FRAC = 0.01  # regions are separated by a thin uncovered strip
_REGION_SIDE_FRAC = 0.03  # and leave the world's left and right edges uncovered


@dataclass(frozen=True)
class Grid:
    """The world's 10 m pixel grid in a UTM CRS."""

    size_px: int
    """Width and height in 10 m pixels."""
    origin_x: float
    """Easting of the upper-left corner, metres."""
    origin_y: float
    """Northing of the upper-left corner, metres."""
    epsg: int
    """EPSG code of the CRS."""

    @property
    def width_m(self) -> float:
        """Side length in metres."""
        return self.size_px * _RES

    @property
    def transform(self) -> Affine:
        """Affine transform of the 10 m grid."""
        return Affine(_RES, 0.0, self.origin_x, 0.0, -_RES, self.origin_y)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) in metres."""
        return (self.origin_x, self.origin_y - self.width_m, self.origin_x + self.width_m, self.origin_y)

    def xy(self, col_frac: float | np.ndarray, row_frac: float | np.ndarray) -> tuple[Any, Any]:
        """Map coordinates of fractional positions (0..1 from the upper-left corner)."""
        return self.origin_x + col_frac * self.width_m, self.origin_y - row_frac * self.width_m


@dataclass(frozen=True)
class LandObject:
    """One land-cover object; geometries of different objects do not overlap."""

    object_id: int
    """Index of the object in :attr:`Landscape.objects` and value in the object raster."""
    cls: str
    """A DEMO_CLASSES name."""
    geometry: BaseGeometry
    """Polygon or MultiPolygon in the world's UTM CRS, metres."""


@dataclass(frozen=True)
class Landscape:
    """The synthetic ground: objects, rasters and the per-object temporal model."""

    grid: Grid
    """The 10 m grid."""
    objects: tuple[LandObject, ...]
    """All objects, forest (the remainder of the world) included."""
    object_raster: np.ndarray
    """(size, size) int32 index into ``objects`` at each pixel centre."""
    class_raster: np.ndarray
    """(size, size) uint8 class codes (CLASS_CODE) at each pixel centre."""
    params: dict[str, np.ndarray]
    """Per-object parameters of the temporal and spectral model, arrays of len(objects)."""
    canopy: np.ndarray
    """(n_objects, n_bands) green-canopy spectrum of each object."""
    background: np.ndarray
    """(n_objects, n_bands) background (soil, water, roof) spectrum of each object."""
    pixel_cover: np.ndarray
    """(size, size) float32 static per-pixel offset of fractional cover."""
    pixel_bright: np.ndarray
    """(size, size) float32 static per-pixel brightness factor."""


@dataclass(frozen=True)
class Region:
    """A named region of the demo world."""

    region_id: str
    """Short id ("north", "centre", "south")."""
    name: str
    """Human-readable name, marked as synthetic."""
    geometry: Polygon
    """Polygon in the world's UTM CRS, metres."""


# --------------------------------------------------------------------------- geometry


def to_lonlat(geom: BaseGeometry, epsg: int) -> BaseGeometry:
    """Transform a geometry from EPSG:``epsg`` to lon/lat (EPSG:4326, x = lon)."""
    tr = Transformer.from_crs(epsg, 4326, always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def from_lonlat(geom: BaseGeometry, epsg: int) -> BaseGeometry:
    """Transform a lon/lat geometry to EPSG:``epsg``."""
    tr = Transformer.from_crs(4326, epsg, always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def _scale_to_area(geom: Polygon, area: float) -> Polygon:
    return shapely.affinity.scale(geom, math.sqrt(area / geom.area), math.sqrt(area / geom.area))


def _blob(rng: np.random.Generator, cx: float, cy: float, area: float, roughness: float = 0.25) -> Polygon:
    """An irregular, roughly elliptical polygon of the given area centred near (cx, cy)."""
    n = int(rng.integers(12, 20))
    theta = np.sort(rng.uniform(0, 2 * np.pi, n))
    # A few low harmonics keep the outline smooth rather than spiky.
    r = np.ones(n)
    for k in (2, 3, 5):
        r += roughness / k * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    aspect = rng.uniform(1.0, 2.0)
    xs, ys = r * np.cos(theta) * aspect, r * np.sin(theta)
    poly = shapely.affinity.rotate(Polygon(np.column_stack([xs, ys])).buffer(0), rng.uniform(0, 180))
    poly = _largest(poly)
    poly = _scale_to_area(poly, area)
    c = poly.centroid
    return shapely.affinity.translate(poly, cx - c.x, cy - c.y)


def _rect(cx: float, cy: float, area: float, aspect: float, angle: float) -> Polygon:
    w = math.sqrt(area * aspect)
    h = area / w
    r = box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    return shapely.affinity.rotate(r, angle, origin=(cx, cy))


def _largest(geom: BaseGeometry) -> Polygon:
    """The largest polygon part of a geometry (or an empty polygon)."""
    parts = [g for g in getattr(geom, "geoms", [geom]) if isinstance(g, Polygon) and not g.is_empty]
    return max(parts, key=lambda g: g.area) if parts else Polygon()


def _random_point_in(rng: np.random.Generator, geom: BaseGeometry, tries: int = 200) -> Point | None:
    minx, miny, maxx, maxy = geom.bounds
    pg = prep(geom)
    for _ in range(tries):
        p = Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
        if pg.contains(p):
            return p
    return None


# --------------------------------------------------------------------------- objects


def _river(rng: np.random.Generator, grid: Grid) -> tuple[Polygon, LineString]:
    """A meandering river crossing the world from top to bottom, 30-80 m wide."""
    w = grid.width_m
    y = np.arange(-200.0, w + 200.0, 20.0)  # distance down from the top edge, overshooting
    x = (
        w * rng.uniform(0.35, 0.6)
        + w * 0.08 * np.sin(2 * np.pi * y / (0.6 * w) + rng.uniform(0, 2 * np.pi))
        + w * 0.03 * np.sin(2 * np.pi * y / (0.2 * w) + rng.uniform(0, 2 * np.pi))
    )
    width = 30.0 + 50.0 * (0.5 + 0.5 * np.sin(2 * np.pi * y / (0.45 * w) + rng.uniform(0, 2 * np.pi)))
    cx, cy = grid.origin_x + x, grid.origin_y - y
    tx, ty = np.gradient(cx), np.gradient(cy)
    norm = np.hypot(tx, ty)
    nx, ny = -ty / norm, tx / norm
    left = np.column_stack([cx + nx * width / 2, cy + ny * width / 2])
    right = np.column_stack([cx - nx * width / 2, cy - ny * width / 2])
    poly = _largest(Polygon(np.vstack([left, right[::-1]])).buffer(0))
    return poly, LineString(np.column_stack([cx, cy]))


def _settlements(rng: np.random.Generator, grid: Grid, river: Polygon, centre: LineString, n: int) -> list[Polygon]:
    """Small town blobs beside the river, not overlapping each other or the water."""
    out: list[Polygon] = []
    for _ in range(50 * n):
        if len(out) == n:
            break
        s = rng.uniform(0.08, 0.92) * centre.length
        p = centre.interpolate(s)
        q = centre.interpolate(min(s + 20.0, centre.length))
        dx, dy = q.x - p.x, q.y - p.y
        norm = math.hypot(dx, dy) or 1.0
        area = rng.uniform(4e4, 1.2e5)
        side = rng.choice([-1.0, 1.0])
        off = math.sqrt(area / math.pi) + rng.uniform(60.0, 120.0)
        blob = _blob(rng, p.x - side * dy / norm * off, p.y + side * dx / norm * off, area, 0.2)
        if blob.intersects(river.buffer(20.0)) or any(blob.buffer(200.0).intersects(o) for o in out):
            continue
        if not box(*grid.bounds).buffer(-50.0).contains(blob):
            continue
        out.append(blob)
    return out


def _roads(rng: np.random.Generator, grid: Grid, settlements: Sequence[Polygon], centre: LineString) -> list[Polygon]:
    """Unpaved tracks (bare soil, about 18 m cleared) leading from each town away from the river."""
    roads = []
    for town in settlements:
        c = town.centroid
        near = centre.interpolate(centre.project(c))
        away = np.array([c.x - near.x, c.y - near.y])
        away /= np.linalg.norm(away) or 1.0
        length = grid.width_m * rng.uniform(0.2, 0.45)
        heading = math.atan2(away[1], away[0])
        pts = [(c.x, c.y)]
        step = 100.0
        for _ in range(int(length / step)):
            heading += rng.normal(0.0, 0.15)
            x, y = pts[-1]
            pts.append((x + step * math.cos(heading), y + step * math.sin(heading)))
        roads.append(LineString(pts).buffer(9.0, cap_style="flat"))
    return roads


def _clearings(
    rng: np.random.Generator, grid: Grid, centre: LineString, roads: Sequence[Polygon], n: int
) -> list[tuple[str, Polygon]]:
    """Clearings near the river and roads (colonisation pattern), split into class parcels."""
    classes = ("pasture", "other_crop", "regrowth", "bare_soil")
    weights = np.array([0.40, 0.22, 0.25, 0.13])
    parcels: list[tuple[str, Polygon]] = []
    x0, y0, x1, y1 = grid.bounds
    for _ in range(n):
        mode = rng.uniform()
        if mode < 0.5:  # along the river
            p = centre.interpolate(rng.uniform(0, centre.length))
            cx = p.x + rng.normal(0, 0.12 * grid.width_m)
            cy = p.y + rng.normal(0, 0.02 * grid.width_m)
        elif mode < 0.75 and roads:  # along a road
            road = roads[int(rng.integers(len(roads)))]
            p = road.exterior.interpolate(rng.uniform(0, road.exterior.length))
            cx, cy = p.x + rng.normal(0, 200.0), p.y + rng.normal(0, 200.0)
        else:
            cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        area = math.exp(rng.uniform(math.log(2e4), math.log(4e5)))  # 2-40 ha
        clearing = _blob(rng, cx, cy, area, 0.3)
        pieces = [clearing]
        if area > 8e4:  # large clearings hold several fields
            for _cut in range(int(rng.integers(1, 3))):
                c = clearing.centroid
                ang = rng.uniform(0, np.pi)
                offset = rng.normal(0, 0.15 * math.sqrt(area))
                dx, dy = math.cos(ang), math.sin(ang)
                half = box(-1e6, 0, 1e6, 1e6)
                half = shapely.affinity.rotate(half, math.degrees(ang), origin=(0, 0))
                half = shapely.affinity.translate(half, c.x - dy * offset, c.y + dx * offset)
                pieces = [g for piece in pieces for g in (piece.intersection(half), piece.difference(half))]
        for piece in pieces:
            piece = _largest(piece)
            if piece.area > 5e3:
                parcels.append((str(rng.choice(classes, p=weights)), piece))
    return parcels


def _coca_plots(
    rng: np.random.Generator, grid: Grid, parcels: Sequence[tuple[str, Polygon]], obstacles: BaseGeometry, n: int
) -> list[Polygon]:
    """Coca plots of 0.3-3 ha inside clearings, on their edges, or cut into the forest."""
    inner = box(*grid.bounds).buffer(-30.0)
    blocked = prep(obstacles.buffer(15.0))
    plots: list[Polygon] = []
    for _ in range(200 * n):
        if len(plots) == n or not parcels:
            break
        mode = rng.uniform()
        if mode < 0.85:
            _cls, parcel = parcels[int(rng.integers(len(parcels)))]
            if mode < 0.40:  # planted inside a clearing
                p = _random_point_in(rng, parcel, 20)
                if p is None:
                    continue
                cx, cy = p.x, p.y
            else:  # on a clearing's edge, i.e. at a forest edge
                ring = parcel.exterior
                p = ring.interpolate(rng.uniform(0, ring.length))
                cx, cy = p.x + rng.normal(0, 25.0), p.y + rng.normal(0, 25.0)
        else:  # an isolated plot cut into the forest
            cx, cy = rng.uniform(grid.bounds[0], grid.bounds[2]), rng.uniform(grid.bounds[1], grid.bounds[3])
        row_frac = (grid.origin_y - cy) / grid.width_m
        if rng.uniform() > _coca_weight(row_frac):
            continue
        area = rng.uniform(3e3, 3e4)  # 0.3-3 ha, mean 1.65 ha (Colombia's mean field: 1.8 ha)
        if rng.uniform() < 0.6:
            plot = _rect(cx, cy, area, rng.uniform(1.0, 2.5), rng.uniform(0, 180))
        else:
            plot = _blob(rng, cx, cy, area, 0.15)
        if not inner.contains(plot) or blocked.intersects(plot):
            continue
        if any(plot.distance(q) < 10.0 for q in plots):  # keep plots apart, as fields are
            continue
        plots.append(plot)
    return plots


def _coca_weight(row_frac: float) -> float:
    """Acceptance probability of a coca plot by its position from the top (0..1) of the world."""
    top = max(w for *_, w in _REGION_BANDS)
    for *_, lo, hi, w in _REGION_BANDS:
        if lo <= row_frac < hi:
            return w / top
    return 0.1


def _disjoint(ordered: Sequence[tuple[str, BaseGeometry]], world: Polygon) -> list[tuple[str, BaseGeometry]]:
    """Clip each geometry by all earlier (higher-priority) ones, so objects do not overlap."""
    originals = [g.intersection(world) for _, g in ordered]
    tree = shapely.STRtree(originals)
    out: list[tuple[str, BaseGeometry]] = []
    for i, ((cls, _), geom) in enumerate(zip(ordered, originals, strict=True)):
        earlier = [originals[j] for j in tree.query(geom) if j < i]
        if earlier:
            geom = geom.difference(shapely.union_all(earlier))
        geom = shapely.make_valid(geom)
        polys = [g for g in getattr(geom, "geoms", [geom]) if isinstance(g, Polygon) and g.area > 50.0]
        if not polys or sum(p.area for p in polys) < 1000.0:
            continue
        out.append((cls, polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)))
    return out


def _objects(rng: np.random.Generator, grid: Grid, n_coca: int) -> list[LandObject]:
    scale = (grid.size_px / _REFERENCE_SIZE_PX) ** 2
    world = box(*grid.bounds)
    river, centre = _river(rng, grid)
    towns = _settlements(rng, grid, river, centre, max(2, round(5 * math.sqrt(scale))))
    roads = _roads(rng, grid, towns, centre)
    parcels = _clearings(rng, grid, centre, roads, max(8, round(200 * scale)))
    obstacles = shapely.union_all([river, *towns, *roads])
    plots = _coca_plots(rng, grid, parcels, obstacles, n_coca)
    ordered = (
        [("water", river)]
        + [("settlement", t) for t in towns]
        + [("bare_soil", r) for r in roads]
        + [("coca", p) for p in plots]
        + list(parcels)
    )
    pieces = _disjoint(ordered, world)
    forest = world.difference(shapely.union_all([g for _, g in pieces]))
    pieces.append(("forest", forest))
    return [LandObject(i, cls, g) for i, (cls, g) in enumerate(pieces)]


# --------------------------------------------------------------------------- model


def _object_params(rng: np.random.Generator, objects: Sequence[LandObject]) -> dict[str, np.ndarray]:
    """Per-object parameters of the fractional-cover model (see :func:`_cover`)."""
    n = len(objects)
    code = np.array([CLASS_CODE[o.cls] for o in objects], dtype=np.uint8)
    return {
        "code": code,
        # Baseline cover for the non-cyclic classes.
        "cover": np.select(
            [code == CLASS_CODE[c] for c in ("forest", "regrowth", "pasture", "bare_soil", "settlement")],
            [
                rng.uniform(0.95, 0.99, n),
                rng.uniform(0.88, 0.94, n),
                rng.uniform(0.64, 0.76, n),
                rng.uniform(0.0, 0.05, n),
                rng.uniform(0.02, 0.07, n),
            ],
            0.0,
        ),
        # Coca: harvest every 80-100 days at a random phase; cover after harvest and before.
        "period": rng.uniform(80.0, 100.0, n),
        "phase": rng.uniform(0.0, 365.0, n),
        "cover_min": rng.uniform(0.35, 0.45, n),
        "cover_max": rng.uniform(0.76, 0.84, n),
        # Pasture seasonal amplitude; other crops reuse "phase" as the sowing day of year.
        "season_amp": rng.uniform(0.04, 0.09, n),
        "brightness": rng.normal(1.0, 0.05, n),
    }


def _cover(params: dict[str, np.ndarray], day: float, doy: float, rng: np.random.Generator) -> np.ndarray:
    """Fractional green cover of every object on one date."""
    code = params["code"]
    f = params["cover"].copy()
    # Coca: leaves stripped at harvest, then fast regrowth that saturates over the cycle.
    p = np.mod(day - params["phase"], params["period"]) / params["period"]
    regrow = (1 - np.exp(-3.0 * p)) / (1 - math.exp(-3.0))
    coca = params["cover_min"] + (params["cover_max"] - params["cover_min"]) * regrow
    # Other crops: sowing, ~100 days of logistic growth, harvest, then a weedy fallow.
    a = np.mod(doy - params["phase"], 365.0)
    grow = 0.12 + 0.73 / (1 + np.exp(-(a - 45.0) / 9.0))
    crop = np.where(a < 100, grow, np.where(a < 120, 0.85 - 0.75 * (a - 100) / 20, 0.10 + 0.15 * (a - 120) / 245))
    # Pasture greens up in the wet season (peak around March) and dries in August.
    pasture = params["cover"] + params["season_amp"] * np.cos(2 * np.pi * (doy - 70.0) / 365.0)
    f = np.where(code == CLASS_CODE["coca"], coca, f)
    f = np.where(code == CLASS_CODE["other_crop"], crop, f)
    f = np.where(code == CLASS_CODE["pasture"], pasture, f)
    # Management, moisture and phenology differ a little from date to date.
    jitter = rng.normal(0.0, 0.025, len(code)) * (code != CLASS_CODE["water"])
    return np.clip(f + jitter, 0.0, 1.0).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-std, spatially correlated noise."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return (field - field.mean()) / (field.std() or 1.0)


def build_landscape(grid: Grid, n_coca_plots: int, rng: np.random.Generator) -> Landscape:
    """Draw the objects, rasterize them, and set up the spectral-temporal model.

    Parameters
    ----------
    grid
        The world's 10 m grid.
    n_coca_plots
        Number of coca plots to place (fewer if the world has no room for them).
    rng
        Source of randomness; the landscape is a pure function of its state.

    Returns
    -------
    Landscape
    """
    objects = _objects(rng, grid, n_coca_plots)
    shape = (grid.size_px, grid.size_px)
    forest_id = next(o.object_id for o in objects if o.cls == "forest")
    object_raster = rasterize(
        [(o.geometry, o.object_id) for o in objects if o.cls != "forest"],
        out_shape=shape,
        transform=grid.transform,
        fill=forest_id,
        dtype="int32",
    )
    params = _object_params(rng, objects)
    class_raster = params["code"][object_raster]
    spectra = {k: np.array(v, dtype=np.float32) for k, v in _SPECTRA.items()}
    jitter = rng.normal(1.0, 0.03, (len(objects), len(REFLECTANCE_BANDS))).astype(np.float32)
    canopy = np.stack([spectra[_CLASS_ENDMEMBERS[o.cls][0]] for o in objects]) * jitter
    background = np.stack([spectra[_CLASS_ENDMEMBERS[o.cls][1]] for o in objects])
    background *= rng.normal(1.0, 0.06, (len(objects), 1)).astype(np.float32)
    cover_std = np.array([0.0] + [_PIXEL_COVER_STD[c] for c in DEMO_CLASSES], dtype=np.float32)
    bright_std = np.array([0.0] + [_PIXEL_BRIGHT_STD[c] for c in DEMO_CLASSES], dtype=np.float32)
    pixel_cover = _smooth_noise(rng, shape, 1.5) * cover_std[class_raster]
    pixel_bright = 1.0 + _smooth_noise(rng, shape, 1.0) * bright_std[class_raster]
    return Landscape(
        grid,
        tuple(objects),
        object_raster,
        class_raster,
        params,
        canopy,
        background,
        pixel_cover,
        pixel_bright.astype(np.float32),
    )


def ground_reflectance(land: Landscape, when: dt.date, rng: np.random.Generator) -> np.ndarray:
    """Cloud-free surface reflectance of every band on one date.

    Parameters
    ----------
    land
        The landscape.
    when
        Acquisition date.
    rng
        Source of the date's randomness (object jitter and sensor noise).

    Returns
    -------
    numpy.ndarray
        (n_bands, size, size) float32 reflectance, bands in REFLECTANCE_BANDS order.
    """
    day = float((when - dt.date(2000, 1, 1)).days)
    doy = float(when.timetuple().tm_yday)
    obj = land.object_raster
    f_obj = _cover(land.params, day, doy, rng)
    f = np.clip(f_obj[obj] + land.pixel_cover, 0.0, 1.0)
    bright = (land.params["brightness"].astype(np.float32))[obj] * land.pixel_bright
    # The forest canopy gets a little darker in the NIR in the dry season (July-September).
    season = 1.0 - 0.03 * np.cos(2 * np.pi * (doy - 230.0) / 365.0)
    out = np.empty((len(REFLECTANCE_BANDS), *obj.shape), dtype=np.float32)
    for b in range(len(REFLECTANCE_BANDS)):
        canopy = land.canopy[:, b].copy()
        if REFLECTANCE_BANDS[b] in ("nir", "nir08", "rededge3"):
            canopy[land.params["code"] == CLASS_CODE["forest"]] *= season
        refl = (f * canopy[obj] + (1.0 - f) * land.background[:, b][obj]) * bright
        # A slight blur mixes neighbouring covers at object edges, like the sensor's PSF.
        refl = ndimage.gaussian_filter(refl, 0.6, truncate=2.5)
        noise = rng.standard_normal(obj.shape, dtype=np.float32)
        out[b] = refl + noise * (0.002 + 0.015 * refl)
    return np.clip(out, 0.0, None, out=out)


# --------------------------------------------------------------------------- labels, regions, truth


def make_labels(
    land: Landscape, rng: np.random.Generator, *, coca_share: float = 0.4, per_class: int = 25
) -> list[tuple[str, Polygon]]:
    """Training plots: a spatially spread share of the coca plots, and small plots of the rest.

    Coca labels are whole plots, chosen systematically from the plots ordered by the cell
    of a 3 x 3 partition of the world they lie in, so every cell gets its share. Other labels
    are 0.2-1 ha polygons inside one object of their class, not overlapping each other; half
    of them are drawn next to the object's border. Interpreters label whole fields, edges
    included, and a model that never sees mixed border pixels of forest, pasture or crops
    takes them for coca (measured: +35 % coca on the default world with interior-only labels).

    Returns
    -------
    list of (class name, polygon in UTM metres)
    """
    grid = land.grid
    labels: list[tuple[str, Polygon]] = []
    coca = [o for o in land.objects if o.cls == "coca"]
    cells: dict[tuple[int, int], list[LandObject]] = {}
    for o in coca:
        c = o.geometry.centroid
        key = (int(3 * (c.x - grid.origin_x) / grid.width_m), int(3 * (grid.origin_y - c.y) / grid.width_m))
        cells.setdefault(key, []).append(o)
    ordered = [cells[key][i] for key in sorted(cells) for i in rng.permutation(len(cells[key]))]
    start = rng.uniform()
    for i, o in enumerate(ordered):
        if math.floor(start + (i + 1) * coca_share) > math.floor(start + i * coca_share):
            labels.append(("coca", _largest(o.geometry)))
    for cls in DEMO_CLASSES[1:]:
        labels.extend((cls, poly) for poly in _class_labels(land, cls, per_class, rng))
    return labels


def _class_labels(land: Landscape, cls: str, n: int, rng: np.random.Generator) -> list[Polygon]:
    objs = [o for o in land.objects if o.cls == cls]
    shapes = [o.geometry for o in objs]
    keep = [i for i, g in enumerate(shapes) if g.area >= 2e3]
    if not keep:
        return []
    weights = np.array([shapes[i].area for i in keep])
    weights /= weights.sum()
    out: list[Polygon] = []
    border: dict[int, BaseGeometry] = {}
    for k in range(60 * n):
        if len(out) == n:
            break
        i = keep[int(rng.choice(len(keep), p=weights))]
        g = shapes[i]
        # every other try starts within 30 m of the border, so labels hold mixed edge pixels
        if k % 2:
            if i not in border:
                border[i] = g.difference(g.buffer(-30.0))
            p = _random_point_in(rng, border[i], 200)
        else:
            p = _random_point_in(rng, g, 50)
        if p is None:
            continue
        area = rng.uniform(2.5e3, 9e3)
        if cls == "water":  # long pieces of a narrow river
            cand = _rect(p.x, p.y, 3 * area, 6.0, rng.uniform(0, 180)).intersection(g)
        else:
            cand = _rect(p.x, p.y, area, rng.uniform(1.0, 2.0), rng.uniform(0, 180))
            if not g.contains(cand):
                cand = cand.intersection(g)
        if not isinstance(cand, Polygon) or not 2e3 <= cand.area <= 1e4:
            continue
        if any(cand.distance(q) < 20.0 for q in out):
            continue
        out.append(shapely.set_precision(cand, 0.01))
    return out


def make_regions(grid: Grid, rng: np.random.Generator) -> list[Region]:
    """Three non-overlapping regions, bands across the world with wavy borders."""
    n = max(8, int(grid.width_m / 50.0))  # a vertex every ~50 m along each border
    side = _REGION_SIDE_FRAC
    cols = np.linspace(side, 1 - side, n)
    borders = []
    for _, _, lo, _, _ in _REGION_BANDS[1:]:
        wave = 0.02 * np.sin(2 * np.pi * cols / rng.uniform(0.5, 0.9) + rng.uniform(0, 2 * np.pi))
        borders.append(lo + wave)
    top = np.full(n, _REGION_BANDS[0][2])
    bottom = np.full(n, _REGION_BANDS[-1][3])
    edges = [top, *borders, bottom]
    regions = []
    for k, (rid, name, *_rest) in enumerate(_REGION_BANDS):
        upper = edges[k] + (_REGION_GAP_FRAC / 2 if k > 0 else 0.0)
        lower = edges[k + 1] - (_REGION_GAP_FRAC / 2 if k < len(_REGION_BANDS) - 1 else 0.0)
        xs = np.concatenate([cols, cols[::-1]])
        ys = np.concatenate([upper, lower[::-1]])
        x, y = grid.xy(xs, ys)
        regions.append(Region(rid, name, shapely.orient_polygons(Polygon(np.column_stack([x, y])))))
    return regions


def pixel_area_m2(grid: Grid, block: int = 16) -> np.ndarray:
    """Geodesic ground area of every pixel, from one geodesic polygon per block of pixels."""
    n = grid.size_px
    edges = np.unique(np.r_[np.arange(0, n, block), n])
    xs = grid.origin_x + edges * _RES
    ys = grid.origin_y - edges * _RES
    gx, gy = np.meshgrid(xs, ys)
    lon, lat = Transformer.from_crs(grid.epsg, 4326, always_xy=True).transform(gx, gy)
    area = np.empty((n, n), dtype=np.float64)
    for i in range(len(edges) - 1):
        for j in range(len(edges) - 1):
            lons = [lon[i, j], lon[i, j + 1], lon[i + 1, j + 1], lon[i + 1, j]]
            lats = [lat[i, j], lat[i, j + 1], lat[i + 1, j + 1], lat[i + 1, j]]
            a, _ = _GEOD.polygon_area_perimeter(lons, lats)
            r0, r1, c0, c1 = edges[i], edges[i + 1], edges[j], edges[j + 1]
            area[r0:r1, c0:c1] = abs(a) / ((r1 - r0) * (c1 - c0))
    return area


def true_areas_ha(
    class_raster: np.ndarray, grid: Grid, regions_lonlat: Sequence[tuple[str, BaseGeometry]]
) -> dict[str, dict[str, Any]]:
    """True ground area per class, for the whole world and per region, in hectares.

    A pixel belongs to a region when its centre falls inside the region polygon (GDAL's
    default rasterization); each pixel counts with its geodesic ground area on WGS84.

    Parameters
    ----------
    class_raster
        (size, size) class codes.
    grid
        The 10 m grid.
    regions_lonlat
        (region id, lon/lat polygon) pairs, exactly as written to regions.geojson.

    Returns
    -------
    dict
        ``{"world" | region_id: {"region_area_ha": float, "area_ha": {class: float}}}``.
    """
    area = pixel_area_m2(grid) / 1e4
    codes = class_raster.astype(np.intp)

    def summarise(mask: np.ndarray | None) -> dict[str, Any]:
        c = codes if mask is None else codes[mask]
        w = area if mask is None else area[mask]
        sums = np.bincount(c.ravel(), weights=w.ravel(), minlength=len(DEMO_CLASSES) + 1)
        return {
            "region_area_ha": round(float(w.sum()), 4),
            "area_ha": {name: round(float(sums[i + 1]), 4) for i, name in enumerate(DEMO_CLASSES)},
        }

    out = {"world": summarise(None)}
    for rid, geom in regions_lonlat:
        utm = from_lonlat(shapely.segmentize(geom, 1e-4), grid.epsg)
        mask = rasterize([(utm, 1)], out_shape=codes.shape, transform=grid.transform, fill=0, dtype="uint8").astype(
            bool
        )
        out[rid] = summarise(mask)
    return out


def geodesic_area_ha(geom_lonlat: BaseGeometry) -> float:
    """Geodesic area (WGS84) of a lon/lat geometry, hectares."""
    return abs(_GEOD.geometry_area_perimeter(geom_lonlat)[0]) / 1e4
