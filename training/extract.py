"""Extraction: features at labeled pixels through the estimator's search/plan/load/mask/features.

Labels are polygons (or points) with a class name. Each labeled pixel (pixel-centre rule;
points take the pixel they fall in) inside the job grid gets the very features
``estimator.pipeline.tile_features`` computes for prediction, so training and prediction
cannot drift apart. Labeled pixels never observed clear in the period are counted and
reported, not silently dropped.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from rasterio.features import rasterize
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from tqdm.auto import tqdm

from estimator.config import TrainConfig
from estimator.errors import LabelFileError
from estimator.features import FEATURE_NAMES
from estimator.load import configure_gdal
from estimator.pipeline import dask_context, tile_features
from estimator.plan import make_plan
from estimator.regions import read_features, to_crs
from estimator.search import search_items

__all__ = ["LabelSet", "Samples", "extract_samples", "read_labels"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelSet:
    """Labeled plots read from one file."""

    plot_ids: tuple[str, ...]
    classes: tuple[str, ...]
    geometries: tuple[BaseGeometry, ...]
    """Lon/lat geometries."""
    path: Path
    sha256: str


@dataclass(frozen=True)
class Samples:
    """Training pixels: features, labels and the plot each pixel came from."""

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    n_unobserved: int
    """Labeled pixels without a clear observation (not usable, reported)."""
    n_plots_without_pixels: int
    """Plots that yielded no usable pixel (too small for the grid, or never observed)."""
    xy: np.ndarray | None = None
    """``(n, 2)`` pixel centres in the grid CRS (metres), for spatially blocked validation."""

    def sha256(self) -> str:
        h = hashlib.sha256()
        for a in (self.X, self.y.astype(str), self.groups.astype(str)):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


def read_labels(path: Path, class_field: str = "class") -> LabelSet:
    """Read a GeoJSON FeatureCollection of labeled plots (lon/lat).

    Raises
    ------
    LabelFileError
        Not GeoJSON, no features, a feature without ``class_field`` or geometry.
    """
    features = read_features(path, LabelFileError, "labels")
    ids, classes, geoms = [], [], []
    for i, feat in enumerate(features):
        props = feat.get("properties") or {}
        if props.get(class_field) in (None, ""):
            raise LabelFileError(f"{path}: feature {i} has no '{class_field}' value (has: {sorted(props)}); use --class-field")
        try:
            g = shape(feat["geometry"])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise LabelFileError(f"{path}: feature {i} has no valid geometry") from None
        if g.is_empty:
            raise LabelFileError(f"{path}: feature {i} has an empty geometry")
        ids.append(str(props.get("plot_id", f"feature-{i}")))
        classes.append(str(props[class_field]))
        geoms.append(g if g.is_valid else shapely.make_valid(g))
    if not ids:
        raise LabelFileError(f"{path} holds no labeled features")
    if len(set(classes)) < 2:
        raise LabelFileError(f"{path}: only one class ({classes[0]}); a classifier needs at least two")
    return LabelSet(tuple(ids), tuple(classes), tuple(geoms), path, hashlib.sha256(path.read_bytes()).hexdigest())


def extract_samples(labels: LabelSet, cfg: TrainConfig, *, progress: bool = True, scheduler: str | None = None) -> Samples:
    """Search, load and compute features over the labels' footprint; sample labeled pixels."""
    area = shapely.union_all(labels.geometries).buffer(0.0005)  # about 50 m: points need a pixel
    found = search_items(cfg.stac, area.bounds, cfg.period, progress=progress)
    plan = make_plan(
        [i.to_dict() for i in found.items], area,
        resolution=cfg.grid.resolution, crs=cfg.grid.crs, tile_size=cfg.grid.tile_size, chunk_size=cfg.grid.chunk_size,
        provider=cfg.stac.provider,
    )
    items = {i.id: i for i in found.items}
    crs = str(plan.grid.crs)
    label_xy = [to_crs(g, crs) for g in labels.geometries]
    rng = np.random.default_rng(cfg.fit.seed)
    xs: list[np.ndarray] = []
    ys: list[str] = []
    gs: list[str] = []
    cs: list[np.ndarray] = []
    n_unobserved = 0
    pixels_per_plot = np.zeros(len(labels.plot_ids), dtype=np.int64)
    configure_gdal()
    with dask_context(scheduler):
        for tile in tqdm(plan.tiles, desc="extract tiles", unit="tile", disable=not progress):
            box = shapely.box(*tile.geobox.boundingbox)
            shapes = [(g, k + 1) for k, g in enumerate(label_xy) if g.intersects(box)]
            if not shapes:
                continue
            ny, nx = tile.geobox.shape.yx
            # Later features overwrite earlier ones where plots overlap; ids are 1-based.
            plot_raster = rasterize(shapes, out_shape=(ny, nx), transform=tile.geobox.affine, fill=0, dtype="int32")
            for g, k in shapes:  # points and slivers smaller than a pixel centre still get their pixel
                if not (plot_raster == k).any() and g.geom_type in ("Point", "MultiPoint", "Polygon", "MultiPolygon"):
                    p = g.representative_point()
                    col, row = ~tile.geobox.affine @ (p.x, p.y)
                    if 0 <= int(row) < ny and 0 <= int(col) < nx:
                        plot_raster[int(row), int(col)] = k
            result = tile_features(tile, plan, items, cfg.mask.clear_scl)
            if result is None:
                n_unobserved += int((plot_raster > 0).sum())
                continue
            feats = result[0].compute()
            for k in np.unique(plot_raster[plot_raster > 0]):
                rows, cols = np.nonzero(plot_raster == k)
                f = feats[:, rows, cols].T
                ok = np.isfinite(f).all(axis=1)
                n_unobserved += int((~ok).sum())
                f, c = f[ok], np.column_stack(tile.geobox.affine @ (cols[ok] + 0.5, rows[ok] + 0.5))
                if len(f) > cfg.fit.max_pixels_per_plot:
                    pick = rng.choice(len(f), cfg.fit.max_pixels_per_plot, replace=False)
                    f, c = f[pick], c[pick]
                pixels_per_plot[k - 1] += len(f)
                xs.append(f)
                cs.append(c)
                ys += [labels.classes[k - 1]] * len(f)
                gs += [labels.plot_ids[k - 1]] * len(f)
    if not xs:
        raise LabelFileError(f"{labels.path}: no labeled pixel had a clear observation in {cfg.period.label}")
    X = np.concatenate(xs).astype(np.float32)
    if X.shape[1] != len(FEATURE_NAMES):
        raise RuntimeError("feature count mismatch")  # invariant of compute_features
    n_empty = int((pixels_per_plot == 0).sum())
    if n_empty:
        log.warning("%d labeled plot(s) gave no usable pixel", n_empty)
    return Samples(X, np.array(ys), np.array(gs), n_unobserved, n_empty, np.concatenate(cs))


def class_counts(values: Sequence[str] | np.ndarray) -> dict[str, int]:
    u, n = np.unique(np.asarray(values), return_counts=True)
    return {str(a): int(b) for a, b in zip(u, n, strict=True)}
