"""The vectorised numpy features kernel that the compiled one replaced, kept as its reference.

Not product code: ``tests/stages/test_features.py`` checks :func:`estimator.stages.features.compute_features`
against :func:`reference_features`, and ``benchmarks/bench_stages.py`` times both.
"""

from __future__ import annotations

import numpy as np

from estimator.bands import REFLECTANCE_BANDS
from estimator.stages.features import FEATURE_NAMES, HARVEST_DROP, INDICES

__all__ = ["quantiles", "reference_features"]

_B = {b: i for i, b in enumerate(REFLECTANCE_BANDS)}


def quantiles(x: np.ndarray, qs: tuple[float, ...]) -> list[np.ndarray]:
    """NaN-aware linear quantiles along axis 0 (one sort for all of ``qs``)."""
    s = np.sort(x, axis=0)  # NaN sorts last
    n = np.isfinite(x).sum(axis=0)
    out = []
    for q in qs:
        pos = q * np.maximum(n - 1, 0)
        lo = np.floor(pos).astype(np.intp)
        hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
        vlo = np.take_along_axis(s, lo[None], axis=0)[0]
        vhi = np.take_along_axis(s, hi[None], axis=0)[0]
        v = vlo + (vhi - vlo) * (pos - lo)
        out.append(np.where(n > 0, v, np.nan).astype(np.float32))
    return out


def _std(x: np.ndarray) -> np.ndarray:
    """NaN-aware population standard deviation along axis 0, NaN where nothing is valid."""
    ok = ~np.isnan(x)
    n = ok.sum(axis=0)
    x0 = np.where(ok, x, 0.0).astype(np.float64)
    mean = x0.sum(axis=0) / np.maximum(n, 1)
    var = np.maximum((x0 * x0).sum(axis=0) / np.maximum(n, 1) - mean * mean, 0.0)
    return np.where(n > 0, np.sqrt(var), np.nan).astype(np.float32)


def _harvest_features(ndvi: np.ndarray) -> list[np.ndarray]:
    """Differences between consecutive *clear* observations (clouds between are skipped)."""
    n_pix = ndvi.shape[1]
    prev = np.full(n_pix, np.nan, dtype=np.float32)
    n_obs = np.zeros(n_pix, dtype=np.int32)
    n_pairs = np.zeros(n_pix, dtype=np.int32)
    drops = np.zeros(n_pix, dtype=np.int32)
    max_drop = np.zeros(n_pix, dtype=np.float32)
    sum_abs = np.zeros(n_pix, dtype=np.float32)
    for v in ndvi:
        ok = ~np.isnan(v)
        d = v - prev  # NaN unless both this and an earlier observation are clear
        pair = ~np.isnan(d)
        d0 = np.where(pair, d, 0.0)
        n_obs += ok
        n_pairs += pair
        drops += d0 < -HARVEST_DROP
        np.maximum(max_drop, -d0, out=max_drop)
        sum_abs += np.abs(d0)
        prev = np.where(ok, v, prev)
    rate = drops / np.maximum(n_pairs, 1)
    absdiff = sum_abs / np.maximum(n_pairs, 1)
    return [np.where(n_obs > 0, f, np.nan).astype(np.float32) for f in (rate, max_drop, absdiff)]


def reference_features(reflectance: np.ndarray) -> np.ndarray:
    """``(band, time, y, x)`` masked reflectance -> ``(feature, y, x)``, vectorised numpy."""
    nb, nt, ny, nx = reflectance.shape
    r = reflectance.reshape(nb, nt, ny * nx).astype(np.float32, copy=False)
    feats: list[np.ndarray] = []
    indices: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, (a, b) in INDICES.items():
            va, vb = r[_B[a]], r[_B[b]]
            total = va + vb
            idx = np.where(np.abs(total) > 1e-6, (va - vb) / np.where(total == 0, 1, total), 0.0)
            idx = np.clip(idx, -1.0, 1.0).astype(np.float32)
            idx[np.isnan(va) | np.isnan(vb)] = np.nan
            indices[name] = idx
            med, p10, p90 = quantiles(idx, (0.5, 0.1, 0.9))
            feats += [med, p10, p90, _std(idx)]
        for bi in range(nb):
            feats += quantiles(r[bi], (0.5,))
    feats += _harvest_features(indices["ndvi"])
    return np.stack(feats).reshape(len(FEATURE_NAMES), ny, nx).astype(np.float32)
