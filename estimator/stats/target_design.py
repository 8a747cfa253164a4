"""The target-area sample design: strata and allocation that minimise the standard error
of the target class's (coca's) area, not of the map's overall accuracy.

Map-class strata leave most of the variance of a rare class's area where almost no unit
lands: target pixels the map omits in the huge forest and regrowth strata. Here strata are
bins of the run's calibrated target probability, plus a buffer stratum of pixels next to
mapped target pixels (where omission concentrates), within each cell of the regions'
partition (a region, or the overlap of several). The probabilities anticipate each
stratum's target proportion (its mean probability p), so its standard deviation is
sqrt(p (1 - p)) and Neyman allocation (n_h proportional to N_h S_h) with a minimum per
stratum minimises the anticipated standard error of the area. Strata are not map classes,
so ``assess`` uses Stehman's (2014) estimator; the sample file records the design.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyproj import Transformer
from tqdm.auto import tqdm

from estimator.errors import EstimatorError
from estimator.run.rundir import Block, RunDir
from estimator.stats.area import allocate
from estimator.stats.sample import LABEL_FIELDS, SAMPLE_SCHEMA, _block_strata, _cell_regions

__all__ = [
    "DEFAULT_BINS",
    "DESIGN_ID",
    "TargetStratum",
    "anticipated_se_ha",
    "draw_target_sample",
    "neyman_allocation",
    "size_for_target_se",
    "target_strata",
]

DESIGN_ID = "target-area"
#: Inner edges of the probability bins: fine near 0, where most pixels and most omitted
#: target area lie, coarser above.
DEFAULT_BINS = (0.01, 0.03, 0.1, 0.25, 0.5, 0.75)


class TargetDesignError(EstimatorError, ValueError):
    """The target-area design cannot be drawn as asked."""


@dataclass(frozen=True)
class TargetStratum:
    id: str
    label: str
    """``p0.01-0.03`` (probability bin) or ``buffer``."""
    region: str
    """The cell: a region id, or ids joined by ``+`` where regions overlap."""
    regions: tuple[str, ...]
    pixels: int
    area_ha: float
    p: float
    """Anticipated target proportion: the stratum's mean calibrated probability."""

    @property
    def sd(self) -> float:
        return float(np.sqrt(self.p * (1.0 - self.p)))


def _labels(bins: Sequence[float]) -> list[str]:
    edges = [0.0, *bins, 1.0]
    return [f"p{a:g}-{b:g}" for a, b in itertools.pairwise(edges)] + ["buffer"]


def _codes(b: Block, bins: np.ndarray) -> np.ndarray:
    """1 + stratum index per pixel (0 = unobserved): probability bin, or buffer."""
    if b.probability is None or b.near_target is None:
        raise TargetDesignError("blocks read without the target probability; read them with RunDir.blocks(target_buffer=...)")
    prob = np.nan_to_num(b.probability, nan=0.0)
    out = np.digitize(prob, bins).astype(np.int64) + 1
    out[b.near_target] = len(bins) + 2
    out[b.codes == 0] = 0
    return out


