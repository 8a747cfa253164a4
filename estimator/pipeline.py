"""The orchestrator: one line per stage, in the order of the data-flow diagram (DESIGN.md).

A job is a map over output-grid tiles (load -> mask -> features -> classify -> per-region
sums and map blocks, each tile's result written atomically) followed by a reduce (sums).
A rerun of the same job finds finished tiles on disk and does not redo them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import io
import json
import logging
import os
import platform
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TypeVar

import dask
import dask.array as da
import numpy as np
import pystac
import shapely
from rasterio.errors import RasterioError
from rasterio.features import rasterize
from tqdm.auto import tqdm

from .aggregate import TilePartial, aggregate_tile, failed_tile, reduce_partials
from .classify import ModelRef, cascade_usable, class_codes, classify_dask, make_predictor, model_plugin, sieve_codes
from .config import JobConfig, config_hash
from .errors import ConfigError, EstimatorError
from .estimate import apply_coverage, mapped_records
from .features import features_dask
from .grid import pixel_area_m2
from .load import clear_http_cache, configure_gdal, find_unreadable, load_tile
from .mask import mask_observations
from .model import Model, load_model
from .outputs import MapLayer, write_estimates, write_json, write_map_cog, write_quicklook, write_text
from .plan import Plan, Tile, make_plan
from .plots import Plots, TileLayers, make_plots, plots_summary, slice_days, write_plots
from .regions import Region, job_regions, rasterize_regions, regions_bbox, to_crs
from .report import render_report_md
from .search import SearchResult, search_items
from .store import RunLocation

__all__ = ["RunResult", "dask_context", "package_versions", "run", "tile_features"]

_T = TypeVar("_T")

log = logging.getLogger(__name__)
SYNTHETIC_PROPERTY = "demo:synthetic"


@dataclass(frozen=True)
class RunResult:
    """What a finished job produced."""

    run_dir: Path | str
    """The run directory (a ``Path``), or the URL of a remote one."""
    records: list[dict[str, Any]]
    manifest: dict[str, Any]
    tiles_reused: int = 0
    """Tiles found finished on disk from an earlier, interrupted run."""


@dataclass
class _Timer:
    spans: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.spans[name] = round(self.spans.get(name, 0.0) + time.perf_counter() - t0, 3)


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("coca-estimator", "numpy", "scikit-learn", "xarray", "dask", "distributed", "odc-stac", "pystac-client", "rasterio", "skops"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def connect_client(spec: str) -> Any:
    """Call a user's ``module:function`` that returns a connected ``distributed.Client``.

    dask-gateway and Coiled keep a cluster's TLS credentials in the Python object that
    created it, so an address alone cannot reach them; a small function can, e.g.
    ``return dask_gateway.Gateway().connect(name).get_client()``.
    """
    module, _, func = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cluster.connect '{spec}': cannot import it ({e}); give 'module:function' on the Python path") from None
    try:
        client = factory()
    except Exception as e:
        raise EstimatorError(f"cluster.connect '{spec}' failed: {type(e).__name__}: {str(e)[:200]}") from None
    if not hasattr(client, "submit") or not hasattr(client, "scheduler_info"):
        raise ConfigError(f"cluster.connect '{spec}' returned {type(client).__name__}, not a distributed.Client")
    return client


@contextmanager
def dask_context(address: str | None, client: Any = None) -> Iterator[Any]:
    """A dask.distributed client on ``address``, the given connected ``client`` (left open
    for its owner), or the local threaded scheduler.

    On 2 cores the threaded scheduler beat a 2-process LocalCluster for this workload
    (I/O in GDAL and predict_proba both release the GIL).
    """
    if client is not None:
        with client.as_current():
            yield client
        return
    if not address:
        # One pool for the run: dask's threaded scheduler otherwise starts a pool per calling
        # thread, and the tiles are computed from their own threads.
        with ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="dask") as pool, dask.config.set(
            scheduler="threads", pool=pool
        ):
            yield None
        return
    from distributed import Client

    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError, TypeError) as e:
        raise EstimatorError(f"cannot connect to the dask scheduler at {address} ({type(e).__name__}); check --scheduler") from None
    with client:
        yield client


#: Cluster trouble is not a read failure: it must stop the job (a rerun resumes), not be
#: recorded as missing pixels.
_CLUSTER_ERRORS = ("CommClosedError", "KilledWorker", "TimeoutError", "CancelledError", "FutureCancelledError")


def _is_read_error(e: BaseException) -> bool:
    if type(e).__name__ in _CLUSTER_ERRORS:
        return False
    # Under dask.distributed a RasterioIOError can arrive re-raised as a plain Exception.
    return isinstance(e, (RasterioError, OSError)) or "Rasterio" in type(e).__name__ or "RasterioIOError" in repr(e)


def _coverage(tile: Tile, plan: Plan, failed: Sequence[str] = ()) -> np.ndarray:
    """Per pixel: how many time slices cover it (``failed`` empty), or how many slices lost
    it to read failures: footprints of failed items not covered by a readable item of the
    same slice."""
    ny, nx = tile.geobox.shape.yx
    crs = str(tile.geobox.crs)
    bad = set(failed)
    out = np.zeros((ny, nx), dtype=np.float32)
    for group in tile.groups:
        ok = [to_crs(plan.items[i].footprint, crs) for i in group if i not in bad]
        lost = [to_crs(plan.items[i].footprint, crs) for i in group if i in bad]
        if failed:
            if not lost:
                continue
            geom = shapely.union_all(lost)
            if ok:
                geom = geom.difference(shapely.union_all(ok))
        else:
            geom = shapely.union_all(ok)
        if not geom.is_empty:
            out += rasterize([(geom, 1)], out_shape=(ny, nx), transform=tile.geobox.affine, fill=0, dtype="uint8")
    return out


def _persist(*arrays: da.Array) -> tuple[da.Array, ...]:
    """Compute and keep results where they were computed (worker memory on a cluster, local
    memory otherwise), raising a failed read now rather than at a later step."""
    out = dask.persist(*arrays)
    try:
        from distributed import futures_of, get_client, wait

        get_client()
    except (ImportError, ValueError):
        return out
    futures = futures_of(out)
    wait(futures)
    for f in futures:
        if f.status == "error":
            f.result()  # re-raises the task's exception here
    return out


@dataclass(frozen=True)
class _TileObs:
    """A tile's features and observation counts (dask arrays), with the dates of its slices."""

    features: da.Array
    """``(F, y, x)`` features."""
    n_clear: da.Array
    """``(y, x)`` clear observations."""
    span: da.Array
    """``(2, y, x)`` time index of the first and last clear observation, -1 where none."""
    groups: tuple[tuple[str, ...], ...]
    """Item ids per time slice as loaded (the indices of ``span`` count these)."""


