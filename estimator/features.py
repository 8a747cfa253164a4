"""Features stage: spectral indices and per-pixel temporal statistics over the period.

The kernel :func:`compute_features` is plain numpy on one block ``(band, time, y, x)`` with
NaN for non-clear observations; :func:`features_dask` wraps it once for dask. Training and
prediction both call this module, so a model always sees the features it was fitted on;
:data:`FEATURE_NAMES` (names and order) is the contract recorded in every model card.

Harvest cycles: coca leaves are stripped 3-4 times a year, each harvest a sharp NDVI drop
followed by regrowth. ``ndvi_drop_rate`` (share of consecutive clear observations with an
NDVI decline larger than :data:`HARVEST_DROP`), ``ndvi_max_drop`` and ``ndvi_mean_absdiff``
capture that; perennial forest and pasture rarely drop, annual crops drop once.
"""

from __future__ import annotations

import dask.array as da
import numpy as np

from .bands import REFLECTANCE_BANDS

__all__ = ["FEATURE_NAMES", "HARVEST_DROP", "INDICES", "STATS", "compute_features", "features_dask"]

_B = {b: i for i, b in enumerate(REFLECTANCE_BANDS)}
#: Normalised differences (a, b) -> (a - b) / (a + b).
INDICES: dict[str, tuple[str, str]] = {
    "ndvi": ("nir", "red"),
    "ndmi": ("nir", "swir16"),
    "nbr": ("nir", "swir22"),
    "ndre": ("nir08", "rededge1"),
    "ndwi": ("green", "nir"),
}
STATS: tuple[str, ...] = ("median", "p10", "p90", "std")
#: NDVI decline between consecutive clear observations that counts as a harvest-like drop.
HARVEST_DROP = 0.12
_HARVEST = ("ndvi_drop_rate", "ndvi_max_drop", "ndvi_mean_absdiff")

FEATURE_NAMES: tuple[str, ...] = (
    *(f"{i}_{s}" for i in INDICES for s in STATS),
    *(f"{b}_median" for b in REFLECTANCE_BANDS),
    *_HARVEST,
)


def _quantiles(x: np.ndarray, qs: tuple[float, ...]) -> list[np.ndarray]:
    """NaN-aware linear quantiles along axis 0: one sort instead of np.nanpercentile's
    per-quantile partitioning, which is several times slower on (time, pixels) blocks."""
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
    """Differences between consecutive *clear* observations (clouds between are skipped).

    A loop over the (few) dates with running state: an order of magnitude faster than
    vectorising over time with index arrays (measured: 0.6 s -> 0.03 s per 0.26 Mpix).
    """
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


def compute_features(reflectance: np.ndarray) -> np.ndarray:
    """Numpy kernel: ``(band, time, y, x)`` masked reflectance -> ``(feature, y, x)``.

    Pixels without any clear observation get NaN in every feature.
    """
    nb, nt, ny, nx = reflectance.shape
    if nb != len(REFLECTANCE_BANDS):
        raise ValueError(f"expected {len(REFLECTANCE_BANDS)} bands, got {nb}")
    r = reflectance.reshape(nb, nt, ny * nx).astype(np.float32, copy=False)
    feats: list[np.ndarray] = []
    indices: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, (a, b) in INDICES.items():
            va, vb = r[_B[a]], r[_B[b]]
            # Offset-corrected reflectance of dark targets (water) can be 0 or slightly
            # negative: no contrast is 0, and the index stays in its [-1, 1] range, so a
            # clear observation always yields finite features.
            total = va + vb
            idx = np.where(np.abs(total) > 1e-6, (va - vb) / np.where(total == 0, 1, total), 0.0)
            idx = np.clip(idx, -1.0, 1.0).astype(np.float32)
            idx[np.isnan(va) | np.isnan(vb)] = np.nan
            indices[name] = idx
            med, p10, p90 = _quantiles(idx, (0.5, 0.1, 0.9))
            feats += [med, p10, p90, _std(idx)]
        for bi in range(nb):
            feats += _quantiles(r[bi], (0.5,))
    feats += _harvest_features(indices["ndvi"])
    return np.stack(feats).reshape(len(FEATURE_NAMES), ny, nx).astype(np.float32)


def features_dask(reflectance: da.Array) -> da.Array:
    """Apply :func:`compute_features` per spatial block of a ``(band, time, y, x)`` dask array."""
    arr = reflectance.rechunk({0: -1, 1: -1})
    return da.map_blocks(
        compute_features,
        arr,
        drop_axis=1,
        chunks=((len(FEATURE_NAMES),), arr.chunks[2], arr.chunks[3]),
        dtype=np.float32,
        name="features-" + da.core.tokenize(arr.name),
    )
