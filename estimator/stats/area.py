"""Design-based area estimation from a stratified reference sample (pure numpy).

A pixel count is not an area estimate: classifier errors bias it. Good practice
(Olofsson et al. 2014, Remote Sensing of Environment 148:42-57; Stehman 2014, International
Journal of Remote Sensing 35:4923-4939) draws a stratified random sample from the map, has
it labeled by interpreters, and estimates error-adjusted areas with confidence intervals.

- :func:`olofsson`: strata are the map classes (eqs. 2-10 of Olofsson et al. 2014).
- :func:`stehman`: strata are anything else (map class x region, a previous map...);
  estimators of Stehman 2014 (eqs. 3, 25-28) for proportions and ratios, with the finite
  population correction.
- :func:`sample_size` and :func:`allocate`: Olofsson's sample size for a target standard
  error of overall accuracy (eq. 13), and allocation with a minimum per rare stratum.

Hand-written rather than taken from a library: no maintained Python package implements
these estimators (the references are R packages, e.g. mapaccuracy); tests reproduce the
published worked example.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from estimator.errors import AreaSampleError

__all__ = [
    "AreaSampleError",
    "OlofssonResult",
    "StehmanResult",
    "allocate",
    "olofsson",
    "sample_size",
    "stehman",
]


def _as_dict(obj: Any) -> dict[str, Any]:
    out = {}
    for k, v in obj.__dict__.items():
        out[k] = v.tolist() if isinstance(v, np.ndarray) else v
    return out


@dataclass(frozen=True)
class OlofssonResult:
    """Error-adjusted areas and accuracies, arrays indexed by class (the strata order)."""

    area_proportion: np.ndarray
    se_area_proportion: np.ndarray
    area_ha: np.ndarray
    se_area_ha: np.ndarray
    area_ci95_ha: np.ndarray
    """Half-width of the confidence interval (z x SE; z = 1.96 unless asked otherwise)."""
    users_accuracy: np.ndarray
    users_ci95: np.ndarray
    producers_accuracy: np.ndarray
    producers_ci95: np.ndarray
    overall_accuracy: float
    overall_ci95: float
    error_matrix: np.ndarray
    """Estimated area proportions p_ij (rows map class, columns reference class)."""
    mapped_area_ha: np.ndarray
    z: float

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


def _check_counts(mapped: np.ndarray, counts: np.ndarray) -> np.ndarray:
    k = len(mapped)
    if counts.shape != (k, k):
        raise AreaSampleError(f"sample_counts must be {k} x {k} (rows map class, columns reference class), got {counts.shape}")
    if (counts < 0).any() or (mapped < 0).any():
        raise AreaSampleError("counts and mapped pixels must be non-negative")
    n_row = counts.sum(axis=1)
    empty = np.flatnonzero((mapped > 0) & (n_row == 0))
    if empty.size:
        raise AreaSampleError(f"map class(es) {empty.tolist()} are mapped but have no sample unit; sample every mapped class")
    # One unit is enough only for a census (a one-pixel stratum): its variance is zero.
    single = np.flatnonzero((mapped > 1) & (n_row == 1))
    if single.size:
        raise AreaSampleError(
            f"map class(es) {single.tolist()} have a single sample unit; a variance needs at least two per stratum"
        )
    return n_row


def _adjusted_frac(n_ij: np.ndarray, n_i: np.ndarray) -> np.ndarray:
    """Cell proportions for the *variance* only: (x + 1) / (n + 2) where a stratum shows none
    (or only) of a class. A stratum sample without a single error does not prove the map has
    none; with the plain formula such a stratum contributes zero variance and a near-perfect
    map gets a zero-width interval that misses the truth."""
    safe = np.where(n_i > 0, n_i, 1.0)[:, None]
    frac = n_ij / safe
    edge = (n_ij == 0) | (n_ij == safe)
    return np.where(edge & (n_i[:, None] > 0), (n_ij + 1) / (safe + 2), frac)


def olofsson(
    mapped_pixels: ArrayLike,
    sample_counts: ArrayLike,
    pixel_area_ha: float,
    z: float = 1.96,
    *,
    adjust_zero_cells: bool = False,
) -> OlofssonResult:
    """Stratified estimator of area and accuracy when strata are the map classes.

    Parameters
    ----------
    mapped_pixels
        N_i, pixels mapped as each class (or mapped areas, with ``pixel_area_ha=1``).
    sample_counts
        n_ij, sample units with map class i (row) and reference class j (column).
    pixel_area_ha
        Area of one pixel in hectares.
    z
        Normal quantile of the interval (1.96 for 95 %).
    adjust_zero_cells
        Compute the area variance with (x + 1) / (n + 2) in cells where a stratum's sample
        holds none or all of a class (off: the published formulas, eq. 10).

    Raises
    ------
    AreaSampleError
        Shapes disagree, or a mapped class has fewer than two sample units.
    """
    N_i = np.asarray(mapped_pixels, dtype=np.float64)
    n_ij = np.asarray(sample_counts, dtype=np.float64)
    n_i = _check_counts(N_i, n_ij)
    total_px = N_i.sum()
    if total_px <= 0:
        raise AreaSampleError("the map holds no mapped pixels")
    W = N_i / total_px
    safe_n = np.where(n_i > 0, n_i, 1.0)
    frac = n_ij / safe_n[:, None]  # n_ij / n_i.
    p = W[:, None] * frac  # eq. 4
    p_col = p.sum(axis=0)
    # eq. 10: SE of the area proportion of each reference class
    dof = np.where(n_i > 1, n_i - 1, 1.0)
    vfrac = _adjusted_frac(n_ij, n_i) if adjust_zero_cells else frac
    census = (N_i <= n_i)[:, None]  # a fully enumerated stratum has no sampling variance
    var_terms = np.where(census, 0.0, (W**2)[:, None] * vfrac * (1 - vfrac) / dof[:, None])
    se_p = np.sqrt(var_terms.sum(axis=0))
    total_ha = total_px * pixel_area_ha

    diag = np.diag(p)
    p_row = p.sum(axis=1)
    ua = np.divide(diag, p_row, out=np.full_like(diag, np.nan), where=p_row > 0)
    pa = np.divide(diag, p_col, out=np.full_like(diag, np.nan), where=p_col > 0)
    oa = float(diag.sum())
    ua_var = ua * (1 - ua) / dof  # eq. 6
    oa_var = float(np.nansum(W**2 * ua * (1 - ua) / dof))  # eq. 5

    # eq. 7, with N_hat_.j = sum_i N_i / n_i * n_ij the estimated reference-class size
    N_col = (N_i[:, None] * frac).sum(axis=0)
    pa_var = np.full_like(pa, np.nan)
    for j in range(len(N_i)):
        if N_col[j] <= 0:
            continue
        first = N_i[j] ** 2 * (1 - pa[j]) ** 2 * ua[j] * (1 - ua[j]) / dof[j] if N_i[j] > 0 else 0.0
        others = [i for i in range(len(N_i)) if i != j and N_i[i] > 0]
        second = pa[j] ** 2 * sum(N_i[i] ** 2 * frac[i, j] * (1 - frac[i, j]) / dof[i] for i in others)
        pa_var[j] = (first + second) / N_col[j] ** 2
    return OlofssonResult(
        area_proportion=p_col,
        se_area_proportion=se_p,
        area_ha=p_col * total_ha,
        se_area_ha=se_p * total_ha,
        area_ci95_ha=z * se_p * total_ha,
        users_accuracy=ua,
        users_ci95=z * np.sqrt(ua_var),
        producers_accuracy=pa,
        producers_ci95=z * np.sqrt(pa_var),
        overall_accuracy=oa,
        overall_ci95=z * float(np.sqrt(oa_var)),
        error_matrix=p,
        mapped_area_ha=N_i * pixel_area_ha,
        z=z,
    )


@dataclass(frozen=True)
class StehmanResult:
    """Estimates from a stratified sample whose strata are not the map classes."""

    classes: tuple[Hashable, ...]
    area_proportion: np.ndarray
    se_area_proportion: np.ndarray
    area: np.ndarray
    """Area per reference class in the unit of ``strata_pixels`` times ``pixel_area``."""
    se_area: np.ndarray
    area_ci95: np.ndarray
    overall_accuracy: float
    se_overall_accuracy: float
    users_accuracy: np.ndarray
    se_users_accuracy: np.ndarray
    producers_accuracy: np.ndarray
    se_producers_accuracy: np.ndarray
    z: float
    extra: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def to_dict(self) -> dict[str, Any]:
        d = _as_dict(self)
        d["classes"] = list(self.classes)
        return d


def _stratum_moments(strata: np.ndarray, ys: np.ndarray, labels: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per stratum: means of each column of ``ys`` (n_strata, k) and the covariance
    matrices (n_strata, k, k) with denominator n_h - 1."""
    k = ys.shape[1]
    means = np.zeros((len(labels), k))
    covs = np.zeros((len(labels), k, k))
    for h, lab in enumerate(labels):
        y = ys[strata == lab]
        means[h] = y.mean(axis=0)
        covs[h] = np.atleast_2d(np.cov(y, rowvar=False, ddof=1)) if len(y) > 1 else 0.0
    return means, covs