def _tile_observations(
    tile: Tile,
    plan: Plan,
    items: Mapping[str, pystac.Item],
    clear_scl: Sequence[int],
    exclude: Sequence[str] = (),
    persist: bool = True,
) -> _TileObs | None:
    """Load, mask and compute features for one tile; ``persist=False`` keeps the graph lazy
    (the job classifies each chunk's features as they are made and never holds a tile's)."""
    stack = load_tile(tile, plan, items, exclude=exclude)
    if stack is None:
        return None
    m = mask_observations(stack, clear_scl)
    arrays = (features_dask(m.masked.data), m.n_clear.data, m.span.data)
    feats, counts, span = _persist(*arrays) if persist else arrays
    return _TileObs(feats, counts, span, stack.groups)


def tile_features(
    tile: Tile, plan: Plan, items: Mapping[str, pystac.Item], clear_scl: Sequence[int], exclude: Sequence[str] = ()
) -> tuple[da.Array, da.Array] | None:
    """Load, mask and compute features for one tile: ``(features (F,y,x), n_clear (y,x))``,
    persisted (on the cluster when one is in use). ``None`` when no scene touches the tile.

    Shared by estimation and training, so both see exactly the same features.
    """
    obs = _tile_observations(tile, plan, items, clear_scl, exclude)
    return None if obs is None else (obs.features, obs.n_clear)


def _clear_http_caches() -> None:
    clear_http_cache()
    try:
        from distributed import get_client

        get_client().run(clear_http_cache)
    except (ImportError, ValueError):
        pass


