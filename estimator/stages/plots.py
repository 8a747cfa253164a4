"""Plots stage: connected patches of the target class as vectors, for field teams (QGIS).

Rules, so that the vectors and the map's hectares never disagree:

- A **plot** is a 4-connected patch of the target class in the class map (``class.tif``,
  after the minimum mapping unit). The sum of plot areas is the map's target-class area.
- A **below-MMU patch** (``below_mmu = true``) is a 4-connected patch of pixels the
  classifier called the target class but the minimum mapping unit (``classify.min_patch_ha``)
  gave to a neighbouring class. They are kept, flagged, so nothing disappears silently; they
  are not counted in the map's (nor the estimates') area. The MMU judges a patch cut by a
  tile edge whole (each tile is sieved with a margin of its neighbours' classes).
- Areas are true ground areas: sums of per-pixel areas (:func:`~estimator.grid.pixel_area_m2`),
  not planar polygon areas.
- A patch crossing a tile edge is one feature: tiles are polygonized one at a time
  (:func:`tile_patches`, as each tile is finished; memory bounded by a tile plus the
  vectors), each keeps its four border rows/columns of patch labels, and patches whose pixels are 4-adjacent across an edge are joined afterwards
  (connected components over those pixel pairs, then a polygon union).
- ``region`` is the region holding the largest share of a plot's area (pixel-centre rule,
  as in the estimates); ``regions`` lists every region it touches, largest share first.
  A plot is never split, so the per-region shares (in the manifest) add up to the
  estimates' mapped areas.
- ``first_seen``/``last_seen``: the first and last local solar date with a clear
  observation of any of the plot's pixels (when it was seen, not when it was planted).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from affine import Affine
from rasterio.features import shapes
from scipy import ndimage, sparse
from scipy.sparse.csgraph import connected_components

from estimator.location import atomic_path

__all__ = ["PLOT_FIELDS", "Plots", "TileLayers", "make_plots", "plots_summary", "slice_days", "tile_patches", "write_plots"]

#: Day numbers are days since this date (uint16: valid to 2149); 0 means "never clear".
DAY_EPOCH = dt.date(1970, 1, 1)
_NO_FIRST = np.iinfo(np.uint16).max
_FOUR = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])

PLOT_FIELDS = (
    "plot_id", "region", "regions", "area_ha", "prob_mean", "prob_max", "first_seen", "last_seen",
    "n_pixels", "below_mmu", "synthetic",
)


def slice_days(span: np.ndarray, dates: Sequence[dt.date]) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the first and last clear date as uint16 day numbers (0: never clear), from
    ``span`` (``(2, y, x)`` time-slice indices, -1 for none) and the slices' dates."""
    lut = np.array([(d - DAY_EPOCH).days for d in dates], dtype=np.uint16)
    first, last = span[0], span[1]
    return np.where(first >= 0, lut[first], 0).astype(np.uint16), np.where(last >= 0, lut[last], 0).astype(np.uint16)


def _date(day: int) -> str | None:
    return None if day in (0, _NO_FIRST) else (DAY_EPOCH + dt.timedelta(days=int(day))).isoformat()


@dataclass(frozen=True)
class TileLayers:
    """What the plots are made from, for one tile (numpy arrays of the tile's shape)."""

    row_off: int
    col_off: int
    """Offsets of the tile's first pixel on the job grid."""
    target: np.ndarray
    """Booleans: the class map (after the minimum mapping unit) says the target class."""
    target_raw: np.ndarray
    """Booleans: the classifier said the target class (before the minimum mapping unit)."""
    prob: np.ndarray
    """Target-class probability, NaN where not classified."""
    first_day: np.ndarray
    last_day: np.ndarray
    """First/last clear date as day numbers (:func:`slice_days`)."""
    pixel_area: np.ndarray
    """True area of each pixel, m^2."""
    region_masks: np.ndarray
    """``(n_regions, y, x)`` booleans (pixel-centre rule)."""


@dataclass(frozen=True)
class Plots:
    """The plots of a job."""

    frame: Any
    """GeoDataFrame: :data:`PLOT_FIELDS` and ``geometry`` in the grid's CRS."""
    region_m2: dict[str, tuple[float, float]]
    """Per region: true area (m^2) of plot pixels and of below-MMU pixels inside it."""


@dataclass
class _Patches:
    """Per-patch sums of all tiles, indexed by a global patch number; additive across tiles."""

    n_regions: int
    geoms: list[Any] = field(default_factory=list)
    cols: dict[str, list[np.ndarray]] = field(default_factory=dict)
    edges: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    strips: dict[tuple[bool, str, int], list[tuple[int, np.ndarray]]] = field(default_factory=dict)
    """(below_mmu, side, grid line) -> (offset along the line, global patch numbers or -1)."""

    def add(self, name: str, values: np.ndarray) -> None:
        self.cols.setdefault(name, []).append(values)

    def col(self, name: str) -> np.ndarray:
        return np.concatenate(self.cols[name]) if name in self.cols else np.zeros(0)


