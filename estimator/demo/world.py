"""A SYNTHETIC Sentinel-2 L2A world with known truth, laid out like Earth Search v1.

``python -m estimator demo`` must show the whole job working on a machine without
internet, so this module makes, once and deterministically from a seed, everything a real
job would read: Cloud-Optimized GeoTIFFs per date and band, a STAC Collection and Items
shaped like Element84 Earth Search v1 (processing baselines, the 2022-01-25 BOA offset,
SCL-derived cloud cover), labeled training plots, region polygons, and the true area of
every class per region. Nothing here is real data; every file says so.

Layout under ``root``::

    world.json                  spec, generator version, item ids (written last)
    stac/collection.json        Collection "sentinel-2-l2a", "demo:synthetic": true
    stac/items.ndjson           one Item per date; hrefs relative to root
    cogs/<item id>/B02.tif ...  10 m bands B02 B03 B04 B08; 20 m B05 B06 B07 B8A B11 B12 SCL
    labels.geojson              training plots (lon/lat)
    regions.geojson             3 regions (lon/lat)
    truth.json                  true ground area per class and region, hectares
    truth_class.tif             class codes (DEMO_CLASSES index + 1) on the 10 m grid
    truth_objects.geojson       the land-cover objects the rasters were drawn from (lon/lat)

The ground (objects, spectra, labels, regions, areas) is made in
:mod:`estimator.demo.landscape`; this module images it: dates, clouds and shadows, SCL,
DN encoding, COGs, STAC metadata and the on-disk cache.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import shapes as raster_shapes
from scipy import ndimage
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from tqdm.auto import tqdm

from estimator.bands import (
    BASELINE_OFFSET_FROM,
    BASELINE_OFFSET_VERSION,
    BOA_OFFSET_DN,
    NATIVE_RESOLUTION,
    REFLECTANCE_BANDS,
    S2_BAND_ID,
    SCL,
    SCL_CLOUD,
)
from estimator.demo import hard
from estimator.demo.errors import DemoWorldError
from estimator.demo.landscape import (
    CLASS_CODE,
    DEMO_CLASSES,
    Grid,
    Landscape,
    build_landscape,
    geodesic_area_ha,
    ground_reflectance,
    make_labels,
    make_regions,
    to_lonlat,
    true_areas_ha,
)

__all__ = [
    "DEMO_CLASSES",
    "GENERATOR_VERSION",
    "HARD_FILES",
    "PRESETS",
    "DemoWorldError",
    "World",
    "WorldSpec",
    "generate_world",
    "generator_version",
    "load_world",
    "preset_spec",
]

log = logging.getLogger(__name__)

#: Bumped whenever the generator's output changes; a cached world of another version is remade.
GENERATOR_VERSION = "2"
#: World presets: ``easy`` (the fast default) and ``hard`` (docs/hard_world.md).
PRESETS: tuple[str, ...] = ("easy", "hard")
#: Files only a hard world has: per-date truth, sub-pixel coca shares, the label errors.
HARD_FILES: tuple[str, ...] = ("truth_dates.tif", "truth_coca_fraction.tif", "label_errors.json")

_COLLECTION_ID = "sentinel-2-l2a"
_BASELINE_BEFORE = "03.01"
_LABEL_SOURCE = "synthetic-demo"
_SYNTHETIC_NOTE = "SYNTHETIC demo world: made-up data for the demo, not Sentinel-2 observations"
_COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
_STAC_EXTENSIONS = [
    "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "https://stac-extensions.github.io/grid/v1.1.0/schema.json",
    "https://stac-extensions.github.io/sentinel-2/v1.0.0/schema.json",
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/processing/v1.1.0/schema.json",
    "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
]
# Earth Search v1 asset title, eo:bands common_name, centre wavelength and FWHM (micrometres).
_BAND_INFO: dict[str, tuple[str, str, float, float]] = {
    "blue": ("Blue - 10m", "blue", 0.49, 0.098),
    "green": ("Green - 10m", "green", 0.56, 0.045),
    "red": ("Red - 10m", "red", 0.665, 0.038),
    "nir": ("NIR 1 - 10m", "nir", 0.842, 0.145),
    "rededge1": ("Red Edge 1 - 20m", "rededge", 0.704, 0.019),
    "rededge2": ("Red Edge 2 - 20m", "rededge", 0.74, 0.018),
    "rededge3": ("Red Edge 3 - 20m", "rededge", 0.783, 0.028),
    "nir08": ("NIR 2 - 20m", "nir08", 0.865, 0.033),
    "swir16": ("SWIR 1.6\u03bcm - 20m", "swir16", 1.61, 0.143),
    "swir22": ("SWIR 2.2\u03bcm - 20m", "swir22", 2.19, 0.242),
}
# Sen2Cor percentages reported in s2:* properties, by SCL code.
_SCL_PERCENTAGES: dict[str, int] = {
    "s2:saturated_defective_pixel_percentage": SCL.SATURATED_DEFECTIVE,
    "s2:dark_features_percentage": SCL.DARK_AREA,
    "s2:cloud_shadow_percentage": SCL.CLOUD_SHADOW,
    "s2:vegetation_percentage": SCL.VEGETATION,
    "s2:not_vegetated_percentage": SCL.NOT_VEGETATED,
    "s2:water_percentage": SCL.WATER,
    "s2:unclassified_percentage": SCL.UNCLASSIFIED,
    "s2:medium_proba_clouds_percentage": SCL.CLOUD_MEDIUM,
    "s2:high_proba_clouds_percentage": SCL.CLOUD_HIGH,
    "s2:thin_cirrus_percentage": SCL.THIN_CIRRUS,
    "s2:snow_ice_percentage": SCL.SNOW,
}
# Top-of-cloud, cirrus and shadow effects per band (REFLECTANCE_BANDS order).
_CLOUD = np.array([0.42, 0.43, 0.44, 0.47, 0.45, 0.46, 0.47, 0.47, 0.36, 0.25], dtype=np.float32)
_CIRRUS = np.array([0.045, 0.040, 0.036, 0.032, 0.034, 0.033, 0.032, 0.031, 0.022, 0.015], dtype=np.float32)
_SHADOW = np.array([0.55, 0.50, 0.45, 0.35, 0.42, 0.38, 0.36, 0.35, 0.33, 0.33], dtype=np.float32)
_MGRS_TILE = re.compile(r"^(\d{1,2})([C-HJ-NP-X])([A-HJ-NP-Z]{2})$")


@dataclass(frozen=True)
class WorldSpec:
    """What to generate; a world is a pure function of its spec and GENERATOR_VERSION."""

    seed: int = 42
    """Seed of every random draw (landscape, dates, clouds, noise, labels)."""
    size_px: int = 1024
    """Width and height of the square world in 10 m pixels (even, >= 64)."""
    n_dates: int = 18
    """Number of acquisitions, evenly spaced (+- 2 days) from ``start`` to ``end``."""
    start: str = "2021-09-01"
    """First acquisition date (ISO). With ``end``, spans the 2022-01-25 baseline change."""
    end: str = "2022-08-31"
    """Last acquisition date (ISO)."""
    epsg: int = 32718
    """UTM CRS of the grid; 32718 is UTM 18S, around the VRAEM (lon -74.1, lat -12.6)."""
    origin_x: float = 600000.0
    """Easting of the world's upper-left corner, metres."""
    origin_y: float = 8610000.0
    """Northing of the world's upper-left corner, metres."""
    mgrs_tile: str = "18LXM"
    """MGRS tile id written to item ids and to s2:mgrs_tile, grid:code and mgrs:*."""
    n_coca_plots: int = 150
    """Coca plots in a 1024 x 1024 px world; scaled by area for other sizes (at least 6)."""
    preset: str = "easy"
    """``easy`` or ``hard`` (:mod:`estimator.demo.hard`); see :func:`preset_spec` for its defaults."""
    clear_share: float = 0.3
    """Share of dates with a nearly clear sky (0-5 % cloud)."""
    overcast_share: float = 0.25
    """Share of overcast dates (55-80 % cloud, spatially clustered); the rest are broken
    (10-40 %). The defaults average about 35 % SCL cloud; 0.05 and 0.85 about 70 %, as in
    Loreto (``benchmarks/bench_read_clear.py``)."""

    def __post_init__(self) -> None:
        if self.size_px < 64 or self.size_px % 2:
            raise DemoWorldError(f"size_px must be an even number >= 64, got {self.size_px}")
        if self.n_dates < 1:
            raise DemoWorldError(f"n_dates must be >= 1, got {self.n_dates}")
        try:
            start, end = dt.date.fromisoformat(self.start), dt.date.fromisoformat(self.end)
        except ValueError as exc:
            raise DemoWorldError(f"start and end must be ISO dates (YYYY-MM-DD): {exc}") from exc
        if end <= start:
            raise DemoWorldError(f"end ({self.end}) must be after start ({self.start})")
        if self.n_dates > (end - start).days + 1:
            raise DemoWorldError(f"n_dates ({self.n_dates}) exceeds the days from {self.start} to {self.end}")
        if not (32601 <= self.epsg <= 32660 or 32701 <= self.epsg <= 32760):
            raise DemoWorldError(f"epsg must be a WGS84 UTM zone (326xx or 327xx), got {self.epsg}")
        if not _MGRS_TILE.match(self.mgrs_tile):
            raise DemoWorldError(f"mgrs_tile must look like '18LXM', got {self.mgrs_tile!r}")
        if self.n_coca_plots < 0:
            raise DemoWorldError(f"n_coca_plots must be >= 0, got {self.n_coca_plots}")
        if self.preset not in PRESETS:
            raise DemoWorldError(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        if not (self.clear_share >= 0 and self.overcast_share >= 0 and self.clear_share + self.overcast_share <= 1):
            raise DemoWorldError(
                f"clear_share and overcast_share must be >= 0 with a sum <= 1, got {self.clear_share}, {self.overcast_share}"
            )

    @property
    def coca_plots(self) -> int:
        """Number of coca plots actually placed for this world size."""
        if self.n_coca_plots == 0:
            return 0
        return max(6, round(self.n_coca_plots * (self.size_px / 1024) ** 2))


@dataclass(frozen=True)
class World:
    """Paths of a generated world; all files exist when a World is returned."""

    root: Path
    """The world directory."""
    spec: WorldSpec
    """The spec it was generated from."""
    collection_path: Path
    """root/stac/collection.json"""
    items_path: Path
    """root/stac/items.ndjson, one Item per line, ordered by datetime."""
    labels_path: Path
    """root/labels.geojson, training plots with class, plot_id, batch, source."""
    regions_path: Path
    """root/regions.geojson, regions with region_id and name."""
    truth_path: Path
    """root/truth.json, true ground area per class, per region and for the world (ha)."""
    truth_class_path: Path
    """root/truth_class.tif, uint8 class codes on the 10 m grid (0 = nodata)."""

    @property
    def truth_objects_path(self) -> Path:
        """root/truth_objects.geojson, the land-cover objects with class and object_id."""
        return self.root / "truth_objects.geojson"

    @property
    def world_json_path(self) -> Path:
        """root/world.json, the record that makes the directory a world."""
        return self.root / "world.json"


@dataclass(frozen=True)
class _Acquisition:
    """One date's metadata, fixed before any pixel is made."""

    index: int
    item_id: str
    platform: str
    datetime: dt.datetime
    baseline: str
    sun_azimuth: float
    sun_elevation: float
    view_azimuth: float
    view_incidence: float
    cloud_fraction: float
    cirrus_fraction: float
    cloud_height_m: float
    swath_edge: tuple[float, float, bool] | None = field(default=None)

    @property
    def offset_applied(self) -> bool:
        return self.baseline >= BASELINE_OFFSET_VERSION


# --------------------------------------------------------------------------- public API


def preset_spec(preset: str = "easy", *, seed: int = 42, size_px: int | None = None, n_dates: int | None = None) -> WorldSpec:
    """The spec of a preset's world; ``size_px`` and ``n_dates`` default to the preset's.

    Examples
    --------
    >>> preset_spec("hard", seed=101).n_dates
    30
    """
    if preset not in PRESETS:
        raise DemoWorldError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    base: dict[str, Any] = dict(hard.HARD_DEFAULTS) if preset == "hard" else {}
    if size_px is not None:
        base["size_px"] = size_px
    if n_dates is not None:
        base["n_dates"] = n_dates
    return WorldSpec(seed=seed, preset=preset, **base)


def generator_version(preset: str) -> str:
    """Generator version recorded in a world of ``preset``; a cached world of another is remade."""
    return GENERATOR_VERSION if preset == "easy" else f"{GENERATOR_VERSION}+hard.{hard.HARD_VERSION}"


def generate_world(root: Path, spec: WorldSpec = WorldSpec(), *, progress: bool = False) -> World:
    """Generate a demo world in ``root`` once; later calls with the same spec reuse it.

    If ``root/world.json`` records the same spec and GENERATOR_VERSION and all files exist,
    the world is returned as is. Otherwise everything is written into a temporary
    directory beside ``root`` and renamed into place at the end, so an interrupted run
    leaves nothing half-written. A ``root`` holding a world of another spec or version is
    replaced; a non-empty ``root`` that is not a world is never touched.

    Parameters
    ----------
    root
        The world directory (created; its parent must be writable).
    spec
        What to generate.
    progress
        Show a progress bar over dates while COGs are written.

    Returns
    -------
    World

    Raises
    ------
    DemoWorldError
        If ``root`` exists, is not empty and is not a demo world.

    Examples
    --------
    >>> world = generate_world(Path("demo_world"), WorldSpec(size_px=256, n_dates=10))  # doctest: +SKIP
    >>> world.items_path.read_text().count("\\n")  # doctest: +SKIP
    10
    """
    root = Path(root).absolute()
    try:
        world = load_world(root)
    except DemoWorldError:
        world = None
    if world is not None and world.spec == spec:
        log.info("demo world %s is up to date (generator version %s)", root, GENERATOR_VERSION)
        return world
    if root.exists() and not root.is_dir():
        raise DemoWorldError(f"{root} is a file, not a directory; choose another place for the demo world")
    if root.exists() and any(root.iterdir()) and not (root / "world.json").is_file():
        raise DemoWorldError(
            f"{root} is not empty and holds no demo world (no world.json); choose another directory or empty this one"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    t0 = time.perf_counter()
    try:
        _write_world(tmp, spec, progress=progress)
        _replace_dir(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("generated SYNTHETIC demo world %s in %.1f s", root, time.perf_counter() - t0)
    return load_world(root)


def load_world(root: Path) -> World:
    """Open a generated demo world.

    Parameters
    ----------
    root
        A directory written by :func:`generate_world`.

    Returns
    -------
    World

    Raises
    ------
    DemoWorldError
        If ``root/world.json`` is missing or unreadable, was written by another
        GENERATOR_VERSION, or any file of the world is missing.
    """
    root = Path(root).absolute()
    record_path = root / "world.json"
    hint = "regenerate it with generate_world() or `python -m estimator demo`"
    if not record_path.is_file():
        raise DemoWorldError(f"{root} holds no demo world (world.json is missing); {hint}")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        spec = WorldSpec(**record["spec"])  # an easy world's record has no preset
        item_ids = [str(i) for i in record["item_ids"]]
        version = str(record["generator_version"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DemoWorldError(f"{record_path} is unreadable ({exc}); {hint}") from exc
    if version != generator_version(spec.preset):
        raise DemoWorldError(
            f"{root} was made by demo generator version {version}, this code writes version "
            f"{generator_version(spec.preset)}; {hint}"
        )
    world = _world_paths(root, spec)
    missing = [p for p in _expected_files(world, item_ids) if not p.is_file()]
    if missing:
        raise DemoWorldError(f"{root} is incomplete ({len(missing)} files missing, e.g. {missing[0]}); {hint}")
    return world


# --------------------------------------------------------------------------- orchestration


def _world_paths(root: Path, spec: WorldSpec) -> World:
    return World(
        root=root,
        spec=spec,
        collection_path=root / "stac" / "collection.json",
        items_path=root / "stac" / "items.ndjson",
        labels_path=root / "labels.geojson",
        regions_path=root / "regions.geojson",
        truth_path=root / "truth.json",
        truth_class_path=root / "truth_class.tif",
    )


def _expected_files(world: World, item_ids: Sequence[str]) -> Iterator[Path]:
    yield from (
        world.collection_path,
        world.items_path,
        world.labels_path,
        world.regions_path,
        world.truth_path,
        world.truth_class_path,
        world.truth_objects_path,
    )
    if world.spec.preset == "hard":
        yield from (world.root / name for name in HARD_FILES)
    for item_id in item_ids:
        for key in (*REFLECTANCE_BANDS, "scl"):
            yield world.root / _cog_href(item_id, key)


#: Writers of the worlds other than the easy one, by preset: ``writer(root, spec, grid,
#: progress=...) -> (region ids, STAC items)``. They build on this module's machinery, so they
#: register here (``estimator.demo`` imports them) instead of being imported by it.
PRESET_WRITERS: dict[str, Callable[..., tuple[list[str], list[dict[str, Any]]]]] = {}


def _write_world(root: Path, spec: WorldSpec, *, progress: bool) -> None:
    grid = Grid(spec.size_px, spec.origin_x, spec.origin_y, spec.epsg)
    if spec.preset != "easy":
        writer = PRESET_WRITERS.get(spec.preset)
        if writer is None:
            raise DemoWorldError(f"no writer for the '{spec.preset}' world preset; import estimator.demo first")
        regions, items = writer(root, spec, grid, progress=progress)
    else:
        land = build_landscape(grid, spec.coca_plots, _rng(spec, "landscape"))
        regions = _write_ground_truth(root, spec, land)
        acquisitions = _acquisitions(spec, grid, _rng(spec, "dates"))
        items = _write_images(root, spec, land, acquisitions, progress=progress)
    _write_stac(root, spec, items)
    # An easy world's record keeps its old form, so easy worlds stay byte-identical.
    spec_record = asdict(spec)
    if spec.preset == "easy":
        del spec_record["preset"]
    # Sky settings at their defaults are left out too, for the same reason.
    for key in ("clear_share", "overcast_share"):
        if spec_record[key] == WorldSpec.__dataclass_fields__[key].default:
            del spec_record[key]
    record = {
        "note": _SYNTHETIC_NOTE,
        "synthetic": True,
        "generator_version": generator_version(spec.preset),
        "spec": spec_record,
        "item_ids": [item["id"] for item in items],
        "region_ids": regions,
    }
    # Written last: its presence marks a complete world.
    _write_json(root / "world.json", record)


def _rng(spec: WorldSpec, stream: str, index: int = 0) -> np.random.Generator:
    """An independent random stream per purpose, so changing one leaves the others intact."""
    streams = {"landscape": 1, "labels": 2, "regions": 3, "dates": 4, "image": 5, "hard_sky": 6, "hard_image": 7}
    return np.random.default_rng(np.random.SeedSequence([spec.seed, streams[stream], index]))


def _replace_dir(src: Path, dst: Path) -> None:
    """Move a finished world into place; an older world at ``dst`` is removed afterwards."""
    stale = None
    if dst.exists():
        stale = dst.parent / f".{dst.name}.stale-{os.getpid()}-{secrets.token_hex(4)}"
        os.replace(dst, stale)
    os.replace(src, dst)
    if stale is not None:
        shutil.rmtree(stale, ignore_errors=True)


# --------------------------------------------------------------------------- ground truth files


def _write_ground_truth(root: Path, spec: WorldSpec, land: Landscape) -> list[str]:
    """Write truth_objects, labels, regions, truth_class.tif and truth.json."""
    grid = land.grid
    root.mkdir(parents=True)
    objects = [
        _feature(o.geometry, spec.epsg, {"object_id": o.object_id, "class": o.cls, "class_code": CLASS_CODE[o.cls]})
        for o in land.objects
    ]
    _write_json(root / "truth_objects.geojson", _collection(objects))

    label_rng = _rng(spec, "labels")
    labels = make_labels(land, label_rng)
    batches = _batches(labels, label_rng)
    label_features = [
        _feature(
            geom, spec.epsg, {"class": cls, "plot_id": f"demo-{cls}-{n:03d}", "batch": batch, "source": _LABEL_SOURCE}
        )
        for (cls, geom), (n, batch) in zip(labels, batches, strict=True)
    ]
    _write_json(root / "labels.geojson", _collection(label_features))

    regions = make_regions(grid, _rng(spec, "regions"))
    region_features = [
        _feature(r.geometry, spec.epsg, {"region_id": r.region_id, "name": r.name, "synthetic": True}) for r in regions
    ]
    _write_json(root / "regions.geojson", _collection(region_features))

    _write_cog(root / "truth_class.tif", land.class_raster, grid.transform, spec.epsg, "nearest")
    # Areas are measured on the polygons exactly as written, so a reader finds the same.
    written = [(f["properties"]["region_id"], shape(f["geometry"])) for f in region_features]
    areas = true_areas_ha(land.class_raster, grid, written)
    coca_polys = [shape(f["geometry"]) for f in objects if f["properties"]["class"] == "coca"]
    coca_union = shapely.union_all(coca_polys) if coca_polys else shapely.Polygon()
    truth = {
        "note": _SYNTHETIC_NOTE,
        "synthetic": True,
        "generator_version": GENERATOR_VERSION,
        "units": "ha",
        "classes": list(DEMO_CLASSES),
        "method": (
            f"True ground area: pixels of truth_class.tif (10 m grid, EPSG:{spec.epsg}) whose CENTRES "
            "fall inside a region polygon (regions.geojson reprojected), each weighted by its geodesic "
            "area on the WGS84 ellipsoid (pyproj.Geod, computed per 16 x 16 pixel block)."
        ),
        "world": areas["world"],
        "regions": {r.region_id: {"name": r.name, **areas[r.region_id]} for r in regions},
        "coca_polygon_area_ha": {
            "method": "geodesic area of the coca polygons of truth_objects.geojson (reference only)",
            "world": round(geodesic_area_ha(coca_union), 4),
            **{rid: round(geodesic_area_ha(coca_union.intersection(geom)), 4) for rid, geom in written},
        },
        "n_coca_plots": len(coca_polys),
    }
    _write_json(root / "truth.json", truth)
    return [r.region_id for r in regions]


def _batches(labels: Sequence[tuple[str, Any]], rng: np.random.Generator) -> list[tuple[int, int]]:
    """(number within class, batch) per label: about 60 % batch 1 and 40 % batch 2 per class."""
    out: list[tuple[int, int]] = [(0, 0)] * len(labels)
    for cls in DEMO_CLASSES:
        idx = [i for i, (c, _) in enumerate(labels) if c == cls]
        order = rng.permutation(len(idx))
        n_first = int(round(0.6 * len(idx)))
        for n, i in enumerate(idx):
            out[i] = (n + 1, 1 if order[n] < n_first else 2)
    return out


def _feature(geom: BaseGeometry, epsg: int, properties: dict[str, Any]) -> dict[str, Any]:
    """A GeoJSON Feature in lon/lat, counter-clockwise exteriors (RFC 7946), 1e-7 degrees."""
    lonlat = shapely.orient_polygons(to_lonlat(geom, epsg))
    return {"type": "Feature", "properties": properties, "geometry": _rounded(mapping(lonlat), 7)}


def _rounded(obj: Any, ndigits: int) -> Any:
    if isinstance(obj, float):
        return round(obj, ndigits)
    if isinstance(obj, (list, tuple)):
        return [_rounded(v, ndigits) for v in obj]
    if isinstance(obj, dict):
        return {k: _rounded(v, ndigits) for k, v in obj.items()}
    return obj


def _collection(features: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": features}


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- acquisitions


def _acquisitions(spec: WorldSpec, grid: Grid, rng: np.random.Generator) -> list[_Acquisition]:
    """Dates, platforms, sun and view angles and sky conditions of every acquisition."""
    start, end = dt.date.fromisoformat(spec.start), dt.date.fromisoformat(spec.end)
    span = (end - start).days
    centre = to_lonlat(shapely.box(*grid.bounds).centroid, spec.epsg)
    zone, band, square = _MGRS_TILE.match(spec.mgrs_tile).groups()  # type: ignore[union-attr]
    tile = f"{int(zone):02d}{band}{square}"
    out: list[_Acquisition] = []
    previous: dt.date | None = None
    # A fixed mix of skies, shuffled: by default 30 % nearly clear, 45 % broken, 25 %
    # overcast dates; with cirrus and cloud edges the SCL-derived cloud cover averages about 35 %.
    n_clear, n_overcast = round(spec.clear_share * spec.n_dates), round(spec.overcast_share * spec.n_dates)
    sky_kinds = rng.permutation(
        ["clear"] * n_clear + ["overcast"] * n_overcast + ["broken"] * (spec.n_dates - n_clear - n_overcast)
    )
    for i in range(spec.n_dates):
        day = start + dt.timedelta(days=round(i * span / max(spec.n_dates - 1, 1)))
        day += dt.timedelta(days=int(rng.integers(-2, 3)))
        day = min(max(day, start), end)
        if previous is not None and day <= previous:  # keep dates (and item ids) unique
            day = previous + dt.timedelta(days=1)
        previous = day
        # Sentinel-2 crosses this longitude around 10:30 local solar time, about 15:20 UTC.
        seconds = 15 * 3600 + 18 * 60 + rng.uniform(0.0, 600.0)
        when = dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(milliseconds=round(seconds * 1000))
        sun_az, sun_el = _sun_angles(when, centre.x, centre.y)
        platform = "sentinel-2a" if i % 2 == 0 else "sentinel-2b"
        # All three are drawn so that the later draws do not depend on the kind of sky.
        cloud = {"clear": rng.uniform(0.0, 0.05), "broken": rng.uniform(0.1, 0.4), "overcast": rng.uniform(0.55, 0.8)}[
            str(sky_kinds[i])
        ]
        cirrus = rng.uniform(0.03, 0.15) if rng.uniform() < 0.35 else 0.0
        height = rng.uniform(800.0, 2000.0)
        view_az = rng.normal(285.0, 4.0) if rng.uniform() < 0.5 else rng.normal(103.0, 4.0)
        incidence = rng.uniform(2.0, 10.0)
        # Some dates fall at the edge of the swath and miss a strip of the world.
        edge = (rng.uniform(0.80, 0.92), rng.uniform(-0.15, 0.15), bool(rng.uniform() < 0.5))
        swath_edge = edge if rng.uniform() < 0.15 else None
        out.append(
            _Acquisition(
                index=i,
                item_id=f"S2{platform[-1].upper()}_{tile}_{day:%Y%m%d}_0_L2A",
                platform=platform,
                datetime=when,
                baseline=BASELINE_OFFSET_VERSION if day >= BASELINE_OFFSET_FROM else _BASELINE_BEFORE,
                sun_azimuth=sun_az,
                sun_elevation=sun_el,
                view_azimuth=float(view_az),
                view_incidence=float(incidence),
                cloud_fraction=float(cloud),
                cirrus_fraction=float(cirrus),
                cloud_height_m=float(height),
                swath_edge=swath_edge,
            )
        )
    return out


def _sun_angles(when: dt.datetime, lon: float, lat: float) -> tuple[float, float]:
    """Solar azimuth (degrees clockwise from north) and elevation (NOAA approximation)."""
    doy = when.timetuple().tm_yday
    hour = when.hour + when.minute / 60 + when.second / 3600
    g = 2 * math.pi / 365 * (doy - 1 + (hour - 12) / 24)
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * math.cos(g)
        - 0.032077 * math.sin(g)
        - 0.014615 * math.cos(2 * g)
        - 0.040849 * math.sin(2 * g)
    )
    decl = (
        0.006918
        - 0.399912 * math.cos(g)
        + 0.070257 * math.sin(g)
        - 0.006758 * math.cos(2 * g)
        + 0.000907 * math.sin(2 * g)
        - 0.002697 * math.cos(3 * g)
        + 0.00148 * math.sin(3 * g)
    )
    hour_angle = math.radians((hour * 60 + eqtime + 4 * lon) / 4 - 180)
    phi = math.radians(lat)
    cos_zen = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(hour_angle)
    elevation = 90 - math.degrees(math.acos(max(-1.0, min(1.0, cos_zen))))
    azimuth = (
        math.degrees(
            math.atan2(math.sin(hour_angle), math.cos(hour_angle) * math.sin(phi) - math.tan(decl) * math.cos(phi))
        )
        + 180
    )
    return azimuth % 360, elevation


# --------------------------------------------------------------------------- pixels


@dataclass(frozen=True)
class _Sky:
    cloud: np.ndarray  # bool, opaque cloud
    opacity: np.ndarray  # 0..1 within clouds
    cirrus: np.ndarray  # 0..1 thin cirrus thickness, 0 outside
    shadow: np.ndarray  # bool, cloud shadow on the ground


def _sky(rng: np.random.Generator, size: int, acq: _Acquisition) -> _Sky:
    """Cloud, cirrus and shadow masks from smoothed noise; shadows cast away from the sun."""
    low = -(-size // 8)  # noise is drawn at 80 m and interpolated, which is cheap and smooth

    def smooth_field(sigma_m: float) -> np.ndarray:
        f = ndimage.gaussian_filter(rng.standard_normal((low, low)), sigma_m / 80.0, mode="wrap")
        f = (f - f.mean()) / (f.std() or 1.0)
        return ndimage.zoom(f, size / low, order=1, grid_mode=True, mode="nearest")[:size, :size].astype(np.float32)

    # Always draw every field so a date's other random numbers do not depend on its cloudiness.
    base = 0.75 * smooth_field(600.0) + 0.35 * smooth_field(150.0)
    high = smooth_field(1200.0)
    if acq.cloud_fraction > 0.0:
        threshold = float(np.quantile(base, 1.0 - acq.cloud_fraction))
        cloud = base > threshold
        opacity = np.clip((base - threshold) / 0.8, 0.0, 1.0) * cloud
    else:
        cloud = np.zeros((size, size), dtype=bool)
        opacity = np.zeros((size, size), dtype=np.float32)
    if acq.cirrus_fraction > 0.0:
        threshold = float(np.quantile(high, 1.0 - acq.cirrus_fraction))
        cirrus = np.clip((high - threshold) / 0.5, 0.0, 1.0) * (high > threshold)
    else:
        cirrus = np.zeros((size, size), dtype=np.float32)
    # The shadow lies at distance h / tan(elevation) from its cloud, opposite the sun.
    reach_px = acq.cloud_height_m / math.tan(math.radians(max(acq.sun_elevation, 5.0))) / 10.0
    az = math.radians(acq.sun_azimuth)
    d_row, d_col = round(math.cos(az) * reach_px), round(-math.sin(az) * reach_px)
    shadow = _shift(opacity > 0.25, d_row, d_col) & ~cloud  # thin cloud edges cast none
    return _Sky(cloud, opacity.astype(np.float32), cirrus.astype(np.float32), shadow)


def _shift(mask: np.ndarray, d_row: int, d_col: int) -> np.ndarray:
    """``mask`` moved by (d_row, d_col) pixels, filled with False."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    if abs(d_row) >= h or abs(d_col) >= w:
        return out
    src = mask[max(0, -d_row) : h - max(0, d_row), max(0, -d_col) : w - max(0, d_col)]
    out[max(0, d_row) : max(0, d_row) + src.shape[0], max(0, d_col) : max(0, d_col) + src.shape[1]] = src
    return out


def _block_mean(a: np.ndarray) -> np.ndarray:
    """2 x 2 block average: the 10 m field seen at 20 m."""
    a = a.astype(np.float32, copy=False)
    return (a[..., 0::2, 0::2] + a[..., 1::2, 0::2] + a[..., 0::2, 1::2] + a[..., 1::2, 1::2]) * np.float32(0.25)


def _swath_nodata(size20: int, edge: tuple[float, float, bool] | None) -> np.ndarray:
    """Pixels (20 m) beyond the swath edge, nearly north-south like Sentinel-2's."""
    if edge is None:
        return np.zeros((size20, size20), dtype=bool)
    position, tilt, right = edge
    frac = (np.arange(size20) + 0.5) / size20
    col, row = np.meshgrid(frac, frac)
    if right:
        return col > position + tilt * (row - 0.5)
    return col < 1.0 - position + tilt * (row - 0.5)


def _scene_classification(refl: np.ndarray, sky: _Sky, nodata20: np.ndarray) -> np.ndarray:
    """A Sen2Cor-like SCL at 20 m from the final reflectance and the sky masks."""
    cloud = _block_mean(sky.cloud.astype(np.float32))
    opacity = _block_mean(sky.opacity)
    cirrus = _block_mean((sky.cirrus > 0).astype(np.float32))
    shadow = _block_mean(sky.shadow.astype(np.float32))
    green, red, nir = (_block_mean(refl[REFLECTANCE_BANDS.index(b)]) for b in ("green", "red", "nir"))
    ndvi = (nir - red) / (nir + red + 1e-6)
    ndwi = (green - nir) / (green + nir + 1e-6)
    scl = np.full(ndvi.shape, SCL.NOT_VEGETATED, dtype=np.uint8)
    scl[ndvi > 0.4] = SCL.VEGETATION
    scl[ndwi > 0.05] = SCL.WATER
    scl[shadow >= 0.5] = SCL.CLOUD_SHADOW
    scl[cirrus >= 0.5] = SCL.THIN_CIRRUS
    scl[cloud >= 0.25] = SCL.CLOUD_MEDIUM
    scl[(cloud >= 0.5) & (opacity >= 0.15)] = SCL.CLOUD_HIGH
    scl[nodata20] = SCL.NO_DATA
    return scl


def _encode(refl: np.ndarray, nodata: np.ndarray, offset_dn: int) -> np.ndarray:
    """L2A digital numbers: round(reflectance * 10000) (+ the BOA offset), 0 = nodata."""
    dn = np.clip(np.rint(refl * 10000.0) + offset_dn, 1, 65535).astype(np.uint16)
    dn[nodata] = 0
    return dn


def _render(root: Path, spec: WorldSpec, land: Landscape, acq: _Acquisition) -> tuple[np.ndarray, BaseGeometry]:
    """Make and write one date's COGs; return its SCL histogram and valid-data footprint."""
    rng = _rng(spec, "image", acq.index)
    grid = land.grid
    refl = ground_reflectance(land, acq.datetime.date(), rng)
    # Residual atmospheric correction error: a small gain per band and date.
    refl *= rng.normal(1.0, 0.015, (len(REFLECTANCE_BANDS), 1, 1)).astype(np.float32)
    sky = _sky(rng, grid.size_px, acq)
    refl[:, sky.shadow] *= _SHADOW[:, None]
    refl += _CIRRUS[:, None, None] * (0.4 + 0.6 * sky.cirrus) * (sky.cirrus > 0)
    alpha = np.where(sky.cloud, 0.55 + 0.45 * sky.opacity, 0.0).astype(np.float32)
    refl = refl * (1.0 - alpha) + alpha * (_CLOUD[:, None, None] * (0.8 + 0.3 * sky.opacity))

    nodata20 = _swath_nodata(grid.size_px // 2, acq.swath_edge)
    scl = _scene_classification(refl, sky, nodata20)
    return _write_date(root, spec, grid, acq, refl, scl, nodata20)


def _write_date(
    root: Path, spec: WorldSpec, grid: Grid, acq: _Acquisition, refl: np.ndarray, scl: np.ndarray, nodata20: np.ndarray
) -> tuple[np.ndarray, BaseGeometry]:
    """Encode and write one date's band and SCL COGs; return its SCL histogram and footprint."""
    nodata10 = nodata20.repeat(2, axis=0).repeat(2, axis=1)
    offset = BOA_OFFSET_DN if acq.offset_applied else 0
    transform20 = grid.transform @ Affine.scale(2)
    for b, key in enumerate(REFLECTANCE_BANDS):
        if NATIVE_RESOLUTION[key] == 10:
            dn, transform = _encode(refl[b], nodata10, offset), grid.transform
        else:
            dn, transform = _encode(_block_mean(refl[b]), nodata20, offset), transform20
        _write_cog(root / _cog_href(acq.item_id, key), dn, transform, spec.epsg, "average")
    _write_cog(root / _cog_href(acq.item_id, "scl"), scl, transform20, spec.epsg, "nearest")

    footprint: BaseGeometry = shapely.box(*grid.bounds)
    if nodata20.any():
        valid = [shape(g) for g, v in raster_shapes((~nodata20).astype(np.uint8), transform=transform20) if v == 1]
        footprint = shapely.union_all(valid).simplify(20.0)
    return np.bincount(scl.ravel(), minlength=len(SCL)), footprint


def _cog_href(item_id: str, key: str) -> str:
    return f"cogs/{item_id}/{S2_BAND_ID[key]}.tif"


def _write_cog(path: Path, data: np.ndarray, transform: Affine, epsg: int, resampling: str) -> None:
    """One-band COG: DEFLATE, 256 px tiles, overviews down to about 64 px, nodata 0."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = min(data.shape)
    profile = {
        "driver": "COG", "count": 1, "dtype": data.dtype.name, "width": data.shape[1], "height": data.shape[0],
        "crs": CRS.from_epsg(epsg), "transform": transform, "nodata": 0,
        "compress": "DEFLATE", "predictor": "YES" if data.dtype == np.uint16 else "NO", "blocksize": 256,
        # Small test worlds would get no overview from GDAL's default; force at least one.
        "overview_count": max(1, int(math.log2(size / 64))), "overview_resampling": resampling,
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def _write_images(
    root: Path, spec: WorldSpec, land: Any, acquisitions: Sequence[_Acquisition], *, progress: bool, render: Any = None
) -> list[dict[str, Any]]:
    """Render every date (two at a time: numpy and GDAL release the GIL) and build its Item."""
    results: dict[int, tuple[np.ndarray, BaseGeometry]] = {}
    workers = max(1, min(2, os.cpu_count() or 1))
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=len(acquisitions), desc="SYNTHETIC demo world", unit="date", disable=not progress) as bar,
    ):
        futures = {pool.submit(render or _render, root, spec, land, acq): acq.index for acq in acquisitions}
        try:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return [_item(spec, land.grid, acq, *results[acq.index]) for acq in acquisitions]


# --------------------------------------------------------------------------- STAC


def _stac_time(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def _asset(key: str, item_id: str | None, grid: Grid | None, offset: float | None) -> dict[str, Any]:
    """An Earth Search v1 style asset; without item/grid it is the Collection's item_assets entry."""
    asset: dict[str, Any] = {} if item_id is None else {"href": _cog_href(item_id, key)}
    asset["type"] = _COG_MEDIA_TYPE
    res = NATIVE_RESOLUTION[key]
    if key == "scl":
        asset["title"] = "Scene classification map (SCL)"
        raster: dict[str, Any] = {"nodata": 0, "data_type": "uint8", "spatial_resolution": res}
    else:
        title, common, centre, fwhm = _BAND_INFO[key]
        asset["title"] = title
        asset["eo:bands"] = [
            {"name": S2_BAND_ID[key], "common_name": common, "center_wavelength": centre, "full_width_half_max": fwhm}
        ]
        raster = {"nodata": 0, "data_type": "uint16", "spatial_resolution": res, "scale": 0.0001}
        if offset is not None:
            raster["offset"] = offset
    asset["gsd"] = res
    if grid is not None:
        n = grid.size_px * 10 // res
        asset["proj:shape"] = [n, n]
        asset["proj:transform"] = [res, 0, grid.origin_x, 0, -res, grid.origin_y]
    asset["raster:bands"] = [raster]
    asset["roles"] = ["data"] if key == "scl" else ["data", "reflectance"]
    return asset


def _item(
    spec: WorldSpec, grid: Grid, acq: _Acquisition, scl_counts: np.ndarray, footprint: BaseGeometry
) -> dict[str, Any]:
    """An Earth Search v1 style Item, every statistic computed from the SCL written."""
    zone, band, square = _MGRS_TILE.match(spec.mgrs_tile).groups()  # type: ignore[union-attr]
    tile = f"{int(zone):02d}{band}{square}"
    lonlat = shapely.orient_polygons(to_lonlat(footprint, spec.epsg))
    centroid = lonlat.centroid
    total = int(scl_counts.sum())
    valid = total - int(scl_counts[SCL.NO_DATA])

    def pct(n: float) -> float:
        return round(100.0 * n / valid, 6) if valid else 0.0

    sat = "S2" + acq.platform[-1].upper()
    acquired = acq.datetime
    generated = acquired + dt.timedelta(hours=1, minutes=12, seconds=31)
    created = acquired + dt.timedelta(hours=2, minutes=47, milliseconds=662)
    base = acq.baseline
    orbit = _absolute_orbit(acq.platform, acquired)
    t_acq, t_gen = f"{acquired:%Y%m%dT%H%M%S}", f"{generated:%Y%m%dT%H%M%S}"
    scl_pct = {name: pct(int(scl_counts[code])) for name, code in _SCL_PERCENTAGES.items()}
    properties: dict[str, Any] = {
        "created": _stac_time(created),
        "platform": acq.platform,
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": pct(sum(int(scl_counts[c]) for c in SCL_CLOUD)),
        "proj:epsg": spec.epsg,
        "proj:centroid": {"lat": round(centroid.y, 5), "lon": round(centroid.x, 5)},
        "mgrs:utm_zone": int(zone),
        "mgrs:latitude_band": band,
        "mgrs:grid_square": square,
        "grid:code": f"MGRS-{tile}",
        "view:azimuth": acq.view_azimuth,
        "view:incidence_angle": acq.view_incidence,
        "view:sun_azimuth": acq.sun_azimuth,
        "view:sun_elevation": acq.sun_elevation,
        "s2:tile_id": f"{sat}_OPER_MSI_L2A_TL_{sat[1:]}PS_{t_gen}_A{orbit:06d}_T{tile}_N{base}",
        "s2:degraded_msi_data_percentage": 0,
        "s2:nodata_pixel_percentage": round(100.0 * int(scl_counts[SCL.NO_DATA]) / total, 6),
        **scl_pct,
        "s2:product_type": "S2MSI2A",
        "s2:processing_baseline": base,
        "s2:product_uri": f"{sat}_MSIL2A_{t_acq}_N{base.replace('.', '')}_R039_T{tile}_{t_gen}.SAFE",
        "s2:generation_time": _stac_time(generated),
        "s2:datatake_id": f"G{sat}_{t_acq}_{orbit:06d}_N{base}",
        "s2:datatake_type": "INS-NOBS",
        "s2:datastrip_id": f"{sat}_OPER_MSI_L2A_DS_{sat[1:]}PS_{t_gen}_S{t_acq}_N{base}",
        "s2:reflectance_conversion_factor": _sun_distance_factor(acquired),
        "datetime": _stac_time(acquired),
        "s2:sequence": "0",
        "s2:mgrs_tile": tile,
        "earthsearch:boa_offset_applied": acq.offset_applied,
        "processing:software": {"coca-estimator-demo-world": generator_version(spec.preset)},
        "updated": _stac_time(created),
        "demo:synthetic": True,
    }
    offset = round(-BOA_OFFSET_DN * 0.0001, 10) if acq.offset_applied else 0
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": list(_STAC_EXTENSIONS),
        "id": acq.item_id,
        "geometry": _rounded(mapping(lonlat), 9),
        "bbox": [round(v, 6) for v in lonlat.bounds],
        "properties": properties,
        "links": [{"rel": "collection", "type": "application/json", "href": "collection.json"}],
        "assets": {key: _asset(key, acq.item_id, grid, offset) for key in (*REFLECTANCE_BANDS, "scl")},
        "collection": _COLLECTION_ID,
    }


def _absolute_orbit(platform: str, when: dt.datetime) -> int:
    """Approximate absolute orbit number (14 + 3/10 orbits a day since the first orbit)."""
    first = (
        dt.datetime(2015, 6, 23, tzinfo=dt.UTC) if platform == "sentinel-2a" else dt.datetime(2017, 3, 7, tzinfo=dt.UTC)
    )
    return 1 + int((when - first).total_seconds() / 86400.0 * 14.3)


def _sun_distance_factor(when: dt.datetime) -> float:
    """Sentinel-2's reflectance conversion factor, 1 / d^2 with d the Sun-Earth distance in AU."""
    doy = when.timetuple().tm_yday
    return 1.0 / (1.0 - 0.01672 * math.cos(math.radians(0.9856 * (doy - 4)))) ** 2


def _write_stac(root: Path, spec: WorldSpec, items: Sequence[dict[str, Any]]) -> None:
    """Write the Collection (extent from the items) and items.ndjson."""
    bboxes = np.array([item["bbox"] for item in items])
    times = sorted(item["properties"]["datetime"] for item in items)
    keys = (*REFLECTANCE_BANDS, "scl")
    collection = {
        "type": "Collection",
        "id": _COLLECTION_ID,
        "stac_version": "1.0.0",
        "title": "Sentinel-2 Level-2A (SYNTHETIC demo)",
        "description": (
            "SYNTHETIC data for the coca estimator's demo: a made-up landscape imaged like "
            "Sentinel-2 L2A and laid out like Element84 Earth Search v1. These are NOT "
            "Sentinel-2 observations. Digital numbers carry the processing-baseline 04.00 "
            "offset from 2022-01-25 on; each item's raster:bands scale/offset say how to "
            "convert them to reflectance."
        ),
        "links": [],
        "stac_extensions": [
            "https://stac-extensions.github.io/item-assets/v1.0.0/schema.json",
            "https://stac-extensions.github.io/view/v1.0.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
        ],
        "item_assets": {key: _asset(key, None, None, None) for key in keys},
        "extent": {
            "spatial": {
                "bbox": [
                    [
                        float(bboxes[:, 0].min()),
                        float(bboxes[:, 1].min()),
                        float(bboxes[:, 2].max()),
                        float(bboxes[:, 3].max()),
                    ]
                ]
            },
            "temporal": {"interval": [[times[0], times[-1]]]},
        },
        "license": "CC0-1.0",
        "keywords": ["sentinel", "synthetic", "demo"],
        "providers": [
            {"name": "coca estimator demo generator (synthetic)", "roles": ["producer", "processor", "host"]}
        ],
        "summaries": {
            "platform": sorted({item["properties"]["platform"] for item in items}),
            "constellation": ["sentinel-2"],
            "instruments": ["msi"],
            "gsd": [10, 20],
        },
        "demo:synthetic": True,
        "demo:generator_version": generator_version(spec.preset),
    }
    _write_json(root / "stac" / "collection.json", collection)
    with (root / "stac" / "items.ndjson").open("w", encoding="utf-8") as fh:
        for item in sorted(items, key=lambda i: i["properties"]["datetime"]):
            fh.write(json.dumps(item, separators=(",", ":"), ensure_ascii=False) + "\n")