def _read_robust(
    tile: Tile, items: Mapping[str, pystac.Item], attempt: Callable[[Sequence[str]], _T]
) -> tuple[_T | None, list[str], str]:
    """``attempt(exclude)`` (which reads the tile's scenes, leaving out ``exclude``), with
    unreadable items isolated and dropped. Returns (result, failed items, error)."""
    first = ""
    for n in range(2):
        try:
            return attempt(()), [], ""
        except Exception as e:
            if not _is_read_error(e):
                raise
            first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            # GDAL does not retry a body cut short, and caches the short range and failed
            # files in-process: clear that (on every worker) and read the tile once more.
            if n == 0:
                log.warning("tile %s: read failed (%s); clearing GDAL's HTTP cache and retrying once", tile.id, first)
                _clear_http_caches()
    tile_items = [i for g in tile.groups for i in g]
    bad = find_unreadable(tile_items, items)
    if not bad:
        return None, tile_items, f"read failed and could not be isolated to an item: {first}"
    try:
        return attempt(bad), bad, ""
    except Exception as e:
        if not _is_read_error(e):
            raise
        return None, tile_items, f"read failed after dropping {len(bad)} unreadable item(s): {str(e)[:200]}"


class _TileStore:
    """Finished tiles of one job version: ``<run>/tiles/<job key>/<tile>.npz|.json``.

    The npz lands first and the JSON last, each written atomically (see
    :meth:`RunLocation.write_bytes`): a tile is finished when its JSON reads back whole.
    """

    def __init__(self, location: RunLocation, key: str):
        self.location = location
        self.key = key

    def _rel(self, tile_id: str, ext: str) -> str:
        return f"tiles/{self.key}/{tile_id}.{ext}"

    def done(self, tile_id: str) -> TilePartial | None:
        try:
            part = TilePartial.from_json(json.loads(self.location.read_bytes(self._rel(tile_id, "json"))))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as e:
            log.warning("tile %s: unreadable checkpoint (%s); redoing the tile", tile_id, type(e).__name__)
            return None
        if not self.location.exists(self._rel(tile_id, "npz")):
            return None
        # A tile with failed reads is not finished: a rerun tries it again.
        return part if part.status == "done" and not part.failed_items else None

    def save(self, part: TilePartial, arrays: Mapping[str, np.ndarray]) -> None:
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
        self.location.write_bytes(self._rel(part.tile_id, "npz"), buf.getvalue())
        text = json.dumps(part.to_json(), indent=2, default=str) + "\n"
        self.location.write_bytes(self._rel(part.tile_id, "json"), text.encode())

    def array(self, tile_id: str, name: str) -> np.ndarray:
        return self.arrays(tile_id, name)[name]

    def arrays(self, tile_id: str, *names: str) -> dict[str, np.ndarray]:
        """Several arrays of a tile from one read of its checkpoint."""
        with np.load(io.BytesIO(self.location.read_bytes(self._rel(tile_id, "npz")))) as z:
            return {n: z[n] for n in names}

    def prune_others(self) -> None:
        """Drop the checkpoints of other versions of the job (an edited config, a new model)."""
        for d in self.location.subdirs("tiles"):
            if d != self.key:
                self.location.remove(f"tiles/{d}")


def _tiles_computing(client: Any, job: JobConfig) -> int:
    """Tiles whose pixels are computed at once: 1 on local threads (its chunks already use
    every core), ``cluster.tiles_in_flight`` or one per worker on a cluster.

    Measured on the full-size world (a 16-tile job, 1 worker x 2 threads): 2 tiles per
    worker made the scheduler interleave both tiles' reads, holding more chunks at once,
    peak worker RSS 2.00 GiB in 198 s; 1 tile per worker, 1.26 GiB in 173 s.
    """
    if client is None:
        return 1
    if job.cluster.tiles_in_flight:
        return job.cluster.tiles_in_flight
    return max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))


def _map_tiles(work: Callable[[Tile], TilePartial], tiles: Sequence[Tile], in_flight: int) -> Iterator[TilePartial]:
    """Run ``work`` over tiles, ``in_flight`` at a time, yielding results as they finish.

    Each tile's graph is built and submitted from its own client thread (the distributed
    client is thread-safe), so a cluster always has several tiles' tasks to schedule; a
    failure stops the job and leaves the finished tiles' checkpoints for a rerun.
    """
    if in_flight <= 1:
        yield from map(work, tiles)
        return
    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="tile") as pool:
        futures = [pool.submit(work, t) for t in tiles]
        try:
            for f in as_completed(futures):
                yield f.result()
        finally:
            for f in futures:
                f.cancel()


