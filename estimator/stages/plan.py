"""Plan stage (pure): from STAC metadata and regions to items, offsets, grid and tiles.

No network and no pixels: a plan is built from Item dicts and region geometries and can be
tested from JSON fixtures in milliseconds. The loader executes it.

Offsets: odc-stac does not apply ``raster:bands`` scale/offset, so the plan records them per
item and band. When an item carries none (Planetary Computer), processing baseline >= 04.00
means DN - 1000. Metadata decides, never the acquisition date: reprocessed old scenes can
carry the offset too.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import shapely
from odc.geo.geobox import GeoBox, GeoboxTiles
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from estimator.bands import BASELINE_OFFSET_VERSION, BOA_OFFSET_DN, REFLECTANCE_BANDS
from estimator.errors import ConfigError
from estimator.grid import make_grid, utm_crs_for
from estimator.regions.geometry import Region, to_crs
from estimator.stages.costs import BYTES_PER_PX_SLICE
from estimator.warnings import SceneCoverageWarning

__all__ = ["ItemInfo", "Plan", "Tile", "band_scaling", "group_items", "item_info", "make_plan", "warn_uncovered_regions"]

_DEFAULT_SCALE = 1e-4


@dataclass(frozen=True)
class ItemInfo:
    """What the pipeline needs to know about one scene."""

    id: str
    datetime: dt.datetime
    solar_day: dt.date
    """Local solar date at the scene centre (groups same-day overlapping tiles)."""
    scaling: tuple[tuple[float, float], ...]
    """(scale, offset) per band of ``REFLECTANCE_BANDS``: reflectance = DN*scale + offset."""
    processing_baseline: str | None
    cloud_cover: float | None
    footprint: BaseGeometry
    """Data footprint in lon/lat."""
    tile: str | None
    """MGRS tile id when the item says so."""
    platform: str | None = None
    updated: str = ""
    """When the item was (re)processed, as the catalog says; breaks ties between duplicates."""


@dataclass(frozen=True)
class Tile:
    """One unit of work on the output grid."""

    id: str
    """``"r{row}c{col}"`` in tile units; stable across reruns of the same job."""
    geobox: GeoBox
    groups: tuple[tuple[str, ...], ...]
    """Item ids per time slice (only slices with an item touching this tile)."""


@dataclass(frozen=True)
class Plan:
    """Everything needed to load and process a job, decided from metadata."""

    grid: GeoBox
    tiles: tuple[Tile, ...]
    items: Mapping[str, ItemInfo]
    groups: tuple[tuple[str, ...], ...]
    """Time slices: item ids sharing a solar day and the same scaling, in time order."""
    chunk_size: int
    duplicates: Mapping[str, str] = field(default_factory=dict)
    """Items dropped as duplicates -> the item kept (see :func:`dedupe_items`)."""
    provider: str = "earth-search"
    """Provider of the items (configs/providers.yaml): decides URL signing at load time."""


def _baseline_key(v: str | None) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in str(v).split("."))
    except ValueError:
        return (0,)


def band_scaling(item: Mapping[str, Any], band: str) -> tuple[float, float]:
    """(scale, offset) turning a band's DN into reflectance, from the item's metadata."""
    asset = (item.get("assets") or {}).get(band)
    if asset is None:
        raise ConfigError(f"item {item.get('id')} has no asset '{band}'; is this a Sentinel-2 L2A collection?")
    rb = (asset.get("raster:bands") or [{}])[0]
    if "scale" in rb or "offset" in rb:
        return float(rb.get("scale", 1.0)), float(rb.get("offset", 0.0))
    baseline = (item.get("properties") or {}).get("s2:processing_baseline")
    offset = -BOA_OFFSET_DN * _DEFAULT_SCALE if _baseline_key(baseline) >= _baseline_key(BASELINE_OFFSET_VERSION) else 0.0
    return _DEFAULT_SCALE, offset


def _parse_dt(s: str) -> dt.datetime:
    d = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return d if d.tzinfo else d.replace(tzinfo=dt.UTC)


def item_info(item: Mapping[str, Any]) -> ItemInfo:
    """Extract an :class:`ItemInfo` from a STAC Item dict."""
    props = item.get("properties") or {}
    when = _parse_dt(props["datetime"])
    geom = shape(item["geometry"])
    lon = geom.centroid.x
    solar = (when + dt.timedelta(hours=lon / 15.0)).date()
    tile = props.get("s2:mgrs_tile") or props.get("grid:code", "").removeprefix("MGRS-") or None
    return ItemInfo(
        id=str(item["id"]),
        datetime=when,
        solar_day=solar,
        scaling=tuple(band_scaling(item, b) for b in REFLECTANCE_BANDS),
        processing_baseline=props.get("s2:processing_baseline"),
        cloud_cover=props.get("eo:cloud_cover"),
        footprint=geom,
        tile=tile,
        platform=props.get("platform"),
        updated=str(props.get("updated") or props.get("created") or ""),
    )


def dedupe_items(infos: Iterable[ItemInfo]) -> tuple[list[ItemInfo], dict[str, str]]:
    """Drop duplicate scenes: the same platform, MGRS tile and acquisition time (to the
    second) served twice, e.g. a reprocessed copy beside the original or one granule from two
    ground stations. Rule: keep the highest processing baseline, then the most recently
    updated item, then the greatest id. Returns the kept items and ``{dropped: kept}``.
    """
    best: dict[tuple[object, ...], ItemInfo] = {}
    dropped: dict[str, str] = {}

    def rank(i: ItemInfo) -> tuple[object, ...]:
        return (_baseline_key(i.processing_baseline), i.updated, i.id)

    for info in infos:
        if info.tile is None:
            best[("id", info.id)] = info
            continue
        key = (info.platform, info.tile, info.datetime.replace(microsecond=0))
        other = best.get(key)
        if other is None:
            best[key] = info
            continue
        keep, drop = (info, other) if rank(info) > rank(other) else (other, info)
        best[key] = keep
        dropped[drop.id] = keep.id
    # a dropped item may itself have displaced an earlier one: point everything at the winner
    for d, k in list(dropped.items()):
        while k in dropped:
            k = dropped[k]
        dropped[d] = k
    return list(best.values()), dropped


def group_items(infos: Iterable[ItemInfo]) -> tuple[tuple[str, ...], ...]:
    """Time slices: same solar day and same scaling, ordered by time then id.

    Items of one slice are fused pixel by pixel (first valid wins), so overlapping tiles or
    UTM zones imaged on the same day count as one observation, never two.
    """
    buckets: dict[tuple[dt.date, tuple[tuple[float, float], ...]], list[ItemInfo]] = {}
    for info in infos:
        buckets.setdefault((info.solar_day, info.scaling), []).append(info)
    ordered = sorted(buckets.values(), key=lambda g: (min(i.datetime for i in g), min(i.id for i in g)))
    return tuple(tuple(i.id for i in sorted(g, key=lambda i: (i.datetime, i.id))) for g in ordered)


def make_plan(
    items: Sequence[Mapping[str, Any]],
    area: Sequence[Region] | BaseGeometry,
    *,
    resolution: float,
    crs: str | None = None,
    tile_size: int = 2048,
    chunk_size: int = 1024,
    provider: str = "earth-search",
) -> Plan:
    """Build the plan for ``items`` over ``area`` (regions, or one lon/lat geometry).

    The grid covers the area's bounding box in ``crs`` (default: the UTM zone of the area's
    centroid); only tiles that intersect the area are kept.
    """
    geom = area if isinstance(area, BaseGeometry) else shapely.union_all([r.geometry for r in area])
    if crs is None:
        c = geom.centroid
        crs = utm_crs_for(c.x, c.y)
    area_xy = to_crs(geom, crs)
    grid = make_grid(area_xy, crs, resolution)
    kept, duplicates = dedupe_items(item_info(it) for it in items)
    infos = {i.id: i for i in kept}
    groups = group_items(infos.values())

    foot_xy = {k: to_crs(v.footprint, crs) for k, v in infos.items()}
    tiles = []
    gbt = GeoboxTiles(grid, (tile_size, tile_size))
    ny, nx = gbt.shape.yx
    for row in range(ny):
        for col in range(nx):
            gb = cast(GeoBox, gbt[row, col])  # a tile of a GeoBox is a GeoBox
            box = shapely.box(*gb.boundingbox)
            if not box.intersects(area_xy):
                continue
            tile_groups = tuple(
                g2 for g2 in (tuple(i for i in g if foot_xy[i].intersects(box)) for g in groups) if g2
            )
            tiles.append(Tile(f"r{row}c{col}", gb, tile_groups))
    max_slices = max((len(t.groups) for t in tiles), default=1)
    return Plan(
        grid=grid,
        tiles=tuple(tiles),
        items=infos,
        groups=groups,
        chunk_size=auto_chunk_size(min(chunk_size, tile_size), max_slices),
        duplicates=duplicates,
        provider=provider,
    )


#: Memory one dask chunk may take while its features are computed.
CHUNK_MEMORY_BYTES = 768 * 2**20


def auto_chunk_size(requested: int, n_slices: int, budget: int = CHUNK_MEMORY_BYTES) -> int:
    """The chunk edge, shrunk (in steps of 64 px, not below 128) so that a chunk of
    ``n_slices`` dates fits ``budget``: a year of Sentinel-2 (70+ dates) at 1024 px would
    need about 9 GB per chunk."""
    fit = int((budget / (max(n_slices, 1) * BYTES_PER_PX_SLICE)) ** 0.5) // 64 * 64
    return max(128, min(requested, fit))


def warn_uncovered_regions(regions: Sequence[Region], items: Sequence[Mapping[str, Any]]) -> list[str]:
    """Warn about (and return) the regions no item footprint touches: they will be reported
    as unobserved, which a user should know before reading a 0 ha figure."""
    footprints = [shape(i["geometry"]) for i in items if i.get("geometry")]
    missed = [r.id for r in regions if not any(f.intersects(r.geometry) for f in footprints)]
    if missed:
        warnings.warn(
            f"no scene of the search touches region(s) {', '.join(missed)}: they will be reported as unobserved; "
            "check the regions and the collection",
            SceneCoverageWarning,
            stacklevel=2,
        )
    return missed