def _reduce_sorted(values: np.ndarray, labels: np.ndarray, n: int, ufunc: np.ufunc) -> np.ndarray:
    """``ufunc.reduceat`` of ``values`` per label 1..n (every label present in ``labels``)."""
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], np.arange(1, n + 1))
    return np.asarray(ufunc.reduceat(values[order], starts))


_SIDES = ("top", "bottom", "left", "right")


def tile_patches(t: TileLayers) -> dict[str, np.ndarray]:
    """One tile's plots and below-MMU patches as flat arrays (empty when it has none): the
    per-tile half of :func:`make_plots`, run where the tile is finished and kept in its
    checkpoint, so that the job's end only joins patches across tile edges.

    Keys: per patch ``n_pixels``, ``area_m2``, ``prob_sum``, ``prob_n``, ``prob_max``,
    ``first``, ``last``, ``below_mmu``, ``region_m2`` (patch x region), the polygons as WKB
    (``wkb`` bytes, cut at ``wkb_end``), ``offsets`` (row, col, rows, cols of the tile on the
    grid) and per kind and side the tile's border row/column of patch numbers (-1: none).
    """
    kept = np.asarray(t.target, dtype=bool)
    pieces = [_tile_kind(t, kept, False), _tile_kind(t, np.asarray(t.target_raw, dtype=bool) & ~kept, True)]
    if not any(pieces):
        return {}
    out: dict[str, np.ndarray] = {"offsets": np.array([t.row_off, t.col_off, *kept.shape], np.int64)}
    n_kept = len(pieces[0].get("n_pixels", ()))
    for name in _COLS:
        out[name] = np.concatenate([p[name] for p in pieces if p])
    wkb = [w for p in pieces if p for w in p["wkb"]]
    out["wkb"] = np.frombuffer(b"".join(wkb), np.uint8)
    out["wkb_end"] = np.cumsum([len(w) for w in wkb], dtype=np.int64)
    for below, p in ((False, pieces[0]), (True, pieces[1])):
        for side in _SIDES:
            strip = p[side] if p else np.full(kept.shape[0 if side in ("left", "right") else 1], -1, np.int64)
            # Patch numbers are per tile: below-MMU patches follow the plots.
            out[f"strip_{int(below)}_{side}"] = np.where(strip >= 0, strip + (n_kept if below else 0), -1)
    return out


_COLS = ("n_pixels", "area_m2", "prob_sum", "prob_n", "prob_max", "first", "last", "below_mmu", "region_m2")


def _tile_kind(t: TileLayers, kind_mask: np.ndarray, below_mmu: bool) -> dict[str, Any]:
    labels, n = ndimage.label(kind_mask, structure=_FOUR)
    if n == 0:
        return {}
    out: dict[str, Any] = {}
    flat = labels.ravel()
    sel = np.flatnonzero(flat)
    lab = flat[sel]
    area = t.pixel_area.ravel()[sel]
    prob = t.prob.ravel()[sel]
    finite = np.isfinite(prob)
    out["n_pixels"] = np.bincount(lab, minlength=n + 1)[1:]
    out["area_m2"] = np.bincount(lab, weights=area, minlength=n + 1)[1:]
    out["prob_sum"] = np.bincount(lab[finite], weights=prob[finite], minlength=n + 1)[1:]
    out["prob_n"] = np.bincount(lab[finite], minlength=n + 1)[1:]
    out["prob_max"] = _reduce_sorted(np.where(finite, prob, -np.inf), lab, n, np.maximum)
    first = t.first_day.ravel()[sel]
    out["first"] = _reduce_sorted(np.where(first > 0, first, _NO_FIRST).astype(np.int64), lab, n, np.minimum)
    out["last"] = _reduce_sorted(t.last_day.ravel()[sel].astype(np.int64), lab, n, np.maximum)
    out["below_mmu"] = np.full(n, below_mmu)
    masks = t.region_masks.reshape(len(t.region_masks), -1)[:, sel]
    shares = np.stack([np.bincount(lab[m], weights=area[m], minlength=n + 1)[1:] for m in masks], axis=1)
    out["region_m2"] = shares.reshape(n, len(t.region_masks))
    # Polygons in grid pixel units: integer coordinates, so pieces from two tiles share
    # their edge exactly and union cleanly; mapped to the CRS once at the end.
    to_grid = Affine.translation(t.col_off, t.row_off)
    parts: list[list[Any]] = [[] for _ in range(n)]
    for geom, value in shapes(labels, mask=labels > 0, connectivity=4, transform=to_grid):
        parts[int(value) - 1].append(shapely.geometry.shape(geom))
    geoms = [p[0] if len(p) == 1 else shapely.union_all(p) for p in parts]
    out["wkb"] = list(shapely.to_wkb(np.asarray(geoms, dtype=object)))
    lid = labels.astype(np.int64) - 1
    out.update(top=lid[0], bottom=lid[-1], left=lid[:, 0], right=lid[:, -1])
    return out


