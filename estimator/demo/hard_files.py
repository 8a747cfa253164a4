"""Files of the SYNTHETIC hard world: ground truth per date, labels with their errors, images.

Beside the files every demo world has (see :mod:`estimator.demo.world`), a hard world has::

    truth_class.tif             class on the cut-off date (``end``), the majority of each pixel
    truth_dates.tif             one band per acquisition date (band description = the date):
                                the class covering most of each pixel on that date
    truth_coca_fraction.tif     float32, band 1: share of each pixel under coca on the cut-off
                                date; band 2: share that was coca at any time in the period
    label_errors.json           the training plots that are wrong on purpose, and how

and ``truth.json`` adds, per region, the sub-pixel coca area on the cut-off date, the coca
area at any time in the period, and the coca area on every acquisition date.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from rasterio.crs import CRS
from rasterio.features import rasterize
from shapely.geometry import shape

from estimator.demo import world as w
from estimator.demo.hard import (
    KINDS,
    HardLandscape,
    build_hard_landscape,
    class_fractions,
    make_hard_labels,
    make_hard_regions,
    object_classes,
    truth_class,
)
from estimator.demo.hard_sky import hard_acquisitions, render_hard
from estimator.demo.landscape import (
    CLASS_CODE,
    DEMO_CLASSES,
    Grid,
    from_lonlat,
    geodesic_area_ha,
    pixel_area_m2,
    true_areas_ha,
)

__all__ = ["write_hard_world"]

_COCA = DEMO_CLASSES.index("coca")


def write_hard_world(
    root: Path, spec: w.WorldSpec, grid: Grid, *, progress: bool
) -> tuple[list[str], list[dict[str, Any]]]:
    """Write the ground truth and the images of a hard world; return region ids and STAC items."""
    start, end = dt.date.fromisoformat(spec.start), dt.date.fromisoformat(spec.end)
    land = build_hard_landscape(grid, spec.coca_plots, start, end, w._rng(spec, "landscape"))
    acquisitions = hard_acquisitions(w._acquisitions(spec, grid, w._rng(spec, "dates")), w._rng(spec, "hard_sky"))
    regions = _write_ground_truth(root, spec, land, [a.datetime.date() for a in acquisitions])
    items = w._write_images(root, spec, land, acquisitions, progress=progress, render=render_hard)
    return regions, items


def _ever_coca(land: HardLandscape) -> np.ndarray:
    """Per object: coca on at least one day of the period (classes change only on event
    days, so checking every day is exact)."""
    start = dt.date(2000, 1, 1) + dt.timedelta(days=int(land.params["start"][0]))
    ever = np.zeros(len(land.objects), dtype=bool)
    for i in range((land.cutoff - start).days + 1):
        ever |= object_classes(land, start + dt.timedelta(days=i)) == CLASS_CODE["coca"]
    return ever


def _write_ground_truth(root: Path, spec: w.WorldSpec, land: HardLandscape, dates: list[dt.date]) -> list[str]:
    """Write truth_objects, labels, label_errors, regions and the truth rasters and areas."""
    grid = land.grid
    root.mkdir(parents=True)
    objects = [
        w._feature(
            o.geometry, spec.epsg,
            {"object_id": o.object_id, "class": o.cls, "class_code": CLASS_CODE[o.cls], "kind": land.kinds[o.object_id],
             "event": str(dt.date(2000, 1, 1) + dt.timedelta(days=int(land.params["event"][o.object_id])))},
        )
        for o in land.objects
    ]  # fmt: skip
    w._write_json(root / "truth_objects.geojson", w._collection(objects))

    label_rng = w._rng(spec, "labels")
    labels, errors = make_hard_labels(land, label_rng)
    batches = w._batches(labels, label_rng)
    plot_ids = [f"demo-{cls}-{n:03d}" for (cls, _), (n, _b) in zip(labels, batches, strict=True)]
    label_features = [
        w._feature(geom, spec.epsg, {"class": cls, "plot_id": pid, "batch": batch, "source": w._LABEL_SOURCE})
        for (cls, geom), pid, (_n, batch) in zip(labels, plot_ids, batches, strict=True)
    ]
    w._write_json(root / "labels.geojson", w._collection(label_features))
    w._write_json(
        root / "label_errors.json",
        {
            "note": w._SYNTHETIC_NOTE,
            "n_labels": len(labels),
            "errors": [
                {"plot_id": plot_ids[e.index], "kind": e.kind, "true_class": e.true_class,
                 "label_class": labels[e.index][0], "shift_m": e.shift_m}
                for e in errors
            ],
        },
    )  # fmt: skip

    regions = make_hard_regions(grid, w._rng(spec, "regions"))
    region_features = [
        w._feature(r.geometry, spec.epsg, {"region_id": r.region_id, "name": r.name, "synthetic": True})
        for r in regions
    ]
    w._write_json(root / "regions.geojson", w._collection(region_features))
    written = [(f["properties"]["region_id"], shape(f["geometry"])) for f in region_features]
    masks = _region_masks(grid, written)
    pixel_ha = pixel_area_m2(grid) / 1e4

    cut_codes = object_classes(land, land.cutoff)
    cut_class = truth_class(land, cut_codes)
    w._write_cog(root / "truth_class.tif", cut_class, grid.transform, spec.epsg, "nearest")
    per_date = np.stack([truth_class(land, object_classes(land, d)) for d in dates])
    _write_stack(root / "truth_dates.tif", per_date, grid, spec.epsg, [d.isoformat() for d in dates], "nearest")
    coca_cut = class_fractions(land, cut_codes)[_COCA]
    coca_ever = class_fractions(land, np.where(_ever_coca(land), CLASS_CODE["coca"], CLASS_CODE["forest"]))[_COCA]
    _write_stack(
        root / "truth_coca_fraction.tif", np.stack([coca_cut, coca_ever]), grid, spec.epsg,
        ["coca share on the cut-off date", "coca share at any time in the period"], "average",
    )  # fmt: skip

    def ha(share: np.ndarray) -> dict[str, float]:
        return {rid: round(float((share * pixel_ha)[m].sum()), 4) for rid, m in masks.items()}

    areas = true_areas_ha(cut_class, grid, written)
    coca_polys = [shape(f["geometry"]) for f in objects if f["properties"]["class"] == "coca"]
    coca_union = shapely.union_all(coca_polys) if coca_polys else shapely.Polygon()
    kinds = [land.kinds[o.object_id] for o in land.objects]
    truth = {
        "note": w._SYNTHETIC_NOTE,
        "synthetic": True,
        "preset": "hard",
        "generator_version": w.generator_version("hard"),
        "units": "ha",
        "classes": list(DEMO_CLASSES),
        "cutoff_date": land.cutoff.isoformat(),
        "method": (
            f"True ground area on the cut-off date {land.cutoff}: pixels of truth_class.tif (10 m grid, "
            f"EPSG:{spec.epsg}; each pixel's class is the one covering most of it, from objects rasterized at "
            "2.5 m) whose CENTRES fall inside a region polygon, each weighted by its geodesic area. "
            "coca_subpixel_ha weighs every pixel by its coca share instead (truth_coca_fraction.tif band 1); "
            "coca_any_time_ha by its share that was coca on any day of the period (band 2); coca_by_date_ha "
            "counts the majority class of truth_dates.tif on each acquisition date."
        ),
        "world": areas["world"],
        "regions": {r.region_id: {"name": r.name, **areas[r.region_id]} for r in regions},
        "coca_subpixel_ha": ha(coca_cut),
        "coca_any_time_ha": ha(coca_ever),
        "coca_by_date_ha": {
            d.isoformat(): ha((per_date[i] == CLASS_CODE["coca"]).astype(np.float32)) for i, d in enumerate(dates)
        },
        "coca_polygon_area_ha": {
            "method": "geodesic area of the objects that are coca on the cut-off date (reference only)",
            "world": round(geodesic_area_ha(coca_union), 4),
        },
        "n_coca_plots": sum(k.startswith("coca") for k in kinds),
        "object_kinds": {k: kinds.count(k) for k in KINDS},
        "n_label_errors": len(errors),
    }
    w._write_json(root / "truth.json", truth)
    return [r.region_id for r in regions]


def _region_masks(grid: Grid, regions_lonlat: list[tuple[str, Any]]) -> dict[str, np.ndarray]:
    """Pixel-centre masks of the regions as written (the rule of :func:`true_areas_ha`)."""
    out = {}
    for rid, geom in regions_lonlat:
        utm = from_lonlat(shapely.segmentize(geom, 1e-4), grid.epsg)
        out[rid] = rasterize(
            [(utm, 1)], out_shape=(grid.size_px, grid.size_px), transform=grid.transform, fill=0, dtype="uint8"
        ).astype(bool)
    return out


def _write_stack(path: Path, data: np.ndarray, grid: Grid, epsg: int, descriptions: list[str], resampling: str) -> None:
    """A multi-band COG (DEFLATE, 256 px tiles), one described band per layer of ``data``."""
    profile = {
        "driver": "COG", "count": data.shape[0], "dtype": data.dtype.name, "width": data.shape[2],
        "height": data.shape[1], "crs": CRS.from_epsg(epsg), "transform": grid.transform,
        "compress": "DEFLATE", "blocksize": 256, "overview_resampling": resampling,
    }  # fmt: skip
    if data.dtype == np.uint8:
        profile["nodata"] = 0
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, text in enumerate(descriptions, start=1):
            dst.set_band_description(i, text)