def stehman(
    strata_pixels: Mapping[Hashable, float],
    samples: Sequence[tuple[Hashable, Hashable, Hashable]],
    z: float = 1.96,
    *,
    pixel_area: float = 1.0,
    domain: Sequence[bool] | None = None,
    adjust_zero_cells: bool = False,
) -> StehmanResult:
    """Stratified estimators of Stehman (2014) for strata that differ from the map classes.

    Parameters
    ----------
    strata_pixels
        N_h, population size (pixels, or area with ``pixel_area=1``) of each stratum id.
    samples
        One ``(stratum, map_class, reference_class)`` per sample unit.
    z
        Normal quantile of the interval.
    pixel_area
        Area of one population unit, to express areas in hectares.
    domain
        Optional per-unit flag: estimate areas of the reference classes *within* the
        domain (e.g. a region) only; proportions stay relative to the whole population.
    adjust_zero_cells
        Where a stratum's indicator is constant (no unit, or every unit, of a class), use
        the variance of (x + 1) / (n + 2) instead of zero (see :func:`olofsson`).

    Raises
    ------
    AreaSampleError
        A sampled stratum is unknown, a stratum holding pixels has fewer than two units.
    """
    if not samples:
        raise AreaSampleError("the sample is empty")
    strata = np.array([s[0] for s in samples], dtype=object)
    mapped = np.array([s[1] for s in samples], dtype=object)
    ref = np.array([s[2] for s in samples], dtype=object)
    unknown = sorted({str(s) for s in strata} - {str(k) for k in strata_pixels})
    if unknown:
        raise AreaSampleError(f"sample units in strata {unknown[:5]} that strata_pixels does not list")
    labels = np.array(list(strata_pixels), dtype=object)
    N_h = np.array([strata_pixels[k] for k in labels], dtype=np.float64)
    n_h = np.array([(strata == k).sum() for k in labels], dtype=np.float64)
    bad = [str(labels[i]) for i in range(len(labels)) if N_h[i] > 0 and n_h[i] < 2]
    if bad:
        raise AreaSampleError(f"strata {bad[:5]} hold pixels but fewer than two sample units; a variance needs two")
    keep = N_h > 0
    labels, N_h, n_h = labels[keep], N_h[keep], n_h[keep]
    N = N_h.sum()
    fpc = 1 - n_h / N_h
    in_domain = np.ones(len(samples), dtype=bool) if domain is None else np.asarray(domain, dtype=bool)

    classes = tuple(sorted({*mapped.tolist(), *ref.tolist()}, key=str))
    k = len(classes)
    # Columns: [ref==c & domain]_c, [map==c]_c, [map==ref==c]_c, [map==ref]
    ref_c = np.stack([(ref == c) for c in classes], axis=1).astype(float)
    map_c = np.stack([(mapped == c) for c in classes], axis=1).astype(float)
    agree_c = ref_c * map_c
    ys = np.concatenate([ref_c * in_domain[:, None], map_c, agree_c, (mapped == ref).astype(float)[:, None]], axis=1)
    means, covs = _stratum_moments(strata, ys, labels, N_h)
    if adjust_zero_cells:
        for h in range(len(labels)):
            x = means[h] * n_h[h]
            flat = np.isclose(np.diag(covs[h]), 0.0)
            pt = (x + 1) / (n_h[h] + 2)
            adj = pt * (1 - pt) * n_h[h] / (n_h[h] - 1)
            covs[h][np.diag_indices(ys.shape[1])] = np.where(flat, adj, np.diag(covs[h]))

    totals = (N_h[:, None] * means).sum(axis=0)  # Y_hat = sum_h N_h ybar_h (eq. 26)
    # V(Y_hat) with the finite population correction; covariances for the ratios
    wv = (N_h**2 * fpc / n_h)[:, None, None] * covs
    cov_tot = wv.sum(axis=0)

    # column blocks of ys: reference class (in domain), map class, agreement per class, overall
    ref_cols, agree_col = slice(0, k), 3 * k
    prop = totals[ref_cols] / N
    se_prop = np.sqrt(np.diag(cov_tot)[ref_cols]) / N
    oa = totals[agree_col] / N
    se_oa = float(np.sqrt(cov_tot[agree_col, agree_col]) / N)

    def ratio(num: int, den: int) -> tuple[float, float]:
        y, x = totals[num], totals[den]
        if x <= 0:
            return np.nan, np.nan
        r = y / x
        var = (cov_tot[num, num] + r**2 * cov_tot[den, den] - 2 * r * cov_tot[num, den]) / x**2  # eq. 28
        return float(r), float(np.sqrt(max(var, 0.0)))

    ua = np.array([ratio(2 * k + i, k + i) for i in range(k)])
    pa = np.array([ratio(2 * k + i, i) for i in range(k)]) if domain is None else np.full((k, 2), np.nan)
    area = prop * N * pixel_area
    se_area = se_prop * N * pixel_area
    return StehmanResult(
        classes=classes,
        area_proportion=prop,
        se_area_proportion=se_prop,
        area=area,
        se_area=se_area,
        area_ci95=z * se_area,
        overall_accuracy=float(oa),
        se_overall_accuracy=se_oa,
        users_accuracy=ua[:, 0],
        se_users_accuracy=ua[:, 1],
        producers_accuracy=pa[:, 0],
        se_producers_accuracy=pa[:, 1],
        z=z,
    )


