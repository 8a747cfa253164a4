"""``estimator plan``: what a job would do, without reading a pixel.

Searches (or reads a saved item list), builds the plan, and reports items per tile and
date, the output grid and chunks, pixels and bytes to read, memory per worker and a time
forecast from the measured cost figures in :mod:`estimator.stages.costs`.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import shapely
import shapely.geometry

from estimator.bands import NATIVE_RESOLUTION, REFLECTANCE_BANDS
from estimator.config import PeriodConfig, StacConfig
from estimator.errors import ConfigError, NoScenesFoundError
from estimator.regions.geometry import Region, rasterize_regions
from estimator.stages import costs
from estimator.stages.plan import Plan
from estimator.stages.providers import get_provider, normalize_item
from estimator.warnings import SceneCoverageWarning

__all__ = ["format_summary", "read_items", "save_items", "select_items", "summarize"]


def read_items(path: Path) -> list[pystac.Item]:
    """Items from a saved FeatureCollection/ItemCollection JSON (``plan --save-items``)."""
    try:
        data = json.loads(Path(path).read_text())
        feats = data["features"] if isinstance(data, dict) else data
        return [pystac.Item.from_dict(_offline(f)) for f in feats]
    except FileNotFoundError:
        raise ConfigError(f"item list not found: {path}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path} is not a saved STAC item list ({type(e).__name__}); write one with --save-items") from None


def select_items(
    items: Sequence[pystac.Item], regions: Sequence[Region], period: PeriodConfig, stac: StacConfig
) -> list[pystac.Item]:
    """The saved items a job would use, as a search would give them: normalised from the
    job's provider, inside its period, touching its regions and under its cloud limit.

    Items left out for period or region are counted in a warning; when none is left, a
    :class:`NoScenesFoundError` says why, instead of a plan of zero reads.
    """
    provider = get_provider(stac.provider)
    area = shapely.union_all([r.geometry for r in regions])
    kept: list[pystac.Item] = []
    outside = {"period": 0, "regions": 0, "cloud": 0}
    for item in items:
        item = pystac.Item.from_dict(normalize_item(item.to_dict(transform_hrefs=False), provider))
        when = item.datetime or item.common_metadata.start_datetime
        if when is None or not period.start <= when.date() <= period.end:
            outside["period"] += 1
        elif item.geometry is None or not shapely.geometry.shape(item.geometry).intersects(area):
            outside["regions"] += 1
        elif float(item.properties.get("eo:cloud_cover") or 0) > stac.max_cloud_cover:
            outside["cloud"] += 1
        else:
            kept.append(item)
    why = ", ".join(
        f"{n} {what}" for n, what in (
            (outside["period"], f"outside the period {period.label}"), (outside["regions"], "not touching the regions"),
            (outside["cloud"], f"above max_cloud_cover={stac.max_cloud_cover:g}"),
        ) if n
    )
    if not kept:
        raise NoScenesFoundError(
            f"none of the {len(items)} saved item(s) can serve this job ({why}); save items for this job's "
            "regions and period with `plan JOB --save-items FILE`"
        )
    if outside["period"] or outside["regions"]:
        warnings.warn(f"{len(items) - len(kept)} of {len(items)} saved item(s) left out: {why}", SceneCoverageWarning, stacklevel=2)
    return kept


#: Links that point back at the API; a saved list must not need it to be read again.
_API_LINKS = {"self", "root", "parent", "collection"}


def _offline(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "links": [ln for ln in item.get("links", []) if ln.get("rel") not in _API_LINKS]}


def save_items(path: Path, items: Sequence[pystac.Item]) -> None:
    """Write items as a FeatureCollection readable offline by :func:`read_items`."""
    from estimator.location import write_json

    feats = [_offline(i.to_dict(include_self_link=False, transform_hrefs=False)) for i in items]
    write_json(path, {"type": "FeatureCollection", "features": feats})


def summarize(
    plan: Plan,
    regions: Sequence[Region],
    *,
    workers: int = 1,
    threads_per_worker: int = 2,
    classify_cost: costs.ClassifyCost | None = None,
    read_cost: costs.ReadCost | None = None,
) -> dict[str, Any]:
    """Numbers a user needs before starting a job.

    ``classify_cost`` is the job's model timed while planning
    (:func:`estimator.stages.costs.measure_classify`); without it the demo model's constant
    stands in, and the summary says so. ``read_cost`` likewise: a read of the job's own
    scenes timed while planning (:func:`estimator.stages.load.measure_read`), or the
    constant.
    """
    cc = classify_cost or costs.demo_classify_cost("no model was timed")
    rc = read_cost or costs.constant_read_cost("no read was timed")
    res = abs(plan.grid.affine.a)
    per_tile = []
    tile_px = region_px = reads_px = 0
    max_slices = 0
    for t in plan.tiles:
        ny, nx = t.geobox.shape.yx
        inside = int(rasterize_regions(regions, t.geobox).any(axis=0).sum())
        n = len(t.groups)
        max_slices = max(max_slices, n)
        tile_px += ny * nx
        region_px += inside
        reads_px += ny * nx * n
        per_tile.append({"tile": t.id, "pixels": ny * nx, "region_pixels": inside, "slices": n})
    # bytes at native resolution: 10 m bands full size, 20 m bands a quarter (uint16; SCL uint8)
    px_m2 = res * res
    native_bytes = 0.0
    for band in (*REFLECTANCE_BANDS, "scl"):
        scale = px_m2 / NATIVE_RESOLUTION[band] ** 2
        native_bytes += reads_px * scale * (1 if band == "scl" else 2)
    days = Counter(i.solar_day.isoformat() for i in plan.items.values())
    tiles = Counter(i.tile or "?" for i in plan.items.values())
    cores = max(1, workers * threads_per_worker)
    read_s = reads_px / (rc.mpix_per_s * 1e6) / cores
    # The features kernel's cost grows with the dates of each tile's pixels (it sorts them):
    # pixel x date reads / 18, not every tile at the most dates any tile has (tiles on two
    # orbits' overlap have twice the dates of the others).
    feat_s = reads_px / 18 / (costs.FEATURES_MPIX_PER_S_18 * 1e6) / cores
    cls_s = region_px / (cc.mpix_per_s * 1e6) / cores
    chunk_mem = plan.chunk_size**2 * max(max_slices, 1) * costs.BYTES_PER_PX_SLICE
    return {
        "grid": {
            "crs": str(plan.grid.crs),
            "resolution": res,
            "shape": list(plan.grid.shape.yx),
            "tiles_kept": len(plan.tiles),
            "chunk_size": plan.chunk_size,
        },
        "items": len(plan.items),
        "duplicates_dropped": len(plan.duplicates),
        "time_slices": len(plan.groups),
        "items_per_mgrs_tile": dict(sorted(tiles.items())),
        "items_per_date": dict(sorted(days.items())),
        "pixels": {"tile_pixels": tile_px, "region_pixels": region_px, "pixel_reads": reads_px},
        "bytes_to_read": int(native_bytes),
        "memory_per_worker_bytes": int(costs.WORKER_BASE_BYTES + chunk_mem * threads_per_worker),
        "threads_per_worker": threads_per_worker,
        "forecast_seconds": {"read": round(read_s), "features": round(feat_s), "classify": round(cls_s), "total": round(read_s + feat_s + cls_s)},
        "forecast_core_hours": {
            "read": read_s * cores / 3600, "features": feat_s * cores / 3600, "classify": cls_s * cores / 3600,
            "total": (read_s + feat_s + cls_s) * cores / 3600,
        },
        "cost_figures": {
            "read_mpix_per_s_per_core": rc.mpix_per_s,
            "read_measured": rc.measured,
            "read_source": rc.source,
            "features_mpix_per_s_per_core_18_dates": costs.FEATURES_MPIX_PER_S_18,
            "classify_mpix_per_s_per_core": cc.mpix_per_s,
            "classify_measured": cc.measured,
            "classify_source": cc.source,
        },
        "cores_assumed": cores,
        "workers": workers,
        "tiles": per_tile,
    }


def _human(n: float, unit: str = "B") -> str:
    for p in ("", "K", "M", "G", "T"):
        if abs(n) < 1024 or p == "T":
            return f"{n:,.1f} {p}{unit}"
        n /= 1024
    return f"{n} {unit}"


def _duration(s: float) -> str:
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def format_summary(d: dict[str, Any], regions: Sequence[Region]) -> str:
    g = d["grid"]
    f = d["forecast_seconds"]
    ch = d["forecast_core_hours"]
    c = d["cost_figures"]
    area = shapely.union_all([r.geometry for r in regions]).bounds
    lines = [
        f"regions: {', '.join(r.id for r in regions)} (lon/lat bbox {np.round(area, 3).tolist()})",
        f"grid: {g['crs']}, {g['resolution']:g} m, {g['shape'][0]:,} x {g['shape'][1]:,} px; "
        f"{g['tiles_kept']} tile(s) meet the regions; dask chunks {g['chunk_size']} px",
        f"scenes: {d['items']} after the cloud filter ({d['duplicates_dropped']} duplicate(s) dropped) "
        f"in {d['time_slices']} time slice(s)",
        "scenes per MGRS tile: " + ", ".join(f"{k} {v}" for k, v in d["items_per_mgrs_tile"].items()),
        "scenes per date: " + ", ".join(f"{k} ({v})" for k, v in list(d["items_per_date"].items())[:40])
        + (" ..." if len(d["items_per_date"]) > 40 else ""),
        f"pixels: {d['pixels']['tile_pixels']:,} on the grid tiles, {d['pixels']['region_pixels']:,} inside regions "
        f"(classified), {d['pixels']['pixel_reads']:,} pixel x date reads",
        f"to read: about {_human(d['bytes_to_read'])} of COG data (before compression)",
        f"memory per worker: about {_human(d['memory_per_worker_bytes'])} (the process, plus "
        f"{d['threads_per_worker']} thread(s) x one chunk of all dates)",
        f"forecast on {d['workers']} worker(s) x {d['threads_per_worker']} thread(s) = {d['cores_assumed']} core(s): "
        f"read {_duration(f['read'])}, features {_duration(f['features'])}, classify {_duration(f['classify'])}; "
        f"wall time about {_duration(f['total'])}, {ch['total']:,.1f} core-hours "
        f"(read {ch['read']:,.1f}, features {ch['features']:,.1f}, classify {ch['classify']:,.1f})",
        f"cost figures per core: read {c['read_mpix_per_s_per_core']:.3g} Mpix x dates/s, {c['read_source']}; "
        f"features {c['features_mpix_per_s_per_core_18_dates']:g} Mpix/s (18 dates) from BENCHMARKS.md; "
        f"classify {c['classify_mpix_per_s_per_core']:.3g} Mpix/s, {c['classify_source']}",
    ]
    return "\n".join(lines)
