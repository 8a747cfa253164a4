"""Run outputs made of pixels: the maps as Cloud-Optimized GeoTIFFs and the quicklook PNG.

Every file is written to a temporary name in the same directory and renamed into place, so
a crash never leaves a half-written output that looks complete.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from odc.geo.geobox import GeoBox
from rasterio.windows import Window

from estimator.location import atomic_path
from estimator.stages.load import GDAL_CACHE_BYTES
from estimator.stages.plan import Plan

__all__ = ["CLASS_COLOURS", "STRATA_MAP", "MapLayer", "write_map_cog", "write_maps", "write_quicklook", "write_strata_maps"]

#: Map colours by class name (the target class stands out in red); index 0 is unobserved.
CLASS_COLOURS: dict[str, str] = {
    "coca": "#e41a1c", "forest": "#1b5e20", "regrowth": "#66bb6a", "other_crop": "#ffb300",
    "pasture": "#d4e157", "bare_soil": "#a1887f", "water": "#1e88e5", "settlement": "#9e9e9e",
}


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
    colours: Mapping[str, str] | None = None,
) -> None:
    """PNG of the class map (decimated) with region outlines (geometries in the map CRS);
    ``colours`` by class name, :data:`CLASS_COLOURS` by default."""
    from matplotlib.colors import ListedColormap

    from estimator.report.figures import draw_outlines, pyplot, read_decimated, stamp_synthetic, to_png

    plt = pyplot()
    arr, b = read_decimated(class_cog, max_px, rasterio.enums.Resampling.nearest)
    fallback = iter(["#8e24aa", "#00acc1", "#f06292", "#5d4037", "#cddc39", "#455a64"])
    palette = ["#000000"] + [(colours or CLASS_COLOURS).get(c) or next(fallback, "#bdbdbd") for c in classes]
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


def _layer_of(read_array: Callable[[str, str], np.ndarray], name: str, tile_id: str) -> np.ndarray:
    return read_array(tile_id, name)


def write_maps(
    run_dir: Path,
    plan: Plan,
    read_array: Callable[[str, str], np.ndarray],
    classes: Sequence[str],
    target_class: str,
    *,
    outlines: Sequence[tuple[str, Any]],
    title: str,
    synthetic: bool,
    class_tags: Mapping[str, str] | None = None,
) -> None:
    """The run's maps (class, target probability, clear-observation count) as COGs in
    ``run_dir/maps`` and the quicklook, mosaicked from the tiles' arrays
    (``read_array(tile_id, name)``, e.g. from the tile checkpoints)."""
    tiles_gb = [(t.id, t.geobox) for t in plan.tiles]
    maps = run_dir / "maps"
    maps.mkdir(parents=True, exist_ok=True)
    layers = (
        MapLayer("class.tif", "uint8", 0, partial(_layer_of, read_array, "class")),
        MapLayer(f"{target_class}_probability.tif", "float32", float("nan"), partial(_layer_of, read_array, "prob")),
        MapLayer("valid_obs_count.tif", "int16", -1, partial(_layer_of, read_array, "n_clear")),
    )
    for layer in layers:
        tags = {"classes": json.dumps(["unobserved", *classes]), **(class_tags or {})} if layer.filename == "class.tif" else {}
        if synthetic:
            tags["SYNTHETIC"] = "demo world, not real imagery"
        write_map_cog(maps / layer.filename, plan.grid, tiles_gb, layer, descriptions=tags)
    write_quicklook(run_dir / "quicklook.png", maps / "class.tif", classes, outlines, title=title, synthetic=synthetic)


#: The strata map of a cold-start run (``model: none``), in place of the class map.
STRATA_MAP = "strata.tif"


def write_strata_maps(
    run_dir: Path,
    plan: Plan,
    read_array: Callable[[str, str], np.ndarray],
    strata: Sequence[str],
    *,
    outlines: Sequence[tuple[str, Any]],
    title: str,
    synthetic: bool,
    tags: Mapping[str, str] | None = None,
) -> None:
    """A cold-start run's maps: the label-free strata (code ``1 + index`` into ``strata``, 0
    unobserved; their names in the ``strata`` tag) and the clear-observation count, as COGs
    in ``run_dir/maps``, and the quicklook. No class or probability map: there is no model."""
    from matplotlib import colormaps

    tiles_gb = [(t.id, t.geobox) for t in plan.tiles]
    maps = run_dir / "maps"
    maps.mkdir(parents=True, exist_ok=True)
    marks = {"SYNTHETIC": "demo world, not real imagery"} if synthetic else {}
    strata_tags = {"strata": json.dumps(["unobserved", *strata]), "kind": "label-free strata (model: none)", **(tags or {}), **marks}
    write_map_cog(maps / STRATA_MAP, plan.grid, tiles_gb, MapLayer(STRATA_MAP, "uint8", 0, partial(_layer_of, read_array, "class")),
                  descriptions=strata_tags)
    write_map_cog(maps / "valid_obs_count.tif", plan.grid, tiles_gb,
                  MapLayer("valid_obs_count.tif", "int16", -1, partial(_layer_of, read_array, "n_clear")), descriptions=marks)
    # Clusters are ranked by median NDVI: a sequential palette shows that order; the rule
    # stratum keeps the target class's red.
    ramp = colormaps["YlGn"]
    clusters = [s for s in strata if s != "harvest"]
    colours = {s: _hex(ramp(0.15 + 0.85 * i / max(len(clusters) - 1, 1))) for i, s in enumerate(clusters)}
    colours["harvest"] = CLASS_COLOURS["coca"]
    write_quicklook(run_dir / "quicklook.png", maps / STRATA_MAP, strata, outlines, title=title, synthetic=synthetic, colours=colours)


def _hex(rgba: tuple[float, ...]) -> str:
    return "#" + "".join(f"{int(round(255 * v)):02x}" for v in rgba[:3])