def _inside_regions(regions: Sequence[Region], geobox: Any) -> np.ndarray:
    return np.asarray(rasterize_regions(regions, geobox).any(axis=0))


@dataclass(frozen=True)
class _Classified:
    """A tile's classification as computed: raw codes (before the minimum mapping unit),
    target probability, clear counts, first/last clear slice, and the slices' item ids."""

    raw_codes: np.ndarray
    target: np.ndarray
    n_clear: np.ndarray
    span: np.ndarray
    groups: tuple[tuple[str, ...], ...]


def _classify_tile(
    tile: Tile,
    plan: Plan,
    items: Mapping[str, pystac.Item],
    regions: Sequence[Region],
    model: Model,
    estimator: Any,
    clear_scl: Sequence[int],
    exclude: Sequence[str] = (),
) -> _Classified | None:
    """Load -> mask -> features -> classify as one graph, computed at once: each chunk's
    features are classified as soon as they are made and then dropped, so a worker holds a
    few chunks' features, never a tile's (33 float32 layers of a 2048 px tile are 550 MB)."""
    obs = _tile_observations(tile, plan, items, clear_scl, exclude, persist=False)
    if obs is None:
        return None
    ny, nx = tile.geobox.shape.yx
    # Only pixels inside a region are classified (predict_proba is the costly step). The
    # mask is rasterized where the block runs, so no pixel array travels in the graph.
    c = plan.chunk_size
    inside = da.from_delayed(
        dask.delayed(_inside_regions, pure=True)(regions, tile.geobox), shape=(ny, nx), dtype=bool
    ).rechunk((c, c))
    probs_d = classify_dask(obs.features, estimator, len(model.classes), model.model_id, inside=inside)
    # Reduce to what the outputs need where the blocks live: 1 byte of class, 4 of target
    # probability and 4 of first/last clear slice per pixel travel back, not every class's
    # probability.
    codes_d = da.map_blocks(class_codes, probs_d, drop_axis=0, dtype=np.uint8)
    target_d = probs_d[model.classes.index(model.target_class)]
    raw_codes, target, n_clear, span = dask.compute(codes_d, target_d, obs.n_clear, obs.span)
    return _Classified(raw_codes, target, n_clear, span, obs.groups)


def _process_tile(
    tile: Tile,
    plan: Plan,
    items: Mapping[str, pystac.Item],
    regions: Sequence[Region],
    model: Model,
    estimator: Any,
    job: JobConfig,
    compute_slot: AbstractContextManager[Any],
) -> tuple[TilePartial, dict[str, np.ndarray]]:
    """One tile: classified pixels -> minimum mapping unit -> sums and map blocks.

    ``estimator`` is the :class:`~estimator.classify.Predictor`, or a :class:`ModelRef` to
    the copy installed on every worker. The pixels are computed inside ``compute_slot``.
    """
    ny, nx = tile.geobox.shape.yx
    ids = [r.id for r in regions]
    masks = rasterize_regions(regions, tile.geobox)
    area = pixel_area_m2(tile.geobox)
    expected = _coverage(tile, plan)
    empty: dict[str, np.ndarray] = {
        "class": np.zeros((ny, nx), np.uint8),
        "prob": np.full((ny, nx), np.nan, np.float32),
        "n_clear": np.full((ny, nx), -1, np.int16),
        "target_raw": np.zeros((ny, nx), np.uint8),
        "first_day": np.zeros((ny, nx), np.uint16),
        "last_day": np.zeros((ny, nx), np.uint16),
    }
    if not masks.any():
        return TilePartial(tile.id, "done", {}), empty
    with compute_slot:
        res, failed_items, error = _read_robust(
            tile,
            items,
            partial(_classify_tile, tile, plan, items, regions, model, estimator, job.mask.clear_scl),
        )
    if error:
        log.warning("tile %s failed: %s", tile.id, error)
        return failed_tile(tile.id, ids, masks, area, expected, error), empty
    failed_obs = _coverage(tile, plan, failed_items) if failed_items else np.zeros_like(expected)
    if res is None:  # no scene touches this tile: nothing observed
        codes = np.zeros((ny, nx), np.uint8)
        return aggregate_tile(tile.id, codes, model.classes, ids, masks, area, expected, failed_obs, failed_items), empty
    min_px = int(np.ceil(job.classify.min_patch_ha * 1e4 / float(np.median(area)))) if job.classify.min_patch_ha else 0
    codes, n_sieved = sieve_codes(res.raw_codes, min_px)
    part = aggregate_tile(tile.id, codes, model.classes, ids, masks, area, expected, failed_obs, failed_items)
    part.sieved_pixels = n_sieved
    # Where the classifier said the target before the minimum mapping unit, and when each
    # pixel was seen: the plots stage flags what the unit removed and dates every plot.
    first_day, last_day = slice_days(res.span, [plan.items[g[0]].solar_day for g in res.groups])
    return part, {
        "class": codes,
        "prob": res.target.astype(np.float32),
        "n_clear": res.n_clear.astype(np.int16),
        "target_raw": (res.raw_codes == model.classes.index(model.target_class) + 1).astype(np.uint8),
        "first_day": first_day,
        "last_day": last_day,
    }