def sample_size(weights: ArrayLike, expected_users_accuracy: ArrayLike, target_se: float) -> int:
    """Olofsson et al. (2014) eq. 13: total sample size n = (sum_i W_i S_i / S(O))^2, with
    S_i = sqrt(U_i (1 - U_i)) from conjectured user's accuracies U_i and S(O) the target
    standard error of overall accuracy."""
    if target_se <= 0:
        raise AreaSampleError("target standard error must be positive")
    W = np.asarray(weights, dtype=np.float64)
    U = np.asarray(expected_users_accuracy, dtype=np.float64)
    if W.shape != U.shape or ((U < 0) | (U > 1)).any():
        raise AreaSampleError("weights and expected user's accuracies must match and lie in [0, 1]")
    W = W / W.sum()
    return int(np.ceil((np.sum(W * np.sqrt(U * (1 - U))) / target_se) ** 2))


def allocate(stratum_sizes: ArrayLike, n: int, min_per_stratum: int = 50) -> np.ndarray:
    """Allocate ``n`` units: every stratum gets at least ``min_per_stratum`` (Olofsson's advice
    for rare classes such as coca; capped by its size), the rest proportionally to size.

    Returns integer counts that never exceed a stratum's size and sum to ``min(n, total)``,
    or to more when the minimums alone exceed ``n``.
    """
    N = np.asarray(stratum_sizes, dtype=np.int64)
    if (N < 0).any():
        raise AreaSampleError("stratum sizes must be non-negative")
    alloc = np.zeros(len(N), dtype=np.int64)
    free = N > 0
    budget = float(min(int(n), int(N.sum())))
    floor = np.minimum(N, min_per_stratum)
    # Water-filling: strata whose proportional share falls below the minimum (or above their
    # size) are fixed there, and the rest is shared again among the others.
    while free.any():
        share = np.where(free, budget * N / max(N[free].sum(), 1), 0.0)
        low = free & (share < floor)
        high = free & (share > N)
        if low.any() or high.any():
            fix = low | high
            alloc[fix] = np.where(low[fix], floor[fix], N[fix])
            budget -= float(alloc[fix].sum())
            free &= ~fix
            budget = max(budget, 0.0)
            continue
        base = np.floor(share).astype(np.int64)
        left = int(round(budget)) - int(base[free].sum())
        order = np.argsort(-(share - base) * free)
        base[order[: max(left, 0)]] += 1
        alloc[free] = base[free]
        break
    return alloc
