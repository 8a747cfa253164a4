"""Design-based area estimation from a stratified reference sample (pure numpy).

A pixel count is not an area estimate: classifier errors bias it. Good practice
(Olofsson et al. 2014, Remote Sensing of Environment 148:42-57; Stehman 2014, International
Journal of Remote Sensing 35:4923-4939) draws a stratified random sample from the map, has
it labeled by interpreters, and estimates error-adjusted areas with confidence intervals.

- :func:`olofsson`: strata are the map classes (eqs. 2-10 of Olofsson et al. 2014).
- :func:`stehman`: strata are anything else (map class x region, a previous map...);
  estimators of Stehman 2014 (eqs. 3, 25-28) for proportions and ratios, with the finite
  population correction.
- :func:`effective_n_interval`: the interval of a domain (region) total when strata are not
  the regions: a Jeffreys interval at Korn and Graubard's effective sample size, chosen by
  simulation over Wald intervals with and without zero-cell adjustments, bootstraps and
  gamma intervals (benchmarks/domain_variance.py, docs/intervals.md).
- :func:`sample_size` and :func:`allocate`: Olofsson's sample size for a target standard
  error of overall accuracy (eq. 13), and allocation with a minimum per rare stratum.

Hand-written rather than taken from a library: no maintained Python package implements
these estimators (the references are R packages, e.g. mapaccuracy); tests reproduce the
published worked example.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from estimator.errors import AreaSampleError

__all__ = [
    "UNCAPPED_FROM_UNITS",
    "AreaSampleError",
    "OlofssonResult",
    "StehmanResult",
    "allocate",
    "effective_n_interval",
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
    """Half-width of the Wald interval, z x ``se_area``."""
    area_low: np.ndarray
    """Lower bound of the area interval (never below 0): the Wald interval, or the
    asymmetric interval asked for with ``interval=``."""
    area_high: np.ndarray
    interval: str
    """How ``area_low``/``area_high`` were computed: ``wald`` or ``jeffreys-effective-n``."""
    overall_accuracy: float
    se_overall_accuracy: float
    users_accuracy: np.ndarray
    se_users_accuracy: np.ndarray
    producers_accuracy: np.ndarray
    se_producers_accuracy: np.ndarray
    z: float
    n_domain: int
    """Sample units in the domain (all units without a domain)."""
    n_mapped: np.ndarray
    """Sample units in the domain per map class: the units behind each user's accuracy."""
    n_reference: np.ndarray
    """Sample units in the domain per reference class: behind each producer's accuracy."""
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


#: Units of the class in the region from which the effective sample size is trusted beyond
#: the sample size (chosen on development seeds of benchmarks/domain_variance.py).
UNCAPPED_FROM_UNITS = 10