#: Version of the tile partial format and of what it means; bump when either changes.
TILE_FORMAT = 3


def _plot_layers(store: _TileStore, plan: Plan, regions: Sequence[Region], target_code: int) -> Iterator[TileLayers]:
    """The plots stage's inputs, one tile at a time from the checkpoints (tiles without a
    target pixel, before or after the minimum mapping unit, are skipped)."""
    g = plan.grid.affine
    for tile in plan.tiles:
        z = store.arrays(tile.id, "class", "target_raw", "prob", "first_day", "last_day")
        target = z["class"] == target_code
        raw = z["target_raw"].astype(bool)
        if not (target.any() or raw.any()):
            continue
        a = tile.geobox.affine
        yield TileLayers(
            row_off=int(round((a.f - g.f) / g.e)),
            col_off=int(round((a.c - g.c) / g.a)),
            target=target,
            target_raw=raw,
            prob=z["prob"],
            first_day=z["first_day"],
            last_day=z["last_day"],
            pixel_area=pixel_area_m2(tile.geobox),
            region_masks=rasterize_regions(regions, tile.geobox),
        )


def _job_key(job: JobConfig, model: Model, plan: Plan, regions: Sequence[Region]) -> str:
    """Identity of the work a tile result stands for: config (not the output location),
    model, scenes, region geometries and the grid. Anything else is a different job."""
    cfg = job.model_dump(mode="json")
    cfg.pop("output", None)
    cfg.pop("cluster", None)
    # The same scenes served from another address (a mirror, or the demo's fresh port) are
    # the same work: scenes are identified by their ids below.
    cfg["stac"].pop("url", None)
    cfg["stac"].pop("timeout_s", None)
    grid = [str(plan.grid.crs), list(plan.grid.affine)[:6], list(plan.grid.shape.yx), plan.chunk_size]
    geoms = [(r.id, hashlib.sha256(r.geometry.wkb).hexdigest()) for r in regions]
    blob = json.dumps([TILE_FORMAT, cfg, model.identity, sorted(plan.items), grid, geoms], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _cascade_manifest(job: JobConfig, model: Model) -> dict[str, Any]:
    why_not = "disabled by classify.cascade" if not job.classify.cascade else cascade_usable(model)
    info = model.card.get("cascade") or {}
    return {
        "used": why_not is None,
        "reason": why_not,
        **{k: info.get(k) for k in ("sha256", "threshold", "recall_cv", "pass_fraction_other_cv")},
    }


def _manifest(
    job: JobConfig,
    regions: Sequence[Region],
    model: Model,
    found: SearchResult,
    plan: Plan,
    partials: Sequence[TilePartial],
    reused: set[str],
    synthetic: bool,
    timer: _Timer,
    plots: Plots,
) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "synthetic": synthetic,
        "period": job.period.label,
        "config": job.model_dump(mode="json"),
        "config_hash": config_hash(job),
        "model": {
            "id": model.model_id,
            "sha256": model.sha256,
            "path": str(model.path),
            "classes": list(model.classes),
            "target_class": model.target_class,
            "estimator": type(model.estimator).__name__,
            "training_data_sha256": model.card.get("training_data_sha256"),
            "cascade": _cascade_manifest(job, model),
        },
        "stac": {
            "url": job.stac.url,
            "collection": job.stac.collection,
            "filter_mode": found.filter_mode,
            "n_returned": found.n_returned,
            "n_too_cloudy": found.n_too_cloudy,
            "pages": found.pages,
        },
        "items": [
            {
                "id": i.id,
                "datetime": i.datetime.isoformat(),
                "processing_baseline": i.processing_baseline,
                "offset": i.scaling[0][1],
                "scale": i.scaling[0][0],
                "cloud_cover": i.cloud_cover,
                "tile": i.tile,
            }
            for i in sorted(plan.items.values(), key=lambda i: (i.datetime, i.id))
        ],
        "regions": [{"id": r.id, "name": r.name, "note": r.note} for r in regions],
        "time_slices": [list(g) for g in plan.groups],
        "duplicates_dropped": {
            "rule": "same platform, MGRS tile and time: keep the highest processing baseline, then the latest update",
            "items": dict(plan.duplicates),
        },
        "grid": {
            "crs": str(plan.grid.crs),
            "resolution": job.grid.resolution,
            "shape": list(plan.grid.shape.yx),
            "transform": list(plan.grid.affine)[:6],
            "tile_size": job.grid.tile_size,
            "chunk_size": plan.chunk_size,
        },
        "tiles": [
            {
                "id": p.tile_id, "status": p.status, "reused": p.tile_id in reused, "failed_items": p.failed_items,
                "message": p.message, "sieved_pixels": p.sieved_pixels,
            }
            for p in partials
        ],
        "min_patch_ha": job.classify.min_patch_ha,
        "plots": plots_summary(plots, job.classify.min_patch_ha),
        "timings_s": timer.spans,
        "versions": package_versions(),
    }


