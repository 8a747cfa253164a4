"""One tile's computation: load -> mask -> features -> classify as one dask graph, then the
minimum mapping unit, per-region sums and the map blocks a checkpoint keeps.

``tile_features`` is shared with training, so training and prediction see the same features."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from typing import Any

import dask
import dask.array as da
import numpy as np
import pystac
import shapely
from rasterio.features import rasterize

from estimator.config import JobConfig
from estimator.grid import pixel_area_m2
from estimator.regions.geometry import Region, rasterize_regions, to_crs
from estimator.run.reads import read_robust
from estimator.stages.aggregate import TilePartial, aggregate_tile, failed_tile
from estimator.stages.classify import class_codes, classify_dask, sieve_codes
from estimator.stages.features import features_dask
from estimator.stages.load import load_scl, load_tile
from estimator.stages.mask import block_any, clear_blocks, mask_observations
from estimator.stages.model import Model
from estimator.stages.plan import Plan, Tile
from estimator.stages.plots import TileLayers, slice_days, tile_patches

__all__ = [
    "Classified", "RawTile", "TileObs", "classify_tile", "finish_tile", "halo_window", "min_unit_px", "persist_now",
    "pixel_coverage", "process_tile", "tile_features", "tile_neighbours", "tile_observations", "tile_offsets",
]

log = logging.getLogger(__name__)


def pixel_coverage(tile: Tile, plan: Plan, failed: Sequence[str] = ()) -> np.ndarray:
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


def persist_now(*arrays: da.Array) -> tuple[da.Array, ...]:
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
class TileObs:
    """A tile's features and observation counts (dask arrays), with the dates of its slices."""

    features: da.Array
    """``(F, y, x)`` features."""
    n_clear: da.Array
    """``(y, x)`` clear observations."""
    span: da.Array
    """``(2, y, x)`` time index of the first and last clear observation, -1 where none."""
    groups: tuple[tuple[str, ...], ...]
    """Item ids per time slice as loaded (the indices of ``span`` count these)."""


def tile_observations(
    tile: Tile,
    plan: Plan,
    items: Mapping[str, pystac.Item],
    clear_scl: Sequence[int],
    exclude: Sequence[str] = (),
    persist: bool = True,
    regions: Sequence[Region] | None = None,
) -> TileObs | None:
    """Load, mask and compute features for one tile; ``persist=False`` keeps the graph lazy
    (the job classifies each chunk's features as they are made and never holds a tile's).

    With ``regions``, only what can be used is read (:func:`usable_blocks`): features inside
    the regions are bit for bit those of reading everything; outside them they are computed
    from fewer dates (or none) and must not be used.
    """
    keep = None if regions is None else usable_blocks(tile, plan, items, regions, clear_scl, exclude)
    stack = load_tile(tile, plan, items, exclude=exclude, keep=keep)
    if stack is None:
        return None
    m = mask_observations(stack, clear_scl)
    arrays = (features_dask(m.masked.data), m.n_clear.data, m.span.data)
    feats, counts, span = persist_now(*arrays) if persist else arrays
    return TileObs(feats, counts, span, stack.groups)


def usable_blocks(
    tile: Tile,
    plan: Plan,
    items: Mapping[str, pystac.Item],
    regions: Sequence[Region],
    clear_scl: Sequence[int],
    exclude: Sequence[str] = (),
) -> np.ndarray | None:
    """Read the scene classification first and return, per time slice and chunk, whether a
    pixel clear by SCL lies inside a region: only those blocks of reflectance hold a pixel
    the job uses. Chunks wholly outside every region are not read at all (SCL included).

    Reading a block's bands as zeros instead ("no data") changes nothing inside the regions:
    a pixel inside whose SCL is not clear is masked whatever its bands hold.
    """
    c = plan.chunk_size
    keep_yx = block_any(inside_regions(regions, tile.geobox), c)
    scl = load_scl(tile, plan, items, exclude=exclude, keep_yx=keep_yx)
    if scl is None:
        return None
    ny, nx = tile.geobox.shape.yx
    # Rasterized where the blocks run, as in classify_tile: no pixel array in the graph.
    inside = da.from_delayed(dask.delayed(inside_regions, pure=True)(regions, tile.geobox), shape=(ny, nx), dtype=bool)
    (keep,) = dask.compute(clear_blocks(scl.data, inside, clear_scl))
    return np.asarray(keep)