def target_strata(
    run: RunDir, bins: Sequence[float] = DEFAULT_BINS, buffer_px: int = 1, progress: bool = False
) -> tuple[list[TargetStratum], dict[Any, int], list[int]]:
    """Pass 1: pixels, true hectares and mean probability of every non-empty stratum, the
    cell index of every region set, and each stratum's raw index for pass 2."""
    edges = np.asarray(bins, dtype=np.float64)
    if edges.size and (np.any(np.diff(edges) <= 0) or edges[0] <= 0 or edges[-1] >= 1):
        raise TargetDesignError("probability bin edges must increase strictly inside (0, 1)")
    k = len(edges) + 2
    cells: dict[Any, int] = {}
    pixels = np.zeros(0, dtype=np.int64)
    area = np.zeros(0)
    psum = np.zeros(0)
    for b in tqdm(list(run.blocks(target_buffer=buffer_px)), desc="count strata", unit="block", disable=not progress, leave=False):
        s = _block_strata(run, _codes(b, edges), b.regions, cells, grow=True, k=k)
        ok = s >= 0
        size = k * len(cells)
        pixels = np.pad(pixels, (0, size - pixels.size))
        area = np.pad(area, (0, size - area.size))
        psum = np.pad(psum, (0, size - psum.size))
        prob = np.nan_to_num(b.probability, nan=0.0) if b.probability is not None else np.zeros(s.shape)
        pixels += np.bincount(s[ok], minlength=size)
        area += np.bincount(s[ok], weights=b.pixel_area_m2[ok], minlength=size) / 1e4
        psum += np.bincount(s[ok], weights=prob[ok], minlength=size)
    order = {r.id: i for i, r in enumerate(run.regions)}
    members = {key: _cell_regions(run, key) for key in cells}
    names = _labels(list(edges))
    out: list[TargetStratum] = []
    raw: list[int] = []
    for key in sorted(cells, key=lambda key: [order[r] for r in members[key]]):
        label = "+".join(members[key])
        for c in range(k):
            i = cells[key] * k + c
            if i < pixels.size and pixels[i]:
                out.append(TargetStratum(f"{label}|{names[c]}", names[c], label, members[key], int(pixels[i]), float(area[i]), float(psum[i] / pixels[i])))
                raw.append(i)
    return out, cells, raw


def neyman_allocation(strata: Sequence[TargetStratum], n: int, min_per_stratum: int) -> np.ndarray:
    """n_h proportional to N_h sqrt(p_h (1 - p_h)), at least ``min_per_stratum`` (capped by size)."""
    sizes = np.array([s.pixels for s in strata])
    # A stratum whose probabilities are all 0 would get no weight: the minimum still samples it.
    return allocate(sizes, n, min_per_stratum, weights=sizes * np.array([s.sd for s in strata]))


def anticipated_se_ha(strata: Sequence[TargetStratum], alloc: np.ndarray, region: str | None = None) -> float:
    """Anticipated SE of the target area (ha) in ``region`` (all strata when None):
    sqrt(sum A_h^2 (1 - n_h/N_h) p_h (1 - p_h) / n_h)."""
    var = 0.0
    for s, nh in zip(strata, alloc, strict=True):
        if region is not None and region not in s.regions:
            continue
        if nh < 1:
            return float("inf")
        var += s.area_ha**2 * (1 - nh / s.pixels) * s.p * (1 - s.p) / nh
    return float(np.sqrt(var))


def size_for_target_se(strata: Sequence[TargetStratum], regions: Sequence[str], target_se_ha: float, min_per_stratum: int) -> int:
    """Smallest n whose Neyman allocation anticipates an SE of at most ``target_se_ha`` in
    every region (bisection: the SE falls with n)."""
    if target_se_ha <= 0:
        raise TargetDesignError("--target-se-ha must be positive")
    total = sum(s.pixels for s in strata)

    def worst(n: int) -> float:
        a = neyman_allocation(strata, n, min_per_stratum)
        return max(anticipated_se_ha(strata, a, r) for r in regions)

    lo = min(total, min_per_stratum * len(strata))
    if worst(lo) <= target_se_ha:
        return lo
    hi = lo
    while worst(hi) > target_se_ha:
        if hi >= total:
            raise TargetDesignError(f"no sample smaller than the whole population reaches an SE of {target_se_ha} ha; ask for a larger SE")
        hi = min(total, hi * 2)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if worst(mid) <= target_se_ha else (mid, hi)
    return hi