def run(
    job: JobConfig,
    *,
    scheduler: str | None = None,
    client: Any = None,
    progress: bool = True,
    truth: Mapping[str, Mapping[str, float]] | None = None,
) -> RunResult:
    """Run an estimation job end to end and write its run directory.

    Everything that can reject bad input (config, regions, model, search) runs before the
    run directory is created, so a rejected job leaves nothing behind.

    Parameters
    ----------
    job
        Validated job configuration.
    scheduler
        dask.distributed scheduler address; overrides ``job.cluster.address``.
    client
        A connected ``distributed.Client`` to run on (dask-gateway, Coiled ...); it is
        used, not closed. Overrides ``scheduler`` and the job's cluster settings.
    progress
        Show progress bars.
    truth
        Known true hectares per region and class (demo world only), printed in the report.
    """
    timer = _Timer()
    with timer("prepare"):
        location = RunLocation.open(job.output)
        regions = job_regions(job.regions)
        model = load_model(job.model)
        if job.target_class not in model.classes:
            raise ConfigError(
                f"target_class '{job.target_class}' is not a class of model {model.model_id} ({', '.join(model.classes)})"
            )
        model = replace(model, target_class=job.target_class)
    # Connect before searching: a wrong scheduler address fails fast, before any work.
    if client is None and not scheduler and job.cluster.connect:
        client = connect_client(job.cluster.connect)
    with dask_context(scheduler or job.cluster.address, client) as client:
        result = _run(job, regions, model, location, client, timer, progress, truth)
    return result