def tile_features(
    tile: Tile, plan: Plan, items: Mapping[str, pystac.Item], clear_scl: Sequence[int], exclude: Sequence[str] = ()
) -> tuple[da.Array, da.Array] | None:
    """Load, mask and compute features for one tile: ``(features (F,y,x), n_clear (y,x))``,
    persisted (on the cluster when one is in use). ``None`` when no scene touches the tile.

    Shared by estimation and training, so both see exactly the same features.
    """
    obs = tile_observations(tile, plan, items, clear_scl, exclude)
    return None if obs is None else (obs.features, obs.n_clear)


def inside_regions(regions: Sequence[Region], geobox: Any) -> np.ndarray:
    return np.asarray(rasterize_regions(regions, geobox).any(axis=0))


@dataclass(frozen=True)
class Classified:
    """A tile's classification as computed: raw codes (before the minimum mapping unit),
    target probability, clear counts, first/last clear slice, and the slices' item ids."""

    raw_codes: np.ndarray
    target: np.ndarray
    n_clear: np.ndarray
    span: np.ndarray
    groups: tuple[tuple[str, ...], ...]


def classify_tile(
    tile: Tile,
    plan: Plan,
    items: Mapping[str, pystac.Item],
    regions: Sequence[Region],
    model: Model,
    estimator: Any,
    clear_scl: Sequence[int],
    exclude: Sequence[str] = (),
    read_clear_only: bool = False,
) -> Classified | None:
    """Load -> mask -> features -> classify as one graph, computed at once: each chunk's
    features are classified as soon as they are made and then dropped, so a worker holds a
    few chunks' features, never a tile's (33 float32 layers of a 2048 px tile are 550 MB).

    ``read_clear_only`` reads only the blocks that hold a clear pixel inside a region
    (:func:`usable_blocks`): the classes, probabilities, clear counts and spans inside the
    regions are the same bit for bit; outside them the clear counts and spans count only the
    dates read. Off by default: on a world with 62 % mean scene cloud it read 1.07x fewer
    bytes at 128 px chunks and 1.03x more at 256 px (BENCHMARKS.md, "Read only what can be
    used"), because nearly every chunk-date holds some clear pixel and the SCL is read twice.
    """
    obs = tile_observations(tile, plan, items, clear_scl, exclude, persist=False, regions=regions if read_clear_only else None)
    if obs is None:
        return None
    ny, nx = tile.geobox.shape.yx
    # Only pixels inside a region are classified (predict_proba is the costly step). The
    # mask is rasterized where the block runs, so no pixel array travels in the graph.
    c = plan.chunk_size
    inside = da.from_delayed(
        dask.delayed(inside_regions, pure=True)(regions, tile.geobox), shape=(ny, nx), dtype=bool
    ).rechunk((c, c))
    probs_d = classify_dask(obs.features, estimator, len(model.classes), model.model_id, inside=inside)
    # Reduce to what the outputs need where the blocks live: 1 byte of class, 4 of target
    # probability and 4 of first/last clear slice per pixel travel back, not every class's
    # probability.
    t = model.classes.index(model.target_class)
    codes_d = da.map_blocks(class_codes, probs_d, drop_axis=0, dtype=np.uint8, target=t, threshold=model.decision_threshold)
    target_d = probs_d[t]
    raw_codes, target, n_clear, span = dask.compute(codes_d, target_d, obs.n_clear, obs.span)
    if read_clear_only:
        # Outside the regions only some dates (or none) were read: say "not counted" (-1,
        # as for a pixel never seen) rather than a count that looks complete.
        outside = ~inside_regions(regions, tile.geobox)
        n_clear = np.where(outside, -1, n_clear).astype(n_clear.dtype)
        span = np.where(outside[None], -1, span).astype(span.dtype)
    return Classified(raw_codes, target, n_clear, span, obs.groups)


