"""Extraction: features at labeled pixels through the estimator's search/plan/load/mask/features.

Labels are polygons (or points) with a class name. Each labeled pixel (pixel-centre rule;
points take the pixel they fall in) inside the job grid gets the very features
``estimator.run.pipeline.tile_features`` computes for prediction, so training and prediction
cannot drift apart. Labeled pixels never observed clear in the period are counted and
reported, not silently dropped.

Labels from a store (``training.store``) are extracted batch by batch and cached in
``store/cache/<key>.npz``; the key (``cache_key``) covers everything that changes a batch's
pixels: the batch content, the collection and provider, the scenes the search found (ids
and processing baselines, so a new or reprocessed scene invalidates), period, grid
resolution and CRS, mask, per-plot sampling (seed, cap), ``FEATURE_NAMES`` and
``EXTRACT_VERSION``. Tile and chunk sizes do not change a pixel's features and are left
out, nor is the STAC URL (a mirror of the same items gives the same pixels). Adding a
batch therefore extracts only that batch.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from rasterio.features import rasterize
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from tqdm.auto import tqdm

from estimator.config import TrainConfig
from estimator.errors import LabelFileError
from estimator.location import atomic_path
from estimator.regions.geometry import read_features, to_crs
from estimator.run.cluster import dask_context
from estimator.run.tiles import tile_features
from estimator.stages.features import FEATURE_NAMES
from estimator.stages.load import configure_gdal
from estimator.stages.plan import make_plan
from estimator.stages.search import SearchResult, search_items

__all__ = [
    "EXTRACT_VERSION", "BatchRef", "Extraction", "LabelSet", "Samples", "cache_key", "extract_cached",
    "extract_samples", "labels_card", "read_labels", "reference_units",
]

log = logging.getLogger(__name__)

#: Bump when the sampling of labeled pixels changes; it invalidates every extraction cache.
EXTRACT_VERSION = 2  # 2: pixel centres (xy) cached for spatial CV


@dataclass(frozen=True)
class BatchRef:
    """A store batch as a training run sees it (what the model card records)."""

    id: str
    sha256: str
    """sha256 of the batch's normalised plots."""
    n_plots: int
    classes: dict[str, int] = field(default_factory=dict)
    reference_sample: dict[str, object] | None = None
    """Provenance when the batch is a labelled reference sample."""

    def card(self) -> dict[str, object]:
        out: dict[str, object] = {"id": self.id, "sha256": self.sha256, "n_plots": self.n_plots, "classes": dict(self.classes)}
        if self.reference_sample is not None:
            out["reference_sample"] = dict(self.reference_sample)
        return out


@dataclass(frozen=True)
class LabelSet:
    """Labeled plots read from one file."""

    plot_ids: tuple[str, ...]
    classes: tuple[str, ...]
    geometries: tuple[BaseGeometry, ...]
    """Lon/lat geometries."""
    path: Path
    """The labels file, or the store directory."""
    sha256: str
    batches: tuple[BatchRef, ...] = ()
    """Store batches the plots come from (empty for a single file)."""
    batch_ids: tuple[str, ...] = ()
    """Batch of each plot (empty for a single file)."""
    cache_dir: Path | None = None
    """Where per-batch extractions are cached (a store's ``cache/``)."""

    def batch(self, batch_id: str) -> LabelSet:
        """The plots of one batch."""
        ref = next(b for b in self.batches if b.id == batch_id)
        keep = [i for i, b in enumerate(self.batch_ids) if b == batch_id]
        return LabelSet(
            tuple(self.plot_ids[i] for i in keep), tuple(self.classes[i] for i in keep),
            tuple(self.geometries[i] for i in keep), self.path, ref.sha256, (ref,), (batch_id,) * len(keep),
            self.cache_dir,
        )


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

    @classmethod
    def concat(cls, parts: Sequence[Samples]) -> Samples:
        return cls(
            np.concatenate([p.X for p in parts]), np.concatenate([p.y for p in parts]),
            np.concatenate([p.groups for p in parts]), sum(p.n_unobserved for p in parts),
            sum(p.n_plots_without_pixels for p in parts),
            None if any(p.xy is None for p in parts) else np.concatenate([p.xy for p in parts]),
        )

    def sha256(self) -> str:
        h = hashlib.sha256()
        for a in (self.X, self.y.astype(str), self.groups.astype(str)):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