def draw_target_sample(
    run: RunDir,
    *,
    n: int | None = None,
    target_se_ha: float | None = None,
    min_per_stratum: int = 10,
    bins: Sequence[float] = DEFAULT_BINS,
    buffer_px: int = 1,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Draw a target-area sample and return it as a GeoJSON FeatureCollection (dict)."""
    if min_per_stratum < 2:
        raise TargetDesignError("--min-per-stratum must be at least 2: a stratum variance needs two units")
    if (n is None) == (target_se_ha is None):
        raise TargetDesignError("give either --n or --target-se-ha with --design target-area")
    if buffer_px < 0:
        raise TargetDesignError("--buffer-px must be 0 or more")
    strata, cells, raw = target_strata(run, bins, buffer_px, progress)
    if not strata:
        raise TargetDesignError(f"{run.path}: no observed pixel inside the regions; nothing to sample")
    if n is None:
        n = size_for_target_se(strata, [r.id for r in run.regions], float(target_se_ha or 0), min_per_stratum)
    alloc = neyman_allocation(strata, n, min_per_stratum)
    rng = np.random.default_rng(seed)
    ranks = [np.sort(rng.choice(s.pixels, size=int(a), replace=False)) for s, a in zip(strata, alloc, strict=True)]

    k = len(bins) + 2
    index_of = {r: j for j, r in enumerate(raw)}
    seen = np.zeros(len(strata), dtype=np.int64)
    picked: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    edges = np.asarray(bins, dtype=np.float64)
    for b in tqdm(list(run.blocks(target_buffer=buffer_px)), desc="draw sample", unit="block", disable=not progress, leave=False):
        bs = _block_strata(run, _codes(b, edges), b.regions, cells, k=k)
        for r, j in index_of.items():
            rr, cc = np.nonzero(bs == r)
            if rr.size == 0:
                continue
            hit = np.isin(seen[j] + np.arange(rr.size), ranks[j])
            seen[j] += rr.size
            if hit.any():
                picked.append((rr[hit] + b.row_off, cc[hit] + b.col_off, np.full(int(hit.sum()), j), b.codes[rr[hit], cc[hit]]))
    row, col, sidx, code = (np.concatenate(a) for a in zip(*picked, strict=True))
    o = np.lexsort((col, row, sidx))
    row, col, sidx, code = row[o], col[o], sidx[o], code[o]
    x, y = run.pixel_xy(row, col)
    lon, lat = Transformer.from_crs(run.grid.crs, "EPSG:4326", always_xy=True).transform(x, y)
    features = []
    for i in range(len(row)):
        s = strata[sidx[i]]
        props = {
            "sample_id": f"s{i:05d}", "stratum": s.id, "region": s.region, "regions": list(s.regions),
            "map_class": run.classes[int(code[i]) - 1], "row": int(row[i]), "col": int(col[i]),
            "x": float(x[i]), "y": float(y[i]), **dict.fromkeys(LABEL_FIELDS),
        }
        features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [float(lon[i]), float(lat[i])]}, "properties": props})
    return {
        "type": "FeatureCollection",
        "features": features,
        "sampling": {
            "schema": SAMPLE_SCHEMA,
            "kind": DESIGN_ID,
            "design": f"stratified random sample of pixel centres; strata = {run.target_class} probability bins and a "
            f"{buffer_px}-pixel buffer next to mapped {run.target_class}, within each cell of the regions; Neyman allocation "
            "on the anticipated proportions (mean calibrated probability); estimator Stehman (2014)",
            "by_region": True,
            "overlapping_regions": any(len(s.regions) > 1 for s in strata),
            "target_class": run.target_class,
            "probability_bins": list(bins),
            "buffer_px": buffer_px,
            "target_se_ha": target_se_ha,
            "anticipated_se_ha": {r.id: round(anticipated_se_ha(strata, alloc, r.id), 4) for r in run.regions if any(r.id in s.regions for s in strata)},
            "run": str(run.path),
            "class_map_sha256": run.class_map_sha256(),
            "grid_crs": str(run.grid.crs),
            "seed": seed,
            "n": len(features),
            "min_per_stratum": min_per_stratum,
            "strata": [
                {
                    "id": s.id, "stratum": s.label, "map_class": None, "region": s.region, "regions": list(s.regions),
                    "pixels": s.pixels, "area_ha": round(s.area_ha, 6), "anticipated_p": round(s.p, 6), "n": int(a),
                }
                for s, a in zip(strata, alloc, strict=True)
            ],
            "synthetic": run.synthetic,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "instructions": "Label each point's reference class (one of the map classes) in interpreter_1 and "
            "interpreter_2 independently; set consensus where they disagree.",
            "classes": list(run.classes),
        },
    }
