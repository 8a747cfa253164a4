"""The target-area sample design: strata and allocation that minimise the standard error
of the target class's (coca's) area, not of the map's overall accuracy.

Map-class strata leave most of the variance of a rare class's area where almost no unit
lands: target pixels the map omits in the huge forest and regrowth strata. Here strata are
bins of the run's target probability, plus a buffer stratum of pixels next to mapped target
pixels (where omission concentrates), within each cell of the regions' partition (a region,
or the overlap of several). Strata are not map classes, so ``assess`` uses Stehman's (2014)
estimator; the sample file records the design.

**Anticipated proportions.** Neyman allocation (n_h proportional to N_h S_h, S_h =
sqrt(p_h (1 - p_h))) needs each stratum's target proportion p_h before any unit is labelled.
The model's probabilities are calibrated out of fold on the training plots, but the regions
differ from those plots (far less coca, confusers the plots do not hold): on the hard world a
probability of 0.2-0.25 holds 2-5 % coca in the regions, against about 37 % on the training
plots. So the probabilities are recalibrated per cell of the regions with a logistic curve
``logit q = a + b logit p`` (monotone, so it keeps the model's ranking) whose two parameters
are set, without labels, by two out-of-fold figures of the model card's decision rule:

1. the anticipated target area of the cell is the mapped target area divided by the map's
   out-of-fold mapped/true ratio (1 for the card's threshold rule, chosen so);
2. the anticipated share of target among the mapped target pixels is the out-of-fold
   precision (1 - commission) of that rule.

A cell with fewer than ``_MIN_MAPPED`` mapped target pixels takes the curve fitted on all
cells together; a card without these figures leaves the probabilities as they are (the
sample file says which was used).

**Bin edges** (default): per cell, ``strata_per_region`` bins that hold equal shares of the
anticipated sum of N_h S_h, sqrt(q (1 - q)) summed over pixels of the recalibrated
probability q (the cumulative rule of Dalenius and Hodges applied to the anticipated standard
deviation rather than to sqrt(frequency)): bins are narrow where the target concentrates and
one wide bin takes the mass of pixels that anticipate almost none. Few wide bins there
matter: ``assess`` gives a stratum whose units show no target the zero-cell variance
(about N_h^2 / n_h^2 pixels^2), so every near-empty stratum costs units; on the development
seeds, cutting on the model's own probabilities (several near-empty bins) gave intervals
17-36 % wider (n = 1,000). Fixed edges (``bins=``) remain possible.

**Small strata are merged** before allocation (the rule): a probability bin of a cell with
fewer than ``min_per_stratum`` pixels (so that it could not receive the minimum, or fewer than
the two units a stratum variance needs) joins its neighbouring bin of the same cell, the
lower-probability one (the upper one for the lowest bin), repeatedly until none is left; a
buffer stratum that small is dissolved into the probability bins of its pixels. A cell whose
observed pixels are fewer than the minimum keeps them as one stratum.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pyproj import Transformer
from scipy.optimize import brentq
from scipy.special import expit, logit
from tqdm.auto import tqdm

from estimator.errors import EstimatorError
from estimator.run.rundir import RunDir
from estimator.stages.model import file_sha256
from estimator.stats.area import allocate
from estimator.stats.sample import (
    LABEL_FIELDS,
    MAX_SAMPLE_N,
    SAMPLE_SCHEMA,
    _block_strata,
    _cell_regions,
    draw_ranks,
    keep_allocated,
    trained_units,
)

__all__ = [
    "DEFAULT_STRATA_PER_REGION",
    "DESIGN_ID",
    "MAX_N",
    "Anticipation",
    "TargetStratum",
    "allocation",
    "anticipated_se_ha",
    "draw_target_sample",
    "fit_anticipation",
    "neyman_allocation",
    "oof_decision_figures",
    "size_for_target_se",
    "target_strata",
    "unit_variance",
]

DESIGN_ID = "target-area"
#: Probability bins per cell of the regions (before small bins are merged), plus the buffer.
DEFAULT_STRATA_PER_REGION = 4
#: Largest sample --target-se-ha may ask for (the limit on --n).
MAX_N = MAX_SAMPLE_N
#: Resolution of the probability histograms that strata are cut from (bins of 0.001).
_H = 1000
_CENTRES = (np.arange(_H) + 0.5) / _H
#: Below this many mapped target pixels a cell's recalibration is not fitted on its own.
_MIN_MAPPED = 10


class TargetDesignError(EstimatorError, ValueError):
    """The target-area design cannot be drawn as asked."""


@dataclass(frozen=True)
class TargetStratum:
    id: str
    label: str
    """``p0.21-0.243`` (probability bin) or ``buffer``."""
    region: str
    """The cell: a region id, or ids joined by ``+`` where regions overlap."""
    regions: tuple[str, ...]
    pixels: int
    area_ha: float
    p: float
    """Anticipated target proportion (mean recalibrated probability, see the module doc)."""

    @property
    def sd(self) -> float:
        return float(np.sqrt(self.p * (1.0 - self.p)))


@dataclass(frozen=True)
class Anticipation:
    """``q = expit(a + b logit p)``: the target proportion anticipated at probability p."""

    a: float = 0.0
    b: float = 1.0
    source: str = "identity"

    def __call__(self, p: np.ndarray) -> np.ndarray:
        if self.source == "identity":
            return np.asarray(p, dtype=np.float64)
        return np.asarray(expit(self.a + self.b * logit(np.clip(p, 1e-6, 1 - 1e-6))))


def oof_decision_figures(run: RunDir) -> tuple[float, float] | None:
    """(mapped/true, precision among mapped target pixels) of the run's decision rule, out of
    fold, from the model card (the run's manifest, or the card beside the model the run
    used); None when the card holds no decision rule."""
    decision = run.manifest.get("model", {}).get("decision")
    if decision is None:
        path = run.manifest.get("model", {}).get("path")
        card = Path(path) / "card.json" if path else None
        model_file = Path(path) / "model.skops" if path else None
        # The card is trusted only beside the very model the run used.
        if card and card.is_file() and model_file and model_file.is_file() and file_sha256(model_file) == run.manifest["model"].get("sha256"):
            c = json.loads(card.read_text())
            if c.get("target_class") == run.target_class:
                decision = c.get("decision")
    if not decision:
        return None
    oof = decision.get("oof_at_threshold") if decision.get("rule") == "target_threshold" else decision.get("oof_argmax")
    if not oof or not oof.get("mapped_over_true") or oof.get("commission") is None:
        return None
    return float(oof["mapped_over_true"]), float(1.0 - oof["commission"])


def fit_anticipation(pixels: np.ndarray, mapped: np.ndarray, mapped_over_true: float, precision: float) -> Anticipation | None:
    """The curve ``logit q = a + b logit p`` that anticipates, on a cell's probability
    histogram (``pixels`` and ``mapped`` target pixels per bin of width 1/_H), a target area of
    mapped / ``mapped_over_true`` and a share ``precision`` of target among the mapped pixels.
    None when the cell has too few mapped pixels to anchor it."""
    m_total = float(mapped.sum())
    if m_total < _MIN_MAPPED:
        return None
    n_total = float(pixels.sum())
    target = min(m_total / max(mapped_over_true, 1e-6), 0.5 * n_total)
    want = float(np.clip(precision, 0.01, 0.99)) * m_total
    lp = logit(_CENTRES)

    def a_for(b: float) -> float:
        return float(brentq(lambda a: float(pixels @ expit(a + b * lp)) - target, -2000.0, 2000.0))

    # Two equations, two unknowns: a by root finding for each slope b, b by a scan (the
    # precision need not be monotone in b, and a scan cannot diverge).
    best: tuple[float, float, float] | None = None
    for b in np.geomspace(0.1, 50.0, 120):
        a = a_for(float(b))
        err = abs(float(mapped @ expit(a + b * lp)) - want)
        if best is None or err < best[0]:
            best = (err, a, float(b))
    assert best is not None
    return Anticipation(best[1], best[2], "out-of-fold decision figures")


def _hbin(prob: np.ndarray) -> np.ndarray:
    return np.clip((np.nan_to_num(prob, nan=0.0) * _H).astype(np.int64), 0, _H - 1)


def _cut(counts: np.ndarray, q: np.ndarray, k: int, bins: Sequence[float] | None, min_pixels: int) -> np.ndarray:
    """Bin index (0, 1, ...) of every histogram bin of one cell, small bins merged."""
    if bins is not None:
        idx = np.searchsorted(np.round(np.asarray(bins) * _H).astype(np.int64), np.arange(_H), side="right")
    else:
        w = counts * np.sqrt(q * (1 - q))
        total = w.sum()
        mid = np.cumsum(w) - w / 2
        idx = np.minimum((mid / total * k).astype(np.int64), k - 1) if total > 0 else np.zeros(_H, dtype=np.int64)
        idx = np.maximum.accumulate(idx)
    # Merge: a bin below the minimum (empty ones too) joins its lower neighbour (the upper one
    # if it is the lowest) until none is left or one bin holds everything.
    while True:
        ids = [int(i) for i in np.unique(idx)]
        small = [i for i in ids if counts[idx == i].sum() < min_pixels]
        if not small or len(ids) < 2:
            break
        i = small[0]
        j = ids[ids.index(i) - 1] if ids.index(i) > 0 else ids[1]
        idx[idx == i] = j
    _, idx = np.unique(idx, return_inverse=True)
    return np.asarray(idx, dtype=np.int64)


def _label(lo: int, hi: int) -> str:
    return f"p{lo / _H:g}-{hi / _H:g}"


@dataclass(frozen=True)
class _Layout:
    strata: list[TargetStratum]
    cells: dict[Any, int]
    table: np.ndarray
    """(cell, buffer 0/1, histogram bin) -> index into ``strata``."""
    anticipation: dict[str, Anticipation]


def _pass1(run: RunDir, buffer_px: int, progress: bool) -> tuple[dict[Any, int], np.ndarray, np.ndarray, np.ndarray]:
    """Per cell: pixels and hectares per (buffer, probability bin), mapped target pixels per bin."""
    cells: dict[Any, int] = {}
    counts = np.zeros(0)
    area = np.zeros(0)
    mapped = np.zeros(0)
    target_code = run.classes.index(run.target_class) + 1
    for b in tqdm(list(run.blocks(target_buffer=buffer_px)), desc="count strata", unit="block", disable=not progress, leave=False):
        if b.probability is None or b.near_target is None:
            raise TargetDesignError("blocks read without the target probability; read them with RunDir.blocks(target_buffer=...)")
        cell = _block_strata(run, (b.codes > 0).astype(np.uint8), b.regions, cells, grow=True, k=1)
        ok = cell >= 0
        size = len(cells) * 2 * _H
        counts, area = np.pad(counts, (0, size - counts.size)), np.pad(area, (0, size - area.size))
        mapped = np.pad(mapped, (0, size // 2 - mapped.size))
        h = _hbin(b.probability)
        idx = (cell * 2 + b.near_target) * _H + h
        counts += np.bincount(idx[ok], minlength=size)
        area += np.bincount(idx[ok], weights=b.pixel_area_m2[ok], minlength=size) / 1e4
        tm = ok & (b.codes == target_code)
        mapped += np.bincount((cell * _H + h)[tm], minlength=size // 2)
    n = len(cells)
    return cells, counts.reshape(n, 2, _H), area.reshape(n, 2, _H), mapped.reshape(n, _H)


def target_strata(
    run: RunDir,
    bins: Sequence[float] | None = None,
    buffer_px: int = 1,
    progress: bool = False,
    strata_per_region: int = DEFAULT_STRATA_PER_REGION,
    min_pixels: int = 10,
) -> _Layout:
    """Pass 1: the strata of every cell (pixels, hectares, anticipated proportion), with the
    lookup that places a pixel in its stratum in pass 2."""
    if bins is not None:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.size and (np.any(np.diff(edges) <= 0) or edges[0] <= 0 or edges[-1] >= 1):
            raise TargetDesignError("probability bin edges must increase strictly inside (0, 1)")
    if strata_per_region < 1:
        raise TargetDesignError("--prob-strata must be at least 1")
    cells, counts, area, mapped = _pass1(run, buffer_px, progress)
    figures = oof_decision_figures(run)
    pooled = fit_anticipation(counts.sum(axis=(0, 1)), mapped.sum(axis=0), *figures) if figures and cells else None
    order = {r.id: i for i, r in enumerate(run.regions)}
    members = {key: _cell_regions(run, key) for key in cells}
    table = np.full((len(cells), 2, _H), -1, dtype=np.int64)
    out: list[TargetStratum] = []
    anticipation: dict[str, Anticipation] = {}
    for key in sorted(cells, key=lambda key: [order[r] for r in members[key]]):
        c = cells[key]
        label = "+".join(members[key])
        fit = fit_anticipation(counts[c].sum(axis=0), mapped[c], *figures) if figures else None
        ant = fit or pooled or Anticipation()
        if fit is None and pooled is not None:
            ant = Anticipation(pooled.a, pooled.b, "out-of-fold decision figures, fitted on all cells together")
        anticipation[label] = ant
        q = ant(_CENTRES)
        buffer = 0 < counts[c, 1].sum() >= min_pixels
        bin_counts = counts[c, 0] + (0 if buffer else counts[c, 1])
        bin_area = area[c, 0] + (0 if buffer else area[c, 1])
        idx = _cut(bin_counts, q, strata_per_region, bins, min_pixels)
        for i in range(int(idx.max()) + 1):
            sel = idx == i
            if bin_counts[sel].sum() == 0:
                continue
            hs = np.flatnonzero(sel)
            lo, hi = (0 if i == 0 else int(hs[0])), (_H if i == idx.max() else int(hs[-1]) + 1)
            name = _label(lo, hi)
            px = float(bin_counts[sel].sum())
            table[c, 0, sel] = len(out)
            if not buffer:
                table[c, 1, sel] = len(out)
            out.append(TargetStratum(f"{label}|{name}", name, label, members[key], int(px), float(bin_area[sel].sum()), float(bin_counts[sel] @ q[sel] / px)))
        if buffer:
            px = float(counts[c, 1].sum())
            table[c, 1, :] = len(out)
            out.append(TargetStratum(f"{label}|buffer", "buffer", label, members[key], int(px), float(area[c, 1].sum()), float(counts[c, 1] @ q / px)))
    return _Layout(out, cells, table, anticipation)


def neyman_allocation(strata: Sequence[TargetStratum], n: int, min_per_stratum: int) -> np.ndarray:
    """n_h proportional to N_h sqrt(p_h (1 - p_h)), at least ``min_per_stratum`` (capped by size)."""
    sizes = np.array([s.pixels for s in strata])
    # A stratum whose probabilities are all 0 would get no weight: the minimum still samples it.
    return allocate(sizes, n, min_per_stratum, weights=sizes * np.array([s.sd for s in strata]))


def unit_variance(p: np.ndarray | float, n: np.ndarray | float) -> np.ndarray:
    """Expected per-unit variance that ``assess`` reports for a stratum of anticipated target
    proportion ``p`` sampled with ``n`` units: the sample variance (expectation p (1 - p)),
    except where the sample holds no target unit, or only target units, where the zero-cell
    adjustment's (x + 1) / (n + 2) variance replaces zero. In a large stratum that holds
    almost no target that floor, about 1 / n, dominates: allocating on p (1 - p) alone left
    such strata 10 units and intervals 3x too wide (development seed 1)."""
    p = np.asarray(p, dtype=np.float64)
    n = np.maximum(np.asarray(n, dtype=np.float64), 2.0)
    pt = 1.0 / (n + 2)
    adj = pt * (1 - pt) * n / (n - 1)
    return np.asarray(p * (1 - p) + ((1 - p) ** n + p**n) * adj)


def _stratum_var(area_ha: float, pixels: int, p: float, n: int) -> float:
    if n >= pixels:
        return 0.0
    return float(area_ha**2 * (1 - n / pixels) * unit_variance(p, n) / max(n, 1))


def allocation(strata: Sequence[TargetStratum], n: int, min_per_stratum: int) -> np.ndarray:
    """Units per stratum minimising the anticipated variance of the target area summed over
    the strata (so over the regions' cells), as ``assess`` will compute it
    (:func:`unit_variance`), with at least ``min_per_stratum`` per stratum (capped by size).

    Greedy: each further unit goes to the stratum whose anticipated variance it reduces
    most. The objective is separable and each stratum's variance falls ever more slowly with
    its units, so the greedy allocation is optimal among integer allocations; hand-written
    because Neyman's closed form ignores the zero-cell floor (:func:`neyman_allocation`)."""
    sizes = np.array([s.pixels for s in strata], dtype=np.int64)
    alloc = np.minimum(sizes, min_per_stratum)
    budget = int(min(int(n), int(sizes.sum()))) - int(alloc.sum())

    def gain(h: int) -> float:
        s = strata[h]
        return _stratum_var(s.area_ha, s.pixels, s.p, int(alloc[h])) - _stratum_var(s.area_ha, s.pixels, s.p, int(alloc[h]) + 1)

    heap = [(-gain(h), h) for h in range(len(strata)) if alloc[h] < sizes[h]]
    heapq.heapify(heap)
    while budget > 0 and heap:
        _, h = heapq.heappop(heap)
        alloc[h] += 1
        budget -= 1
        if alloc[h] < sizes[h]:
            heapq.heappush(heap, (-gain(h), h))
    return alloc


def anticipated_se_ha(strata: Sequence[TargetStratum], alloc: np.ndarray, region: str | None = None) -> float:
    """Anticipated SE of the target area (ha) in ``region`` (all strata when None):
    sqrt(sum A_h^2 (1 - n_h/N_h) v_h / n_h), v_h from :func:`unit_variance`."""
    var = 0.0
    for s, nh in zip(strata, alloc, strict=True):
        if region is not None and region not in s.regions:
            continue
        if nh < 1:
            return float("inf")
        var += _stratum_var(s.area_ha, s.pixels, s.p, int(nh))
    return float(np.sqrt(var))


def size_for_target_se(strata: Sequence[TargetStratum], regions: Sequence[str], target_se_ha: float, min_per_stratum: int) -> int:
    """Smallest n whose allocation (:func:`allocation`) anticipates an SE of at most
    ``target_se_ha`` in every region (bisection: the SE falls with n), up to MAX_N units."""
    if target_se_ha <= 0:
        raise TargetDesignError("--target-se-ha must be positive")
    total = min(sum(s.pixels for s in strata), MAX_N)

    def worst(n: int) -> float:
        a = allocation(strata, n, min_per_stratum)
        return max(anticipated_se_ha(strata, a, r) for r in regions)

    lo = min(total, min_per_stratum * len(strata))
    if worst(lo) <= target_se_ha:
        return lo
    hi = lo
    while worst(hi) > target_se_ha:
        if hi >= total:
            raise TargetDesignError(f"no sample of at most {total} units reaches an SE of {target_se_ha} ha; ask for a larger SE")
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
    bins: Sequence[float] | None = None,
    strata_per_region: int = DEFAULT_STRATA_PER_REGION,
    buffer_px: int = 1,
    seed: int = 0,
    progress: bool = False,
    layout: _Layout | None = None,
) -> dict[str, Any]:
    """Draw a target-area sample and return it as a GeoJSON FeatureCollection (dict).

    ``bins``: fixed inner edges of the probability bins instead of ``strata_per_region``
    bins per cell (see the module doc). ``layout``: the strata of :func:`target_strata` for
    this run and these parameters, to draw many samples without counting them again."""
    if min_per_stratum < 2:
        raise TargetDesignError("--min-per-stratum must be at least 2: a stratum variance needs two units")
    if (n is None) == (target_se_ha is None):
        raise TargetDesignError("give either --n or --target-se-ha with --design target-area")
    if buffer_px < 0:
        raise TargetDesignError("--buffer-px must be 0 or more")
    if n is not None and not 1 <= n <= MAX_N:
        raise TargetDesignError(f"--n must be between 1 and {MAX_N:,} (got {n:,}); each unit is labeled by people")
    layout = layout or target_strata(run, bins, buffer_px, progress, strata_per_region, min_pixels=min_per_stratum)
    strata = layout.strata
    if not strata:
        raise TargetDesignError(f"{run.path}: no observed pixel inside the regions; nothing to sample")
    if n is None:
        n = size_for_target_se(strata, [r.id for r in run.regions], float(target_se_ha or 0), min_per_stratum)
    alloc = allocation(strata, n, min_per_stratum)
    rng = np.random.default_rng(seed)
    trained = trained_units(run)
    draws = draw_ranks(rng, [s.pixels for s in strata], alloc, sum(len(t.get("units") or ()) for t in trained))
    ranks = [np.sort(d) for d in draws]

    seen = np.zeros(len(strata), dtype=np.int64)
    picked: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for b in tqdm(list(run.blocks(target_buffer=buffer_px)), desc="draw sample", unit="block", disable=not progress, leave=False):
        assert b.probability is not None and b.near_target is not None
        cell = _block_strata(run, (b.codes > 0).astype(np.uint8), b.regions, layout.cells, k=1)
        ok = cell >= 0
        bs = np.full(cell.shape, -1, dtype=np.int64)
        bs[ok] = layout.table[cell[ok], b.near_target[ok].astype(np.int64), _hbin(b.probability)[ok]]
        # Pixels in row-major order within the block, blocks in a fixed order: the k-th
        # pixel of a stratum met here is the k-th of pass 1's count.
        order = np.flatnonzero(bs.ravel() >= 0)
        s_of = bs.ravel()[order]
        srt = np.argsort(s_of, kind="stable")
        s_sorted = s_of[srt]
        starts = np.searchsorted(s_sorted, np.arange(len(strata)))
        ends = np.searchsorted(s_sorted, np.arange(len(strata)), side="right")
        for j in np.flatnonzero(ends > starts):
            flat = order[srt[starts[j] : ends[j]]]
            hit = np.isin(seen[j] + np.arange(flat.size), ranks[j])
            seen[j] += flat.size
            if hit.any():
                rr, cc = np.unravel_index(flat[hit], bs.shape)
                picked.append((rr + b.row_off, cc + b.col_off, np.full(rr.size, j), b.codes[rr, cc], (seen[j] - flat.size + np.arange(flat.size))[hit]))
    row, col, sidx, code, rank = (np.concatenate(a) for a in zip(*picked, strict=True))
    keep, excluded = keep_allocated(run, trained, draws, alloc, row, col, sidx, rank)
    row, col, sidx, code = row[keep], col[keep], sidx[keep], code[keep]
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
    bins_text = f"fixed probability bins {list(bins)}" if bins is not None else f"{strata_per_region} probability bins per cell with equal anticipated N_h S_h"
    return {
        "type": "FeatureCollection",
        "features": features,
        "sampling": {
            "schema": SAMPLE_SCHEMA,
            "kind": DESIGN_ID,
            "design": f"stratified random sample of pixel centres; strata = {run.target_class} probability bins ({bins_text}; "
            f"bins under {min_per_stratum} pixels merged into a neighbour) and a {buffer_px}-pixel buffer next to mapped "
            f"{run.target_class}, within each cell of the regions; Neyman allocation on the anticipated proportions "
            "(probabilities recalibrated per cell on the model card's out-of-fold decision figures; allocation minimising the "
            "anticipated zero-cell adjusted variance); estimator Stehman (2014)",
            "by_region": True,
            "overlapping_regions": any(len(s.regions) > 1 for s in strata),
            "target_class": run.target_class,
            "probability_bins": list(bins) if bins is not None else None,
            "strata_per_region": None if bins is not None else strata_per_region,
            "anticipation": {cell: {"a": round(a.a, 6), "b": round(a.b, 6), "source": a.source} for cell, a in layout.anticipation.items()},
            "buffer_px": buffer_px,
            "excluded_trained": excluded,
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