def _refuse_reference_sample(path: Path) -> None:
    """A reference sample trains a model only through the label store, which records its units
    so that the model is never assessed on them (``estimator.stats.reference``)."""
    try:
        head = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return
    if isinstance(head, dict) and isinstance(head.get("sampling"), dict):
        raise LabelFileError(
            f"{path} is a reference sample (written by `estimator sample`): add it with `python -m training labels add "
            f"{path} --store STORE`, then `python -m training fit TRAIN.yaml --store STORE`, so that the model is never "
            "assessed on its units"
        )


def read_labels(path: Path, class_field: str = "class") -> LabelSet:
    """Read a GeoJSON FeatureCollection of labeled plots (lon/lat).

    Raises
    ------
    LabelFileError
        Not GeoJSON, no features, a feature without ``class_field`` or geometry.
    """
    features = read_features(path, LabelFileError, "labels")
    _refuse_reference_sample(path)
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


def _area(labels: LabelSet) -> BaseGeometry:
    return shapely.union_all(labels.geometries).buffer(0.0005)  # about 50 m: points need a pixel


def extract_samples(labels: LabelSet, cfg: TrainConfig, *, progress: bool = True, scheduler: str | None = None) -> Samples:
    """Search, load and compute features over the labels' footprint; sample labeled pixels."""
    found = search_items(cfg.stac, _area(labels).bounds, cfg.period, progress=progress)
    samples = _sample(labels, cfg, found, progress=progress, scheduler=scheduler)
    if not len(samples.y):
        raise LabelFileError(f"{labels.path}: no labeled pixel had a clear observation in {cfg.period.label}")
    return samples


def _sample(labels: LabelSet, cfg: TrainConfig, found: SearchResult, *, progress: bool, scheduler: str | None) -> Samples:
    """Sample labeled pixels over the scenes found (no pixel at all gives empty samples)."""
    area = _area(labels)
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
    X = np.concatenate(xs).astype(np.float32) if xs else np.empty((0, len(FEATURE_NAMES)), np.float32)
    if X.shape[1] != len(FEATURE_NAMES):
        raise RuntimeError("feature count mismatch")  # invariant of compute_features
    n_empty = int((pixels_per_plot == 0).sum())
    if n_empty:
        log.warning("%d labeled plot(s) gave no usable pixel", n_empty)
    xy = np.concatenate(cs) if cs else np.empty((0, 2))
    return Samples(X, np.array(ys, dtype=str), np.array(gs, dtype=str), n_unobserved, n_empty, xy)


@dataclass(frozen=True)
class Extraction:
    """Samples of several store batches, and which batches came from the cache."""

    samples: Samples
    extracted: tuple[str, ...]
    """Batch ids whose pixels were read now."""
    cached: tuple[str, ...]
    """Batch ids loaded from the cache."""
    keys: dict[str, str]
    """Cache key of each batch."""


