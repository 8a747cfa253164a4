"""Run outputs: atomic writers for estimates, maps (COGs), quicklook, manifest and report.

Every file is written to a temporary name in the same directory and renamed into place, so
a crash never leaves a half-written output that looks complete.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from odc.geo.geobox import GeoBox
from rasterio.windows import Window

from .estimate import RECORD_FIELDS, SCHEMA_VERSION
from .load import GDAL_CACHE_BYTES
from .store import atomic_path

__all__ = [
    "SYNTHETIC_BANNER",
    "MapLayer",
    "atomic_path",
    "write_estimates",
    "write_json",
    "write_map_cog",
    "write_quicklook",
    "write_text",
]

SYNTHETIC_BANNER = "SYNTHETIC DEMO DATA - not a real estimate"
#: Map colours by class name (the target class stands out in red); index 0 is unobserved.
CLASS_COLOURS: dict[str, str] = {
    "coca": "#e41a1c", "forest": "#1b5e20", "regrowth": "#66bb6a", "other_crop": "#ffb300",
    "pasture": "#d4e157", "bare_soil": "#a1887f", "water": "#1e88e5", "settlement": "#9e9e9e",
}


def write_text(dst: Path, text: str) -> None:
    with atomic_path(dst) as tmp:
        tmp.write_text(text)


def write_json(dst: Path, obj: Any) -> None:
    write_text(dst, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_estimates(run_dir: Path, records: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> None:
    """``estimates.json`` (schema version, metadata, records) and ``estimates.csv``."""
    write_json(run_dir / "estimates.json", {"schema_version": SCHEMA_VERSION, **meta, "records": list(records)})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(RECORD_FIELDS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in records:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in RECORD_FIELDS})
    write_text(run_dir / "estimates.csv", buf.getvalue())


@dataclass(frozen=True)
class MapLayer:
    """One output map."""

    filename: str
    dtype: str
    nodata: float
    read_tile: Callable[[str], np.ndarray]
    """Returns the layer's array for a tile id."""


def write_map_cog(
    dst: Path,
    grid: GeoBox,
    tiles: Iterable[tuple[str, GeoBox]],
    layer: MapLayer,
    *,
    descriptions: Mapping[str, str] | None = None,
) -> None:
    """Mosaic tile arrays into one Cloud-Optimized GeoTIFF on ``grid``.

    Tiles are streamed into a tiled GTiff window by window (memory bounded by one tile),
    then GDAL's COG driver adds overviews and the final layout.
    """
    ny, nx = grid.shape.yx
    profile = {
        "driver": "GTiff", "width": nx, "height": ny, "count": 1, "dtype": layer.dtype,
        "crs": str(grid.crs), "transform": grid.affine, "nodata": layer.nodata,
        "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "DEFLATE", "BIGTIFF": "IF_SAFER",
    }
    # GDAL's default block cache (5 % of RAM) would keep the blocks of the whole map.
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), tempfile.TemporaryDirectory(dir=dst.parent) as tmpdir:
        stage = Path(tmpdir) / "stage.tif"
        with rasterio.open(stage, "w", **profile) as out:
            for tile_id, gb in tiles:
                arr = layer.read_tile(tile_id)
                row_off = int(round((gb.affine.f - grid.affine.f) / grid.affine.e))
                col_off = int(round((gb.affine.c - grid.affine.c) / grid.affine.a))
                out.write(arr.astype(layer.dtype), 1, window=Window(col_off, row_off, arr.shape[1], arr.shape[0]))
            for k, v in (descriptions or {}).items():
                out.update_tags(**{k: v})
        integer = np.issubdtype(np.dtype(layer.dtype), np.integer)
        with atomic_path(dst) as tmp:
            # BIGTIFF: GDAL's default does not pick it for compressed output, and a Loreto-size
            # float map exceeds 4 GB.
            rasterio.shutil.copy(
                stage, tmp, driver="COG", compress="DEFLATE", predictor=2 if integer else 3, bigtiff="IF_SAFER",
                overview_resampling="NEAREST" if integer else "AVERAGE", blocksize=256,
            )


def write_quicklook(
    dst: Path,
    class_cog: Path,
    classes: Sequence[str],
    outlines: Sequence[tuple[str, Any]],
    *,
    title: str,
    synthetic: bool,
    max_px: int = 1200,
) -> None:
    """PNG of the class map (decimated) with region outlines (geometries in the map CRS)."""
    from matplotlib.colors import ListedColormap

    from .figures import draw_outlines, pyplot, read_decimated, stamp_synthetic, to_png

    plt = pyplot()
    arr, b = read_decimated(class_cog, max_px, rasterio.enums.Resampling.nearest)
    fallback = iter(["#8e24aa", "#00acc1", "#f06292", "#5d4037", "#cddc39", "#455a64"])
    palette = ["#000000"] + [CLASS_COLOURS.get(c) or next(fallback, "#bdbdbd") for c in classes]
    cmap = ListedColormap(palette)
    fig, ax = plt.subplots(figsize=(8, 8), dpi=110, layout="constrained")
    ax.imshow(arr, cmap=cmap, vmin=0, vmax=len(classes), extent=(b.left, b.right, b.bottom, b.top), interpolation="nearest")
    draw_outlines(ax, outlines)
    handles = [plt.Rectangle((0, 0), 1, 1, color=palette[i + 1]) for i in range(len(classes))]
    ax.legend(handles, classes, loc="lower left", fontsize=7, framealpha=0.8)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    if synthetic:
        stamp_synthetic(fig)
    png = to_png(fig)
    with atomic_path(dst) as tmp:
        tmp.write_bytes(png)