def _run(
    job: JobConfig,
    regions: Sequence[Region],
    model: Model,
    location: RunLocation,
    client: Any,
    timer: _Timer,
    progress: bool,
    truth: Mapping[str, Mapping[str, float]] | None,
) -> RunResult:
    with timer("search"):
        found = search_items(job.stac, regions_bbox(regions), job.period, progress=progress)
    with timer("plan"):
        plan = make_plan(
            [i.to_dict() for i in found.items], regions,
            resolution=job.grid.resolution, crs=job.grid.crs, tile_size=job.grid.tile_size, chunk_size=job.grid.chunk_size,
            provider=job.stac.provider,
        )
    items = {i.id: i for i in found.items}
    synthetic = any(bool(i.properties.get(SYNTHETIC_PROPERTY)) for i in found.items)
    store = _TileStore(location, _job_key(job, model, plan, regions))
    configure_gdal()
    reused: set[str] = set()
    # One bar in tiles: a tile is read, classified and checkpointed in one go.
    bar = tqdm(total=len(plan.tiles), desc="tiles", unit="tile", disable=not progress)
    with timer("tiles"), bar:
        # Install the model on every worker once (and on any that restarts or joins), not
        # inside each tile's graph; tasks refer to it by its sha256.
        estimator: Any = make_predictor(model, cascade=job.classify.cascade)
        if client is not None:
            key = f"{model.identity[:40]}-cascade{int(job.classify.cascade)}"
            client.register_plugin(model_plugin(key, estimator))
            estimator = ModelRef(key)
        todo = []
        done: dict[str, TilePartial] = {}
        for tile in plan.tiles:
            prev = store.done(tile.id)
            if prev is None:
                todo.append(tile)
            else:
                done[tile.id] = prev
                reused.add(tile.id)
                bar.update(1)

        # A few tiles compute at once (see _tiles_computing); as many again wait for a slot
        # or finish in the client (minimum mapping unit, sums, checkpoint), so that work
        # overlaps the next tiles' pixels instead of leaving the cores idle.
        computing = _tiles_computing(client, job)
        compute_slot = threading.BoundedSemaphore(computing)

        def work(tile: Tile) -> TilePartial:
            part, arrays = _process_tile(tile, plan, items, regions, model, estimator, job, compute_slot)
            store.save(part, arrays)  # checkpoint as soon as the tile is finished
            bar.update(1)
            return part

        for part in _map_tiles(work, todo, 2 * computing):
            done[part.tile_id] = part
        partials = [done[t.id] for t in plan.tiles]
    with timer("reduce"):
        totals = reduce_partials(partials, [r.id for r in regions])
        records = mapped_records(
            totals, regions, model.classes, period=job.period.label, model_id=model.model_id, synthetic=synthetic
        )
        apply_coverage(records, job.coverage.unobserved, job.coverage.transfer_uncertainty)
    # COG writing needs local files: a remote run is staged locally and uploaded, its
    # manifest last (its presence marks a complete run).
    with location.staged(last="manifest.json") as run_dir:
        with timer("outputs"):
            tiles_gb = [(t.id, t.geobox) for t in plan.tiles]
            maps = run_dir / "maps"
            maps.mkdir(parents=True, exist_ok=True)
            layers = (
                MapLayer("class.tif", "uint8", 0, partial(store.array, name="class")),
                MapLayer(f"{model.target_class}_probability.tif", "float32", float("nan"), partial(store.array, name="prob")),
                MapLayer("valid_obs_count.tif", "int16", -1, partial(store.array, name="n_clear")),
            )
            for layer in layers:
                tags = {"classes": json.dumps(["unobserved", *model.classes])} if layer.filename == "class.tif" else {}
                if synthetic:
                    tags["SYNTHETIC"] = "demo world, not real imagery"
                write_map_cog(maps / layer.filename, plan.grid, tiles_gb, layer, descriptions=tags)
            outlines = [(r.id, to_crs(r.geometry, str(plan.grid.crs))) for r in regions]
            write_quicklook(
                run_dir / "quicklook.png", maps / "class.tif", model.classes, outlines,
                title=f"Class map {job.period.label}", synthetic=synthetic,
            )
        with timer("plots"):
            target_code = model.classes.index(model.target_class) + 1
            plots = make_plots(
                _plot_layers(store, plan, regions, target_code), grid_affine=plan.grid.affine, crs=str(plan.grid.crs),
                region_ids=[r.id for r in regions], synthetic=synthetic,
            )
            write_plots(run_dir, plots.frame)
        manifest = _manifest(job, regions, model, found, plan, partials, reused, synthetic, timer, plots)
        write_estimates(run_dir, records, {"period": job.period.label, "synthetic": synthetic, "model_id": model.model_id})
        write_json(run_dir / "manifest.json", manifest)
        write_text(run_dir / "report.md", render_report_md(records, manifest, target_class=model.target_class, truth=truth))
    store.prune_others()
    return RunResult(location.output, records, manifest, len(reused))