def cache_key(batch_sha256: str, cfg: TrainConfig, found: SearchResult) -> str:
    """The extraction cache key of one batch (see the module docstring for what it covers)."""
    scenes = sorted((i.id, str(i.properties.get("s2:processing_baseline", ""))) for i in found.items)
    parts = {
        "batch": batch_sha256,
        "collection": cfg.stac.collection,
        "provider": cfg.stac.provider,
        "scenes": scenes,
        "period": cfg.period.label,
        "grid": {"resolution": cfg.grid.resolution, "crs": cfg.grid.crs},
        "clear_scl": list(cfg.mask.clear_scl),
        "sampling": {"seed": cfg.fit.seed, "max_pixels_per_plot": cfg.fit.max_pixels_per_plot},
        "features": list(FEATURE_NAMES),
        "extract_version": EXTRACT_VERSION,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _load_cached(path: Path) -> Samples | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return Samples(z["X"], z["y"], z["groups"], int(z["n_unobserved"]), int(z["n_plots_without_pixels"]),
                           z["xy"] if len(z["xy"]) == len(z["y"]) else None)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as e:  # a damaged cache file is a miss, not an error
        log.warning("ignoring unreadable extraction cache %s (%s)", path.name, e)
        return None


def _save_cached(path: Path, s: Samples) -> None:
    buf = io.BytesIO()
    xy = s.xy if s.xy is not None else np.empty((0, 2))
    np.savez(buf, X=s.X, y=s.y, groups=s.groups, n_unobserved=s.n_unobserved, n_plots_without_pixels=s.n_plots_without_pixels, xy=xy)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def extract_cached(labels: LabelSet, cfg: TrainConfig, *, progress: bool = True, scheduler: str | None = None) -> Extraction:
    """Samples of a store's batches: each batch from ``labels.cache_dir`` when its key is
    there, else extracted (searched, loaded, sampled) and cached. Logs ``batch N: cached``
    or ``extracting batch N``."""
    if labels.cache_dir is None or not labels.batches:
        raise ValueError("extract_cached needs labels loaded from a store (batches and cache_dir)")
    parts, extracted, cached, keys = [], [], [], {}
    for ref in labels.batches:
        sub = labels.batch(ref.id)
        found = search_items(cfg.stac, _area(sub).bounds, cfg.period, progress=progress)
        keys[ref.id] = key = cache_key(ref.sha256, cfg, found)
        path = labels.cache_dir / f"{key}.npz"
        got = _load_cached(path)
        if got is None:
            log.info("extracting batch %s (%d plots)", ref.id, len(sub.plot_ids))
            got = _sample(sub, cfg, found, progress=progress, scheduler=scheduler)
            _save_cached(path, got)
            extracted.append(ref.id)
        else:
            log.info("batch %s: cached (%d pixels)", ref.id, len(got.y))
            cached.append(ref.id)
        parts.append(got)
    samples = Samples.concat(parts)
    if not len(samples.y):
        raise LabelFileError(f"{labels.path}: no labeled pixel had a clear observation in {cfg.period.label}")
    return Extraction(samples, tuple(extracted), tuple(cached), keys)


def labels_card(labels: LabelSet, extraction: Extraction | None = None) -> dict[str, object]:
    """``card["labels"]``: path, sha256, plot count and the store batches (empty for a file)."""
    card: dict[str, object] = {
        "path": str(labels.path), "sha256": labels.sha256, "n_plots": len(labels.plot_ids),
        "batches": [b.card() for b in labels.batches],
    }
    if extraction is not None:
        card["extraction"] = {"extracted": list(extraction.extracted), "cached": list(extraction.cached)}
    return card


def reference_units(labels: LabelSet) -> list[dict[str, object]]:
    """``card["reference_units"]``: per reference-sample batch, each unit's plot id and
    lon/lat, so that the model is never assessed on them (``estimator.stats.reference``)."""
    out: list[dict[str, object]] = []
    for b in labels.batches:
        if not b.reference_sample:
            continue
        units = [[pid, round(g.centroid.x, 7), round(g.centroid.y, 7)]
                 for pid, g, bid in zip(labels.plot_ids, labels.geometries, labels.batch_ids, strict=True) if bid == b.id]
        out.append({"batch": b.id, "source_file": b.reference_sample.get("file"), "sample_key": b.reference_sample.get("sample_key"),
                    "class_map_sha256": b.reference_sample.get("class_map_sha256"), "units": units})
    return out


def class_counts(values: Sequence[str] | np.ndarray) -> dict[str, int]:
    u, n = np.unique(np.asarray(values), return_counts=True)
    return {str(a): int(b) for a, b in zip(u, n, strict=True)}
