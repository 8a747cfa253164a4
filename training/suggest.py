"""Active learning: where to label next, from a finished run's coca probability map.

Score. For the target-class probability ``p`` the uncertainty is ``u = 1 - |2p - 1|``,
i.e. ``2 * min(p, 1 - p)``: for a calibrated model it is twice the chance that the pixel's
coca / not-coca call is wrong, it is linear in the distance to the 0.5 boundary (entropy
ranks pixels identically but compresses the top), and ``sum(min(p, 1 - p) * area)`` is
the expected mislabelled area in hectares. Candidates are pixels that were observed, lie
inside a region and have ``u > 0``.

Allocation. ``n`` is split across regions in proportion to ``uncertain_ha +
se_area_ha``: the expected mislabelled target hectares of the region's observed part,
plus the standard error of its target area when ``estimates.json`` carries one (an
assessed run). Both are hectares the next labels can buy down; regions with much mapped
coca near the boundary, or a wide CI, get more. Every region gets ``min_per_region``
when ``n`` allows; ``per_region=True`` splits ``n`` equally instead.

Spread. No two suggestions are closer than ``min_distance_m`` (ground distance on the
grid). The class map is streamed block by block: per cell of side
``min_distance / sqrt(2)`` (any two of its pixels are too close to both be chosen) only
the most uncertain pixel is kept, and per region only the best ``16 n`` of those (one
accepted point can exclude at most 16 cells), so memory is bounded by the block and ``n``,
not the region. A greedy pass in score order over all regions then accepts a candidate
when its region's quota is open and no accepted point is within the distance (grid hash).
Ties break on seeded random keys, so the output is deterministic.

Output. A GeoJSON FeatureCollection (RFC 7946, lon/lat points at pixel centres, with the
pixel footprint as ``pixel_wkt``) whose properties include empty ``class``, ``observed``
and ``interpreter`` fields and ``plot_id``/``source`` so the labeled file can go back
through ``python -m training labels add``; its ``suggest`` member records the design.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
from numpy.typing import ArrayLike
from pyproj import Transformer
from rasterio.windows import Window
from tqdm.auto import tqdm

from estimator.errors import EstimatorError
from estimator.run.rundir import ESTIMATES_FILE, RunDir

__all__ = [
    "Candidates",
    "allocate_regions",
    "block_candidates",
    "select_spaced",
    "suggest",
    "top_per_region",
    "uncertainty",
]

#: Cells of side d / sqrt(2) that a disc of radius d can touch: at most 4 x 4.
_CELLS_PER_PICK = 16
_BLOCK = 2048
_CORNERS = ((0, 0), (0, 1), (1, 1), (1, 0), (0, 0))  # (dcol, drow), counter-clockwise on a north-up grid


def uncertainty(p: np.ndarray) -> np.ndarray:
    """``1 - |2p - 1|``: 1 at p = 0.5, 0 at p in {0, 1}, NaN where p is NaN."""
    return 1.0 - np.abs(2.0 * np.asarray(p, dtype=np.float64) - 1.0)


@dataclass(frozen=True)
class Candidates:
    """Candidate pixels, one array entry each."""

    rows: np.ndarray
    cols: np.ndarray
    region: np.ndarray
    """Index into ``RunDir.regions``."""
    prob: np.ndarray
    score: np.ndarray
    """Uncertainty ``u``."""
    tiebreak: np.ndarray
    """Seeded uniform key: among equal scores the smaller wins."""
    code: np.ndarray
    """Class-map code (1 + index into ``RunDir.classes``)."""
    valid_obs: np.ndarray

    def take(self, idx: np.ndarray) -> Candidates:
        return Candidates(*(getattr(self, f)[idx] for f in _FIELDS))

    def priority(self) -> np.ndarray:
        """Indices in selection order: highest score first, then tie-break key."""
        return np.lexsort((self.tiebreak, -self.score))

    @staticmethod
    def concat(parts: Sequence[Candidates]) -> Candidates:
        return Candidates(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))


_FIELDS = tuple(Candidates.__dataclass_fields__)


def block_candidates(
    prob: np.ndarray,
    region: np.ndarray,
    code: np.ndarray,
    valid_obs: np.ndarray,
    *,
    cell: int,
    row_off: int,
    col_off: int,
    rng: np.random.Generator,
) -> Candidates:
    """The most uncertain pixel per ``cell x cell`` cell of one block (cells aligned to the grid).

    ``region`` holds the region index per pixel (-1 outside every region); ``code`` the class
    map (0 = unobserved). Pixels with ``u == 0`` or NaN probability are never candidates.
    """
    u = uncertainty(prob)
    rr, cc = np.nonzero((region >= 0) & (code > 0) & (u > 0))
    score = u[rr, cc]
    tb = rng.random(rr.size)
    # Grid-aligned cells, numbered from the block's first cell.
    gr = (rr + row_off) // cell - row_off // cell
    gc = (cc + col_off) // cell - col_off // cell
    cell_id = gr * (prob.shape[1] // cell + 2) + gc
    order = np.lexsort((tb, -score, cell_id))
    first = order[np.r_[True, cell_id[order][1:] != cell_id[order][:-1]]] if order.size else order
    r, c = rr[first], cc[first]
    return Candidates(
        r + row_off,
        c + col_off,
        region[r, c].astype(np.int64),
        prob[r, c].astype(np.float64),
        score[first],
        tb[first],
        code[r, c].astype(np.int64),
        valid_obs[r, c].astype(np.int64),
    )


def top_per_region(c: Candidates, k: int) -> Candidates:
    """At most ``k`` candidates per region, the highest priority ones."""
    order = c.priority()
    order = order[np.argsort(c.region[order], kind="stable")]
    reg = c.region[order]
    starts = np.searchsorted(reg, reg, side="left")
    keep = np.arange(reg.size) - starts < k
    return c.take(np.sort(order[keep]))


def allocate_regions(weights: ArrayLike, caps: ArrayLike, n: int, minimum: int = 0) -> np.ndarray:
    """Split ``n`` across regions: ``clip(lam * weight, floor, cap)`` with ``lam`` chosen so the
    parts sum to ``min(n, sum(caps))``, then rounded by largest remainders.

    ``floor`` is ``minimum`` (lowered to ``n // regions`` when ``n`` is too small, and to the
    cap); so a region gets the larger of its minimum and its proportional share. Regions of
    zero weight fill last; all-zero weights split equally.
    """
    cap = np.asarray(caps, dtype=np.int64)
    live = cap > 0
    n = int(min(n, cap.sum()))
    floor = np.minimum(cap, min(minimum, n // max(int(live.sum()), 1)))
    w = np.where(live, np.maximum(np.asarray(weights, dtype=np.float64), 0.0), 0.0)
    w = w if w.sum() > 0 else live.astype(np.float64)
    w = w + live * w.max() * 1e-9

    def parts(lam: float) -> np.ndarray:
        return np.clip(lam * w, floor, cap)

    lo, hi = 0.0, 1.0
    while parts(hi).sum() < n:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if parts(mid).sum() < n else (lo, mid)
    x = parts(hi)
    alloc = np.floor(x).astype(np.int64)
    while alloc.sum() < n:
        alloc[np.argmax(np.where(alloc < cap, x - alloc, -np.inf))] += 1
    while alloc.sum() > n:
        alloc[np.argmax(np.where(alloc > floor, alloc - x, -np.inf))] -= 1
    return alloc


def select_spaced(c: Candidates, quota: ArrayLike, min_dist_m: float, res: tuple[float, float]) -> np.ndarray:
    """Greedy in priority order: accept while the region's quota is open and nothing accepted
    lies within ``min_dist_m``. ``res`` is the (x, y) pixel size in metres. Returns indices."""
    rx, ry = abs(res[0]), abs(res[1])
    hx, hy = max(min_dist_m / rx, 1.0), max(min_dist_m / ry, 1.0)
    d2 = min_dist_m**2
    left = np.asarray(quota, dtype=np.int64).copy()
    taken: dict[tuple[int, int], list[tuple[int, int]]] = {}
    out: list[int] = []
    for i in c.priority():
        reg = int(c.region[i])
        if left[reg] <= 0:
            continue
        r, col = int(c.rows[i]), int(c.cols[i])
        key = (int(r // hy), int(col // hx))
        near = (p for dr in (-1, 0, 1) for dc in (-1, 0, 1) for p in taken.get((key[0] + dr, key[1] + dc), ()))
        if d2 > 0 and any(((p[0] - r) * ry) ** 2 + ((p[1] - col) * rx) ** 2 < d2 for p in near):
            continue
        taken.setdefault(key, []).append((r, col))
        out.append(int(i))
        left[reg] -= 1
        if not left.any():
            break
    return np.asarray(out, dtype=np.int64)


def _region_se(run: RunDir, target: str) -> np.ndarray:
    """``se_area_ha`` of the target class per region from estimates.json (0 when absent)."""
    se = np.zeros(len(run.regions))
    if not (run.path / ESTIMATES_FILE).is_file():
        return se
    ids = [r.id for r in run.regions]
    for rec in run.estimates().get("records", []):
        if rec.get("class") == target and rec.get("region") in ids and rec.get("se_area_ha") is not None:
            se[ids.index(rec["region"])] = float(rec["se_area_ha"])
    return se


def _scan(
    run: RunDir, prob_path: Any, cell: int, keep: int, seed: int, progress: bool
) -> tuple[Candidates, np.ndarray, np.ndarray, np.ndarray]:
    """One streaming pass: thinned candidates (top ``keep`` per region), and per region the
    expected mislabelled hectares, observed pixels and the sum of their uncertainty."""
    nreg = len(run.regions)
    unc_ha, n_obs, sum_u = np.zeros(nreg), np.zeros(nreg, dtype=np.int64), np.zeros(nreg)
    kept: Candidates | None = None
    block = cell * max(_BLOCK // cell, 1)
    with rasterio.open(prob_path) as psrc, rasterio.open(run.path / "maps" / "valid_obs_count.tif") as vsrc:
        for b in tqdm(list(run.blocks(block)), desc="scan", unit="block", disable=not progress, leave=False):
            win = Window(b.col_off, b.row_off, b.codes.shape[1], b.codes.shape[0])
            prob, nobs = psrc.read(1, window=win), vsrc.read(1, window=win)
            # Overlapping regions: a pixel counts for the first region that holds it.
            region = np.where(b.regions.any(axis=0), b.regions.argmax(axis=0), -1)
            obs = (region >= 0) & (b.codes > 0) & np.isfinite(prob)
            u = np.where(obs, uncertainty(np.where(obs, prob, 0.0)), 0.0)
            ri = region[obs]
            n_obs += np.bincount(ri, minlength=nreg)
            sum_u += np.bincount(ri, weights=u[obs], minlength=nreg)
            unc_ha += np.bincount(ri, weights=(u[obs] / 2) * b.pixel_area_m2[obs], minlength=nreg) / 1e4
            rng = np.random.default_rng([seed, b.row_off, b.col_off])
            c = block_candidates(
                np.where(obs, prob, np.nan),
                region,
                b.codes,
                nobs,
                cell=cell,
                row_off=b.row_off,
                col_off=b.col_off,
                rng=rng,
            )
            kept = top_per_region(c if kept is None else Candidates.concat([kept, c]), keep)
    if kept is None:
        raise EstimatorError(f"{run.path}: the class map is empty")
    return kept, unc_ha, n_obs, sum_u


def suggest(
    run: RunDir,
    n: int,
    *,
    min_distance_m: float = 200.0,
    per_region: bool = False,
    min_per_region: int = 10,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Propose ``n`` pixels to label next and return them as a GeoJSON FeatureCollection (dict).

    Fewer than ``n`` come back when the regions hold fewer spaced uncertain pixels; the
    ``suggest.regions`` member records, per region, the allocation and what was placed.
    """
    if n < 1:
        raise EstimatorError(f"--n must be at least 1, got {n}")
    if not (min_distance_m >= 0 and math.isfinite(min_distance_m)):
        raise EstimatorError(f"--min-distance-m must be a non-negative number of metres, got {min_distance_m}")
    if run.grid.crs is None or run.grid.crs.geographic:
        raise EstimatorError(
            f"{run.path}: the run's grid has no projected CRS ({run.grid.crs}); suggestions need metres"
        )
    target = str(run.manifest["model"].get("target_class", "coca"))
    prob_path = run.path / "maps" / f"{target}_probability.tif"
    if not prob_path.is_file():
        raise EstimatorError(
            f"{run.path} has no maps/{prob_path.name}; rerun the job with this version of `estimator run`"
        )
    res = (float(run.grid.resolution.x), float(run.grid.resolution.y))
    cell = max(int(min_distance_m / max(abs(res[0]), abs(res[1])) / math.sqrt(2)), 1)
    keep = n * (_CELLS_PER_PICK if min_distance_m > 0 else 1)
    cand, unc_ha, n_obs, sum_u = _scan(run, prob_path, cell, keep, seed, progress)
    if cand.rows.size == 0:
        raise EstimatorError(
            f"{run.path}: no uncertain pixel (0 < {target} probability < 1) observed inside the regions; nothing to suggest"
        )

    se = _region_se(run, target)
    weights = np.ones(len(run.regions)) if per_region else unc_ha + se
    caps = np.bincount(cand.region, minlength=len(run.regions))
    # Spacing can leave a region short of its quota; pin it at what it got and share the rest again.
    for _ in range(len(run.regions) + 1):
        quota = allocate_regions(weights, caps, n, 0 if per_region else min_per_region)
        picked = select_spaced(cand, quota, min_distance_m, res)
        got = np.bincount(cand.region[picked], minlength=len(run.regions))
        if (got == quota).all():
            break
        caps = np.where(got < quota, got, caps)
    sel = cand.take(picked)
    return _feature_collection(
        run,
        sel,
        target,
        {
            "n_requested": n,
            "min_distance_m": min_distance_m,
            "seed": seed,
            "per_region": per_region,
            "min_per_region": min_per_region,
            "thinning_cell_px": cell,
            "regions": [
                {
                    "region": r.id,
                    "weight": round(float(weights[i]), 6),
                    "uncertain_ha": round(float(unc_ha[i]), 6),
                    "se_area_ha": round(float(se[i]), 6),
                    "observed_pixels": int(n_obs[i]),
                    "mean_uncertainty_observed": float(sum_u[i] / n_obs[i]) if n_obs[i] else None,
                    "allocated": int(quota[i]),
                    "suggested": int(got[i]),
                }
                for i, r in enumerate(run.regions)
            ],
        },
    )