def _add_tile(acc: _Patches, piece: dict[str, np.ndarray]) -> None:
    """Append one tile's :func:`tile_patches` to the job's patches (global numbering)."""
    if not piece:
        return
    base = len(acc.geoms)
    for name in _COLS:
        acc.add(name, piece[name])
    wkb = piece["wkb"].tobytes()
    ends = piece["wkb_end"]
    starts = np.concatenate([[0], ends[:-1]])
    acc.geoms.extend(shapely.from_wkb([wkb[a:b] for a, b in zip(starts, ends, strict=True)]))
    row_off, col_off, ny, nx = (int(v) for v in piece["offsets"])
    for below in (False, True):
        for side, line, along in (
            ("top", row_off, col_off),
            ("bottom", row_off + ny, col_off),
            ("left", col_off, row_off),
            ("right", col_off + nx, row_off),
        ):
            strip = piece[f"strip_{int(below)}_{side}"]
            if (strip >= 0).any():
                gid = np.where(strip >= 0, strip + base, -1)
                acc.strips.setdefault((below, side, line), []).append((along, gid))


def _edge_pairs(acc: _Patches) -> tuple[np.ndarray, np.ndarray]:
    """Global patch numbers of one kind 4-adjacent across tile edges (a bottom row meets the
    next tile's top row on the same grid line; a right column meets the next tile's left
    column). A plot and a below-MMU patch are never joined."""
    a_all: list[np.ndarray] = []
    b_all: list[np.ndarray] = []
    for (kind, side, line), strips in acc.strips.items():
        if side not in ("bottom", "right"):
            continue
        other = acc.strips.get((kind, "top" if side == "bottom" else "left", line), [])
        for off_a, sa in strips:
            for off_b, sb in other:
                lo, hi = max(off_a, off_b), min(off_a + len(sa), off_b + len(sb))
                if lo >= hi:
                    continue
                a, b = sa[lo - off_a : hi - off_a], sb[lo - off_b : hi - off_b]
                both = (a >= 0) & (b >= 0)
                a_all.append(a[both])
                b_all.append(b[both])
    if not a_all:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(a_all), np.concatenate(b_all)


