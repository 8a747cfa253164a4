"""Run outputs made of pixels: the maps as Cloud-Optimized GeoTIFFs and the quicklook PNG.

Every file is written to a temporary name in the same directory and renamed into place, so
a crash never leaves a half-written output that looks complete.
"""

from __future__ import annotations

import json
import tempfile
import threading
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

__all__ = [
    "CLASS_COLOURS", "STRATA_MAP", "MapLayer", "MapStage", "write_map_cog", "write_maps", "write_quicklook",
    "write_strata_maps",
]

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


def _stage_profile(grid: GeoBox, dtype: str, nodata: float) -> dict[str, Any]:
    ny, nx = grid.shape.yx
    return {
        "driver": "GTiff", "width": nx, "height": ny, "count": 1, "dtype": dtype,
        "crs": str(grid.crs), "transform": grid.affine, "nodata": nodata,
        "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "DEFLATE", "BIGTIFF": "IF_SAFER",
    }


def _window(grid: GeoBox, gb: GeoBox, shape: tuple[int, ...]) -> Window:
    row_off = int(round((gb.affine.f - grid.affine.f) / grid.affine.e))
    col_off = int(round((gb.affine.c - grid.affine.c) / grid.affine.a))
    return Window(col_off, row_off, shape[1], shape[0])


def _to_cog(stage: Path, dst: Path, dtype: str, threads: str) -> None:
    integer = np.issubdtype(np.dtype(dtype), np.integer)
    with atomic_path(dst) as tmp:
        # BIGTIFF: GDAL's default does not pick it for compressed output, and a Loreto-size
        # float map exceeds 4 GB.
        rasterio.shutil.copy(
            stage, tmp, driver="COG", compress="DEFLATE", predictor=2 if integer else 3, bigtiff="IF_SAFER",
            overview_resampling="NEAREST" if integer else "AVERAGE", blocksize=256, num_threads=threads,
        )


def write_map_cog(
    dst: Path,
    grid: GeoBox,
    tiles: Iterable[tuple[str, GeoBox]],
    layer: MapLayer,
    *,
    descriptions: Mapping[str, str] | None = None,
) -> None:
    """Mosaic tile arrays into one Cloud-Optimized GeoTIFF on ``grid``, in one go after the
    last tile (:class:`MapStage` writes each tile as it is finished instead).

    Tiles are streamed into a tiled GTiff window by window (memory bounded by one tile),
    then GDAL's COG driver adds overviews and the final layout, on one thread.
    """
    # GDAL's default block cache (5 % of RAM) would keep the blocks of the whole map.
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), tempfile.TemporaryDirectory(dir=dst.parent) as tmpdir:
        stage = Path(tmpdir) / "stage.tif"
        with rasterio.open(stage, "w", **_stage_profile(grid, layer.dtype, layer.nodata)) as out:
            for tile_id, gb in tiles:
                arr = layer.read_tile(tile_id)
                out.write(arr.astype(layer.dtype), 1, window=_window(grid, gb, arr.shape))
            for k, v in (descriptions or {}).items():
                out.update_tags(**{k: v})
        _to_cog(stage, dst, layer.dtype, "1")


#: The maps of a run: file name (``{target}`` replaced), tile array, dtype, nodata.
_MAPS = (
    ("class.tif", "class", "uint8", 0.0),
    ("{target}_probability.tif", "prob", "float32", float("nan")),
    ("valid_obs_count.tif", "n_clear", "int16", -1.0),
)


class MapStage:
    """The run's maps, written tile by tile as tiles are finished (overlapping the other
    tiles' pixels), then turned into COGs by :meth:`finish`.

    Each map is staged as a tiled GeoTIFF that :meth:`add` writes a tile's window into (one
    lock per map: GDAL datasets are not thread-safe). Measured against a VRT of per-tile
    files turned into a COG, see BENCHMARKS.md ("No serial tail").
    """

    def __init__(self, grid: GeoBox, target_class: str, directory: Path):
        self.grid = grid
        self.target_class = target_class
        self._files: list[tuple[str, str, str, Path, Any, threading.Lock]] = []
        try:
            for filename, key, dtype, nodata in _MAPS:
                path = directory / f"stage-{key}.tif"
                with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
                    ds = rasterio.open(path, "w", **_stage_profile(grid, dtype, nodata))
                self._files.append((filename.format(target=target_class), key, dtype, path, ds, threading.Lock()))
        except BaseException:
            self.close()
            raise

    def add(self, geobox: GeoBox, arrays: Mapping[str, np.ndarray]) -> None:
        """Write one tile's blocks (``class``, ``prob``, ``n_clear``); thread-safe."""
        for _, key, dtype, _, ds, lock in self._files:
            arr = np.asarray(arrays[key]).astype(dtype, copy=False)
            # GDAL's default block cache (5 % of RAM) would keep the blocks of the whole map.
            with lock, rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
                ds.write(arr, 1, window=_window(self.grid, geobox, arr.shape))

    def finish(
        self,
        run_dir: Path,
        classes: Sequence[str],
        *,
        outlines: Sequence[tuple[str, Any]],
        title: str,
        synthetic: bool,
        class_tags: Mapping[str, str] | None = None,
        threads: str = "ALL_CPUS",
    ) -> None:
        """The COGs in ``run_dir/maps`` and the quicklook; ``threads`` compress the COGs
        (GDAL's ``NUM_THREADS``)."""
        maps = run_dir / "maps"
        maps.mkdir(parents=True, exist_ok=True)
        for _, key, _, _, ds, _ in self._files:
            tags = {"classes": json.dumps(["unobserved", *classes]), **(class_tags or {})} if key == "class" else {}
            if synthetic:
                tags["SYNTHETIC"] = "demo world, not real imagery"
            ds.update_tags(**tags)
        stages = [(filename, dtype, path) for filename, _, dtype, path, _, _ in self._files]
        self.close()
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
            for filename, dtype, path in stages:
                _to_cog(path, maps / filename, dtype, threads)
        write_quicklook(run_dir / "quicklook.png", maps / "class.tif", classes, outlines, title=title, synthetic=synthetic)

    def close(self) -> None:
        for *_, ds, lock in self._files:
            with lock:
                if not ds.closed:
                    ds.close()


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
    threads: str = "ALL_CPUS",
) -> None:
    """The run's maps (class, target probability, clear-observation count) as COGs in
    ``run_dir/maps`` and the quicklook, mosaicked from the tiles' arrays
    (``read_array(tile_id, name)``, e.g. from the tile checkpoints) in one go; a job writes
    them as its tiles finish instead (:class:`MapStage`)."""
    with tempfile.TemporaryDirectory(dir=run_dir) as tmp:
        stage = MapStage(plan.grid, target_class, Path(tmp))
        try:
            for t in plan.tiles:
                stage.add(t.geobox, {key: read_array(t.id, key) for _, key, _, _ in _MAPS})
            stage.finish(run_dir, classes, outlines=outlines, title=title, synthetic=synthetic, class_tags=class_tags, threads=threads)
        finally:
            stage.close()


def _layer_of(read_array: Callable[[str, str], np.ndarray], name: str, tile_id: str) -> np.ndarray:
    return read_array(tile_id, name)


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