def _crs_label(run: RunDir) -> str:
    crs = run.grid.crs
    return f"EPSG:{crs.epsg}" if crs is not None and crs.epsg else str(crs)


def _feature_collection(run: RunDir, s: Candidates, target: str, design: dict[str, Any]) -> dict[str, Any]:
    model_id = str(run.manifest["model"]["id"])
    rank = np.empty(s.rows.size, dtype=np.int64)
    rank[s.priority()] = np.arange(1, s.rows.size + 1)
    order = np.lexsort((rank, s.region))
    to_ll = Transformer.from_crs(run.grid.crs, "EPSG:4326", always_xy=True)
    x, y = run.pixel_xy(s.rows, s.cols)
    lon, lat = to_ll.transform(x, y)
    # Footprint corners: pixel_xy gives centres, so shift by half a pixel each way.
    ring = [to_ll.transform(*run.pixel_xy(s.rows + dr - 0.5, s.cols + dc - 0.5)) for dc, dr in _CORNERS]
    features = []
    for i in order:
        sid = f"suggest-{model_id}-{rank[i]:05d}"
        props = {
            "suggestion_id": sid,
            "region": run.regions[s.region[i]].id,
            "rank": int(rank[i]),
            f"{target}_probability": round(float(s.prob[i]), 6),
            "uncertainty": round(float(s.score[i]), 6),
            "class_mapped": run.classes[s.code[i] - 1],
            "valid_obs": int(s.valid_obs[i]),
            "row": int(s.rows[i]),
            "col": int(s.cols[i]),
            "x": float(x[i]),
            "y": float(y[i]),
            "pixel_wkt": "POLYGON ((" + ", ".join(f"{cx[i]:.8f} {cy[i]:.8f}" for cx, cy in ring) + "))",
            "model_id": model_id,
            "run_config_hash": run.manifest.get("config_hash"),
            "synthetic": run.synthetic,
            "plot_id": sid,
            "source": f"suggest:{model_id}",
            "class": None,
            "observed": None,
            "interpreter": None,
        }
        geom = {"type": "Point", "coordinates": [round(float(lon[i]), 8), round(float(lat[i]), 8)]}
        features.append({"type": "Feature", "geometry": geom, "properties": props})
    return {
        "type": "FeatureCollection",
        "features": features,
        "suggest": {
            "design": "uncertainty 1-|2p-1| of the target probability; regions weighted by expected mislabelled "
            "ha + se_area_ha; greedy selection with a minimum ground distance",
            "run": str(run.path),
            "target_class": target,
            "model_id": model_id,
            "grid_crs": _crs_label(run),
            **design,
            "n": len(features),
            "synthetic": run.synthetic,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "instructions": "Look at each pixel footprint (pixel_wkt); set class to one of the classes, observed to "
            "the ISO date of the imagery you judged, interpreter to your name; then `python -m training labels add`.",
            "classes": list(run.classes),
        },
    }