def make_plots(
    tiles: Iterable[TileLayers | dict[str, np.ndarray]],
    *,
    grid_affine: Affine,
    crs: str,
    region_ids: Sequence[str],
    synthetic: bool,
) -> Plots:
    """Plots and below-MMU patches of all tiles, in the grid's CRS.

    ``tiles`` is consumed one at a time (pass a generator to keep one tile in memory); each
    is a tile's layers, or its :func:`tile_patches` made earlier (where the tile was
    finished), so that only the join across tile edges is left here.
    Columns are :data:`PLOT_FIELDS` and ``geometry``; plots come first, largest first.
    """
    import geopandas as gpd

    acc = _Patches(len(region_ids))
    for t in tiles:
        _add_tile(acc, tile_patches(t) if isinstance(t, TileLayers) else t)
    n = len(acc.geoms)
    if n == 0:
        empty = gpd.GeoDataFrame({k: [] for k in PLOT_FIELDS}, geometry=[], crs=crs)
        return Plots(empty, {rid: (0.0, 0.0) for rid in region_ids})
    a, b = _edge_pairs(acc)
    graph = sparse.coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
    n_plots, comp = connected_components(graph, directed=False)

    def summed(name: str) -> np.ndarray:
        v = acc.col(name)
        if v.ndim == 1:
            return np.bincount(comp, weights=v, minlength=n_plots)
        return np.stack([np.bincount(comp, weights=v[:, j], minlength=n_plots) for j in range(v.shape[1])], axis=1)

    def reduced(name: str, ufunc: np.ufunc, init: float) -> np.ndarray:
        out = np.full(n_plots, init, dtype=np.float64)
        ufunc.at(out, comp, acc.col(name))
        return out

    geoms: list[Any] = [None] * n_plots
    members: dict[int, list[int]] = {}
    for i, c in enumerate(comp):
        members.setdefault(int(c), []).append(i)
    for c, idx in members.items():
        geoms[c] = acc.geoms[idx[0]] if len(idx) == 1 else shapely.union_all([acc.geoms[i] for i in idx])
    # Drop the vertices left in the middle of straight edges (pixel corners, joined tile
    # edges): the same polygons, smaller files.
    geoms = list(shapely.simplify(np.asarray(geoms, dtype=object), 0.0, preserve_topology=True))
    a_ = grid_affine
    geoms_crs = shapely.transform(
        np.asarray(geoms, dtype=object),
        lambda xy: np.column_stack([a_.a * xy[:, 0] + a_.b * xy[:, 1] + a_.c, a_.d * xy[:, 0] + a_.e * xy[:, 1] + a_.f]),
    )
    # below_mmu is the same for all members (edges join patches of one kind only).
    below = reduced("below_mmu", np.maximum, 0).astype(bool)
    share = summed("region_m2")
    prob_n = summed("prob_n")
    first = reduced("first", np.minimum, _NO_FIRST).astype(int)
    last = reduced("last", np.maximum, 0).astype(int)
    area_ha = summed("area_m2") / 1e4
    ids = np.asarray(region_ids, dtype=object)

    def touched(row: np.ndarray) -> str:
        order = [j for j in np.argsort(-row, kind="stable") if row[j] > 0]
        return ";".join(str(ids[j]) for j in order)

    gdf = gpd.GeoDataFrame(
        {
            "region": [str(ids[j]) if s[j] > 0 else "" for j, s in zip(np.argmax(share, axis=1), share, strict=True)],
            "regions": [touched(s) for s in share],
            "area_ha": area_ha,
            "prob_mean": np.round(np.divide(summed("prob_sum"), prob_n, out=np.full(n_plots, np.nan), where=prob_n > 0), 4),
            "prob_max": np.round(np.where(prob_n > 0, reduced("prob_max", np.maximum, -np.inf), np.nan), 4),
            "first_seen": [_date(d) for d in first],
            "last_seen": [_date(d) for d in last],
            "n_pixels": summed("n_pixels").astype(np.int64),
            "below_mmu": below,
            "synthetic": np.full(n_plots, synthetic),
        },
        geometry=geoms_crs,
        crs=crs,
    )
    # Deterministic order and ids: plots first, largest first, then by position.
    cent = shapely.centroid(geoms_crs)
    gdf["_x"], gdf["_y"] = shapely.get_x(cent), shapely.get_y(cent)
    gdf = gdf.sort_values(["below_mmu", "area_ha", "_y", "_x"], ascending=[True, False, False, True], kind="stable")
    gdf = gdf.drop(columns=["_x", "_y"]).reset_index(drop=True)
    gdf.insert(0, "plot_id", np.arange(1, len(gdf) + 1, dtype=np.int64))
    region_m2 = {rid: (float(share[~below, j].sum()), float(share[below, j].sum())) for j, rid in enumerate(region_ids)}
    return Plots(gdf, region_m2)


def plots_summary(plots: Plots, min_patch_ha: float) -> dict[str, Any]:
    """The manifest's ``plots`` record: counts and true areas of plots and below-MMU patches,
    in total and per region (area shares, pixel-centre rule)."""
    gdf = plots.frame
    below = gdf["below_mmu"].to_numpy(dtype=bool)
    area = gdf["area_ha"].to_numpy(dtype=float)
    return {
        "files": ["plots.geoparquet", "plots.geojson"],
        "min_patch_ha": min_patch_ha,
        "n_plots": int((~below).sum()),
        "area_ha": round(float(area[~below].sum()), 4),
        "n_below_mmu": int(below.sum()),
        "below_mmu_area_ha": round(float(area[below].sum()), 4),
        "by_region": {
            rid: {"area_ha": round(kept / 1e4, 4), "below_mmu_area_ha": round(flagged / 1e4, 4)}
            for rid, (kept, flagged) in plots.region_m2.items()
        },
        "rule": (
            "plots: 4-connected target-class patches of the class map (their areas add up to its "
            "mapped area); below_mmu: patches the minimum mapping unit removed from the map, "
            "kept and flagged, not counted in any area"
        ),
    }


def write_plots(run_dir: Path, gdf: Any) -> None:
    """``plots.geoparquet`` (grid CRS) and ``plots.geojson`` (RFC 7946: WGS84 lon/lat),
    each written to a temporary name and renamed into place."""
    with atomic_path(run_dir / "plots.geoparquet") as tmp:
        gdf.to_parquet(tmp, index=False, compression="zstd", write_covering_bbox=True)
    with atomic_path(run_dir / "plots.geojson") as tmp:
        gdf.to_crs("EPSG:4326").to_file(tmp, driver="GeoJSON", engine="pyogrio", layer="plots", layer_options={"RFC7946": "YES"})