@dataclass(frozen=True)
class RawTile:
    """A tile as classified, before the minimum mapping unit (which waits for the edges of
    the neighbouring tiles, see :func:`finish_tile`)."""

    arrays: dict[str, np.ndarray]
    """``codes_raw`` (class codes before the unit), ``prob``, ``n_clear``, ``first_day``,
    ``last_day``; the map blocks themselves when ``final`` is set."""
    failed_items: tuple[str, ...] = ()
    final: TilePartial | None = None
    """The tile's result when it needs no unit: no region pixel, failed, or no scene."""


def _empty_arrays(ny: int, nx: int) -> dict[str, np.ndarray]:
    return {
        "class": np.zeros((ny, nx), np.uint8),
        "prob": np.full((ny, nx), np.nan, np.float32),
        "n_clear": np.full((ny, nx), -1, np.int16),
        "codes_raw": np.zeros((ny, nx), np.uint8),
        "first_day": np.zeros((ny, nx), np.uint16),
        "last_day": np.zeros((ny, nx), np.uint16),
    }


def process_tile(
    tile: Tile,
    plan: Plan,
    items: Mapping[str, pystac.Item],
    regions: Sequence[Region],
    model: Model,
    estimator: Any,
    job: JobConfig,
    compute_slot: AbstractContextManager[Any],
) -> RawTile:
    """One tile's classified pixels (the minimum mapping unit, sums and plots follow in
    :func:`finish_tile`, once the neighbouring tiles are classified too).

    ``estimator`` is the :class:`~estimator.stages.classify.Predictor`, or a :class:`ModelRef` to
    the copy installed on every worker. The pixels are computed inside ``compute_slot``.
    """
    ny, nx = tile.geobox.shape.yx
    ids = [r.id for r in regions]
    masks = rasterize_regions(regions, tile.geobox)
    if not masks.any():
        return RawTile(_empty_arrays(ny, nx), final=TilePartial(tile.id, "done", {}))
    with compute_slot:
        res, failed_items, error = read_robust(
            tile,
            items,
            partial(classify_tile, tile, plan, items, regions, model, estimator, job.mask.clear_scl),
        )
    area = pixel_area_m2(tile.geobox)
    expected = pixel_coverage(tile, plan)
    if error:
        log.warning("tile %s failed: %s", tile.id, error)
        return RawTile(_empty_arrays(ny, nx), final=failed_tile(tile.id, ids, masks, area, expected, error))
    if res is None:  # no scene touches this tile: nothing observed
        failed_obs = pixel_coverage(tile, plan, failed_items) if failed_items else np.zeros_like(expected)
        codes = np.zeros((ny, nx), np.uint8)
        part = aggregate_tile(tile.id, codes, model.classes, ids, masks, area, expected, failed_obs, failed_items)
        return RawTile(_empty_arrays(ny, nx), tuple(failed_items), final=part)
    # When each pixel was seen: the plots stage dates every plot.
    first_day, last_day = slice_days(res.span, [plan.items[g[0]].solar_day for g in res.groups])
    arrays = {
        "codes_raw": res.raw_codes,
        "prob": res.target.astype(np.float32),
        "n_clear": res.n_clear.astype(np.int16),
        "first_day": first_day,
        "last_day": last_day,
    }
    return RawTile(arrays, tuple(failed_items))


def min_unit_px(job: JobConfig, tile: Tile) -> int:
    """The minimum mapping unit in pixels of ``tile`` (0: none)."""
    if not job.classify.min_patch_ha:
        return 0
    return int(np.ceil(job.classify.min_patch_ha * 1e4 / float(np.median(pixel_area_m2(tile.geobox)))))


def tile_offsets(tile: Tile, plan: Plan) -> tuple[int, int]:
    """(row, column) of the tile's first pixel on the job grid."""
    a, g = tile.geobox.affine, plan.grid.affine
    return int(round((a.f - g.f) / g.e)), int(round((a.c - g.c) / g.a))