def effective_n_interval(
    total: ArrayLike,
    se: ArrayLike,
    population: float,
    n_units: int,
    z: float = 1.96,
    *,
    positives: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Interval of an estimated domain total: Jeffreys at Korn and Graubard's effective n.

    The total is read as a proportion ``p = total / population`` of the whole population;
    its effective sample size is ``n* = p (1 - p) / V(p)`` (the size of a simple random
    sample as precise), and ``n`` where the sample shows no variance at all (Korn and
    Graubard 1998, Survey Methodology 24:193-201). They cap ``n*`` at the sample size ``n``
    because a variance estimated from few units of the class is unstable; here the cap is
    kept only while the domain's sample holds fewer than :data:`UNCAPPED_FROM_UNITS` units of
    the class (``positives``; always without it), so that a large region keeps the
    precision its stratification earns. The interval is the Jeffreys interval of ``p n*``
    successes in ``n*`` trials, Beta(x + 1/2, n* - x + 1/2) quantiles, with lower bound 0 when
    x = 0 (Brown, Cai and DasGupta 2001, Statistical Science 16:101-133).

    Why: a region's total from strata that are not regions is a sum of a few large sample
    weights. A Wald interval is symmetric where the sampling distribution is skewed, and has
    zero width where the region's units show no coca; the (x + 1) / (n + 2) adjustment adds
    the same stratum-wide width to every region. In simulation (benchmarks/domain_variance.py,
    docs/intervals.md) this was the narrowest candidate at or above 93 % coverage in every
    size class of 10-500 ha at n = 500, 1,500 and 3,000.

    Parameters
    ----------
    total, se
        Estimated totals and their (textbook) standard errors, in the unit of ``population``.
    population
        Size of the whole population the sample was drawn from (same unit).
    n_units
        Sample units in the whole sample.
    z
        Normal quantile of the interval (1.96 for 95 %).
    positives
        Sample units of the class inside the domain, per total.

    Returns
    -------
    (low, high)
        Bounds in the unit of ``total``.
    """
    if population <= 0 or n_units < 1:
        raise AreaSampleError("an interval needs a population and at least one sample unit")
    p = np.clip(np.asarray(total, dtype=np.float64) / population, 0.0, 1.0)
    v = (np.asarray(se, dtype=np.float64) / population) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        neff = np.where(v > 0, p * (1 - p) / np.where(v > 0, v, 1.0), float(n_units))
    trusted = np.zeros(p.shape, dtype=bool) if positives is None else np.asarray(positives) >= UNCAPPED_FROM_UNITS
    neff = np.maximum(np.where(trusted, neff, np.minimum(neff, float(n_units))), 1.0)
    x = p * neff
    alpha = 2 * stats.norm.sf(z)
    low = np.where(x > 0, stats.beta.ppf(alpha / 2, x + 0.5, neff - x + 0.5), 0.0)
    high = np.where(x < neff, stats.beta.ppf(1 - alpha / 2, x + 0.5, neff - x + 0.5), 1.0)
    return low * population, high * population


def stehman(
    strata_pixels: Mapping[Hashable, float],
    samples: Sequence[tuple[Hashable, Hashable, Hashable]],
    z: float = 1.96,
    *,
    pixel_area: float = 1.0,
    domain: Sequence[bool] | None = None,
    adjust_zero_cells: bool = False,
    interval: Literal["wald", "jeffreys-effective-n"] = "wald",
    classes: Sequence[Hashable] = (),
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
        Accuracies are then the domain's own: ratio estimators (Stehman 2014, eq. 27) whose
        numerator and denominator both count only the domain's units, so a map class with
        no unit in the domain has no user's accuracy (NaN) rather than the population's.
    adjust_zero_cells
        Where a stratum's reference-class indicator is constant (no unit, or every unit, of
        a class), use the variance of (x + 1) / (n + 2) instead of zero (see
        :func:`olofsson`): in the area SEs of the Wald interval and in the producer's
        accuracies' SEs. With ``interval="jeffreys-effective-n"`` the areas' SEs and bounds
        use the textbook variance, as simulated.
    interval
        ``wald``: estimate -/+ z SE (lower bound clipped at 0). ``jeffreys-effective-n``:
        see :func:`effective_n_interval` (for domain estimates).
    classes
        Reference classes to estimate besides those the sample shows: a class no unit was
        labelled with gets an area of 0 with the interval its absence allows (with
        ``adjust_zero_cells``), rather than no estimate.

    Raises
    ------
    AreaSampleError
        A sampled stratum is unknown, a stratum holding pixels has fewer than two units.
    """
    if not samples:
        raise AreaSampleError("the sample is empty")
    if interval not in ("wald", "jeffreys-effective-n"):
        raise AreaSampleError(f"unknown interval {interval!r}; use 'wald' or 'jeffreys-effective-n'")
    strata = np.array([s[0] for s in samples], dtype=object)
    mapped = np.array([s[1] for s in samples], dtype=object)
    ref = np.array([s[2] for s in samples], dtype=object)
    unknown = sorted({str(s) for s in strata} - {str(k) for k in strata_pixels})
    if unknown:
        raise AreaSampleError(f"sample units in strata {unknown[:5]} that strata_pixels does not list")
    labels = np.array(list(strata_pixels), dtype=object)
    N_h = np.array([strata_pixels[k] for k in labels], dtype=np.float64)
    n_h = np.array([(strata == k).sum() for k in labels], dtype=np.float64)
    # A stratum sampled whole (a census, e.g. a one-pixel stratum) has no sampling variance.
    bad = [str(labels[i]) for i in range(len(labels)) if N_h[i] > 0 and n_h[i] < 2 and n_h[i] < N_h[i]]
    if bad:
        raise AreaSampleError(f"strata {bad[:5]} hold pixels but fewer than two sample units; a variance needs two")
    keep = N_h > 0
    labels, N_h, n_h = labels[keep], N_h[keep], n_h[keep]
    N = N_h.sum()
    fpc = 1 - n_h / N_h
    in_domain = np.ones(len(samples), dtype=bool) if domain is None else np.asarray(domain, dtype=bool)
    if in_domain.shape != (len(samples),):
        raise AreaSampleError(f"domain must flag each of the {len(samples)} sample units, got {in_domain.shape}")

    wanted = classes
    classes = tuple(sorted({*mapped.tolist(), *ref.tolist(), *wanted}, key=str))
    k = len(classes)
    d = in_domain.astype(float)[:, None]
    # Columns, each restricted to the domain: [ref==c]_c, [map==c]_c, [map==ref==c]_c,
    # [map==ref], [in domain]
    ref_c = np.stack([(ref == c) for c in classes], axis=1).astype(float)
    map_c = np.stack([(mapped == c) for c in classes], axis=1).astype(float)
    agree_c = ref_c * map_c
    ys = np.concatenate([ref_c * d, map_c * d, agree_c * d, (mapped == ref).astype(float)[:, None] * d, d], axis=1)
    means, covs = _stratum_moments(strata, ys, labels, N_h)
    wgt = (N_h**2 * fpc / n_h)[:, None, None]
    textbook_var = np.diag((wgt * covs).sum(axis=0)).copy()
    if adjust_zero_cells:
        # Reference-class columns only, as Olofsson's eq. 10 adjustment: the reference class
        # of unsampled pixels is unknown, while a map-class column (and so an agreement
        # column) is zero by construction in every stratum of another map class, and an
        # adjustment there would only invent variance for the user's accuracies.
        ref_diag = np.arange(k)
        for h in range(len(labels)):
            x = means[h, :k] * n_h[h]
            flat = np.isclose(covs[h][ref_diag, ref_diag], 0.0)
            if n_h[h] < 2:  # a census of one pixel: its weight (fpc = 0) is zero anyway
                continue
            pt = (x + 1) / (n_h[h] + 2)
            adj = pt * (1 - pt) * n_h[h] / (n_h[h] - 1)
            covs[h][ref_diag, ref_diag] = np.where(flat, adj, covs[h][ref_diag, ref_diag])

    totals = (N_h[:, None] * means).sum(axis=0)  # Y_hat = sum_h N_h ybar_h (eq. 26)
    # V(Y_hat) with the finite population correction; covariances for the ratios
    cov_tot = (wgt * covs).sum(axis=0)

    # column blocks of ys: reference class, map class, agreement per class, overall, domain
    ref_cols, agree_col, dom_col = slice(0, k), 3 * k, 3 * k + 1
    prop = totals[ref_cols] / N
    # the SE behind the interval: the Jeffreys interval is built on the textbook variance
    var_ref = np.diag(cov_tot)[ref_cols] if interval == "wald" else textbook_var[ref_cols]
    se_prop = np.sqrt(var_ref) / N

    def ratio(num: int, den: int) -> tuple[float, float]:
        y, x = totals[num], totals[den]
        if x <= 0:
            return np.nan, np.nan
        r = y / x
        var = (cov_tot[num, num] + r**2 * cov_tot[den, den] - 2 * r * cov_tot[num, den]) / x**2  # eq. 28
        return float(r), float(np.sqrt(max(var, 0.0)))

    if domain is None:  # the domain column is the constant 1: OA = total / N exactly (eq. 26)
        oa, se_oa = float(totals[agree_col] / N), float(np.sqrt(cov_tot[agree_col, agree_col]) / N)
    else:
        oa, se_oa = ratio(agree_col, dom_col)
    ua = np.array([ratio(2 * k + i, k + i) for i in range(k)])
    pa = np.array([ratio(2 * k + i, i) for i in range(k)])
    area = prop * N * pixel_area
    se_area = se_prop * N * pixel_area
    if interval == "wald":
        low, high = np.maximum(area - z * se_area, 0.0), area + z * se_area
    else:
        positives = (ref_c * d).sum(axis=0)
        low, high = effective_n_interval(area, se_area, N * pixel_area, len(samples), z, positives=positives)
    return StehmanResult(
        classes=classes,
        area_proportion=prop,
        se_area_proportion=se_prop,
        area=area,
        se_area=se_area,
        area_ci95=z * se_area,
        area_low=low,
        area_high=high,
        interval=interval,
        overall_accuracy=float(oa),
        se_overall_accuracy=float(se_oa),
        users_accuracy=ua[:, 0],
        se_users_accuracy=ua[:, 1],
        producers_accuracy=pa[:, 0],
        se_producers_accuracy=pa[:, 1],
        z=z,
        n_domain=int(in_domain.sum()),
        n_mapped=(map_c * d).sum(axis=0).astype(int),
        n_reference=(ref_c * d).sum(axis=0).astype(int),
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


def allocate(stratum_sizes: ArrayLike, n: int, min_per_stratum: int = 50, weights: ArrayLike | None = None) -> np.ndarray:
    """Allocate ``n`` units: every stratum gets at least ``min_per_stratum`` (Olofsson's advice
    for rare classes such as coca; capped by its size), the rest proportionally to size, or
    to ``weights`` when given (Neyman allocation: size x anticipated standard deviation).

    Returns integer counts that never exceed a stratum's size and sum to ``min(n, total)``,
    or to more when the minimums alone exceed ``n``.
    """
    N = np.asarray(stratum_sizes, dtype=np.int64)
    if (N < 0).any():
        raise AreaSampleError("stratum sizes must be non-negative")
    W = N.astype(np.float64) if weights is None else np.asarray(weights, dtype=np.float64)
    if W.shape != N.shape or (W < 0).any():
        raise AreaSampleError("allocation weights must be non-negative, one per stratum")
    alloc = np.zeros(len(N), dtype=np.int64)
    free = N > 0
    budget = float(min(int(n), int(N.sum())))
    floor = np.minimum(N, min_per_stratum)
    # Water-filling: strata whose proportional share falls below the minimum (or above their
    # size) are fixed there, and the rest is shared again among the others.
    while free.any():
        share = np.where(free, budget * W / W[free].sum(), 0.0) if W[free].sum() > 0 else np.where(free, budget * N / max(N[free].sum(), 1), 0.0)
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