def tile_neighbours(plan: Plan) -> dict[str, list[str]]:
    """The tiles of the plan that touch each tile (edge or corner)."""
    box = {t.id: (*tile_offsets(t, plan), *t.geobox.shape.yx) for t in plan.tiles}
    by_start: dict[tuple[int, int], str] = {(r, c): tid for tid, (r, c, _, _) in box.items()}
    rows = sorted({r for r, _ in by_start})
    cols = sorted({c for _, c in by_start})
    out: dict[str, list[str]] = {}
    for tid, (r, c, _, _) in box.items():
        i, j = rows.index(r), cols.index(c)
        near = [
            (rows[a], cols[b])
            for a in range(max(i - 1, 0), min(i + 2, len(rows)))
            for b in range(max(j - 1, 0), min(j + 2, len(cols)))
        ]
        out[tid] = [by_start[k] for k in near if k in by_start and by_start[k] != tid]
    return out


def halo_window(
    tile: Tile, plan: Plan, codes: np.ndarray, neighbours: Sequence[Tile], read_codes: Any, halo: int
) -> np.ndarray:
    """``codes`` with ``halo`` pixels of the neighbouring tiles' raw codes around them (0,
    "unobserved", beyond the job's tiles); ``read_codes(tile_id)`` returns a neighbour's."""
    ny, nx = codes.shape
    win = np.zeros((ny + 2 * halo, nx + 2 * halo), np.uint8)
    win[halo : halo + ny, halo : halo + nx] = codes
    if halo == 0:
        return win
    r0, c0 = tile_offsets(tile, plan)
    top, left = r0 - halo, c0 - halo
    for nb in neighbours:
        nr, nc = tile_offsets(nb, plan)
        nny, nnx = nb.geobox.shape.yx
        ra, rb = max(nr, top), min(nr + nny, top + win.shape[0])
        ca, cb = max(nc, left), min(nc + nnx, left + win.shape[1])
        if ra < rb and ca < cb:
            win[ra - top : rb - top, ca - left : cb - left] = read_codes(nb.id)[ra - nr : rb - nr, ca - nc : cb - nc]
    return win


def finish_tile(
    tile: Tile,
    plan: Plan,
    regions: Sequence[Region],
    model: Model,
    raw: RawTile,
    window: np.ndarray,
    halo: int,
    min_px: int,
) -> tuple[TilePartial, dict[str, np.ndarray]]:
    """The minimum mapping unit, per-region sums, map blocks and plots of a classified tile.

    ``window`` is the tile's raw codes with ``halo`` pixels of its neighbours' around them
    (:func:`halo_window`), so a patch cut by a tile edge is judged whole: a patch with a
    pixel in the tile that is smaller than the unit lies wholly within ``halo >= min_px - 1``
    pixels of it, and one the window cuts has more pixels in it than the unit. The class a
    removed patch takes (its largest neighbour's) is judged within the window.
    """
    ny, nx = tile.geobox.shape.yx
    ids = [r.id for r in regions]
    masks = rasterize_regions(regions, tile.geobox)
    area = pixel_area_m2(tile.geobox)
    expected = pixel_coverage(tile, plan)
    failed = list(raw.failed_items)
    failed_obs = pixel_coverage(tile, plan, failed) if failed else np.zeros_like(expected)
    a = raw.arrays
    codes, _ = sieve_codes(window, min_px)
    codes = np.ascontiguousarray(codes[halo : halo + ny, halo : halo + nx])
    part = aggregate_tile(tile.id, codes, model.classes, ids, masks, area, expected, failed_obs, failed, target_prob=a["prob"])
    part.sieved_pixels = int((codes != a["codes_raw"]).sum())
    target = model.classes.index(model.target_class) + 1
    r0, c0 = tile_offsets(tile, plan)
    layers = TileLayers(
        row_off=r0, col_off=c0, target=codes == target, target_raw=a["codes_raw"] == target, prob=a["prob"],
        first_day=a["first_day"], last_day=a["last_day"], pixel_area=area, region_masks=masks,
    )
    plots = {f"plot_{k}": v for k, v in tile_patches(layers).items()}
    return part, {"class": codes, **a, **plots}
