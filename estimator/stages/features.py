"""Features stage: spectral indices and per-pixel temporal statistics over the period.

The kernel :func:`compute_features` works on one block ``(band, time, y, x)`` with NaN for
non-clear observations; :func:`features_dask` wraps it once for dask. It is compiled with
numba, releases the GIL, and computes all features of a chunk of pixels in one pass over
their time series, with buffers of one chunk rather than temporaries over the block; its
results are bit for bit those of the vectorised numpy version it replaced (kept in
``tests/features_reference.py``; speeds in BENCHMARKS.md). Training and prediction both call
this module, so a model always sees the features it was fitted on; :data:`FEATURE_NAMES`
(names and order) is the contract recorded in every model card.

Harvest cycles: coca leaves are stripped 3-4 times a year, each harvest a sharp NDVI drop
followed by regrowth. ``ndvi_drop_rate`` (share of consecutive clear observations with an
NDVI decline larger than :data:`HARVEST_DROP`), ``ndvi_max_drop`` and ``ndvi_mean_absdiff``
capture that; perennial forest and pasture rarely drop, annual crops drop once.
"""

from __future__ import annotations

import functools

import dask.array as da
import numpy as np
from numba import njit

from estimator.bands import REFLECTANCE_BANDS

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


# Band positions of each index as arrays the compiled kernel can take.
_INDEX_BANDS = np.array([[_B[a], _B[b]] for a, b in INDICES.values()], dtype=np.int64)
_NDVI = list(INDICES).index("ndvi")
# float32 constants keep the kernel's comparisons in float32, as numpy's were.
_DARK = np.float32(1e-6)
_DROP = np.float32(-HARVEST_DROP)
_INF = np.float32(np.inf)
#: Pixels per chunk: long enough rows for vectorised loops, a sort buffer (dates x chunk)
#: that stays in L2 cache (measured on 512 x 512 blocks: 128 -> 512 px was 15 % faster).
_CHUNK = 512


@functools.lru_cache
def sorting_network(n: int) -> np.ndarray:
    """Comparator pairs ``(i, j)``, ``i < j``, of Batcher's odd-even merge sort for ``n`` keys.

    The network for the next power of two, without the comparators that reach past ``n``:
    padding keys would be +inf and never move, so those comparators are no-ops.
    """
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


@njit(nogil=True, cache=True)
def _sort_columns(s: np.ndarray, net: np.ndarray, m: int) -> None:
    """Sort each of the first ``m`` columns of ``s`` (time, pixel) with the comparator network.

    Branch-free and vectorised across pixels: per-pixel sorts of 10-30 dates are dominated
    by mispredicted branches (an insertion sort per pixel ran at 0.3 Mpix/s).
    """
    for c in range(net.shape[0]):
        lo = s[net[c, 0]]
        hi = s[net[c, 1]]
        for q in range(m):
            x = lo[q]
            y = hi[q]
            lo[q] = x if x <= y else y
            hi[q] = y if x <= y else x


@njit(nogil=True, cache=True)
def _stage_for_sort(row: np.ndarray, srow: np.ndarray, n: np.ndarray, m: int) -> None:
    """Copy one date of the chunk into the sort buffer, NaN as +inf, and count clear values."""
    for q in range(m):
        ok = not np.isnan(row[q])
        srow[q] = row[q] if ok else _INF
        n[q] += ok


@functools.lru_cache
def _quantile_table(nt: int, qs: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each quantile and each count ``n`` of clear values (0..nt): numpy's linear
    interpolation positions ``lo``, ``hi`` and weight ``pos - lo``, as the numpy kernel had them."""
    n = np.arange(nt + 1)
    pos = np.array(qs)[:, None] * np.maximum(n - 1, 0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    return lo, hi, pos - lo


@njit(nogil=True, cache=True)
def _quantiles(
    s: np.ndarray, n: np.ndarray, m: int, lo: np.ndarray, hi: np.ndarray, w: np.ndarray, out: np.ndarray
) -> None:
    """Quantiles of the first ``m`` columns of ``s`` (sorted clear values first) into rows of
    ``out``; NaN where a column has no clear value. float32 step, float64 interpolation."""
    for k in range(lo.shape[0]):
        row = out[k]
        for q in range(m):
            c = n[q]
            if c == 0:
                row[q] = np.nan
                continue
            a = s[lo[k, c], q]
            step = s[hi[k, c], q] - a
            row[q] = np.float32(np.float64(a) + np.float64(step) * w[k, c])


@njit(nogil=True, cache=True, error_model="numpy")
def _features_kernel(
    r: np.ndarray,
    index_bands: np.ndarray,
    ndvi: int,
    net: np.ndarray,
    q3: tuple[np.ndarray, np.ndarray, np.ndarray],
    q1: tuple[np.ndarray, np.ndarray, np.ndarray],
    out: np.ndarray,
) -> None:
    """All features of each pixel in one pass, over chunks of :data:`_CHUNK` pixels.

    ``r`` is ``(band, time, pixel)`` float32, ``out`` is ``(feature, pixel)`` float32; ``q3``
    and ``q1`` are :func:`_quantile_table` for (median, p10, p90) and (median,). Each pixel's
    series is read once per chunk, only chunk-sized buffers are allocated, and the loops run
    across the pixels of a chunk so that they vectorise. Unobserved values sort as +inf,
    after the ``n`` clear ones.
    """
    nb, nt, npix = r.shape
    n_idx = index_bands.shape[0]
    srt = np.empty((nt, _CHUNK), dtype=np.float32)
    nd = np.empty((nt, _CHUNK), dtype=np.float32)
    n = np.empty(_CHUNK, dtype=np.int64)
    s1 = np.empty(_CHUNK, dtype=np.float64)
    s2 = np.empty(_CHUNK, dtype=np.float64)
    prev = np.empty(_CHUNK, dtype=np.float32)
    n_pairs = np.empty(_CHUNK, dtype=np.int64)
    drops = np.empty(_CHUNK, dtype=np.int64)
    max_drop = np.empty(_CHUNK, dtype=np.float32)
    sum_abs = np.empty(_CHUNK, dtype=np.float32)
    qbuf = np.empty((3, _CHUNK), dtype=np.float32)
    nan = np.float32(np.nan)
    harvest = 4 * n_idx + nb
    for p0 in range(0, npix, _CHUNK):
        m = min(_CHUNK, npix - p0)
        f = 0
        for k in range(n_idx):
            n[:] = 0
            s1[:] = 0.0
            s2[:] = 0.0
            for t in range(nt):
                a = r[index_bands[k, 0], t, p0 : p0 + m]
                b = r[index_bands[k, 1], t, p0 : p0 + m]
                row = nd[t]
                for q in range(m):
                    total = a[q] + b[q]
                    # Dark targets (water) can read 0 or slightly negative: no contrast is 0.
                    v = (a[q] - b[q]) / total if abs(total) > _DARK else np.float32(0.0)
                    v = np.float32(-1.0) if v < -1.0 else v
                    v = np.float32(1.0) if v > 1.0 else v
                    row[q] = nan if np.isnan(total) else v
                _stage_for_sort(row, srt[t], n, m)
                for q in range(m):
                    v64 = np.float64(row[q]) if not np.isnan(row[q]) else 0.0
                    s1[q] += v64
                    s2[q] += v64 * v64
            _sort_columns(srt, net, m)
            _quantiles(srt, n, m, q3[0], q3[1], q3[2], qbuf)
            for q in range(m):
                out[f, p0 + q] = qbuf[0, q]
                out[f + 1, p0 + q] = qbuf[1, q]
                out[f + 2, p0 + q] = qbuf[2, q]
                mean = s1[q] / max(n[q], 1)
                std = np.float32(np.sqrt(max(s2[q] / max(n[q], 1) - mean * mean, 0.0)))
                out[f + 3, p0 + q] = std if n[q] > 0 else nan
            f += 4
            if k == ndvi:
                # Harvest cycles: differences between consecutive *clear* observations.
                prev[:] = nan
                n_pairs[:] = 0
                drops[:] = 0
                max_drop[:] = 0.0
                sum_abs[:] = 0.0
                for t in range(nt):
                    row = nd[t]
                    for q in range(m):
                        v = row[q]
                        d = v - prev[q]
                        pair = not np.isnan(d)
                        d0 = d if pair else np.float32(0.0)
                        n_pairs[q] += pair
                        drops[q] += d0 < _DROP
                        max_drop[q] = max_drop[q] if max_drop[q] >= -d0 else -d0
                        sum_abs[q] += abs(d0)
                        prev[q] = prev[q] if np.isnan(v) else v
                for q in range(m):
                    div = max(n_pairs[q], 1)
                    seen = n[q] > 0
                    out[harvest, p0 + q] = np.float32(drops[q] / div) if seen else nan
                    out[harvest + 1, p0 + q] = max_drop[q] if seen else nan
                    out[harvest + 2, p0 + q] = np.float32(np.float64(sum_abs[q]) / div) if seen else nan
        for band in range(nb):
            n[:] = 0
            for t in range(nt):
                _stage_for_sort(r[band, t, p0 : p0 + m], srt[t], n, m)
            _sort_columns(srt, net, m)
            _quantiles(srt, n, m, q1[0], q1[1], q1[2], out[f : f + 1, p0 : p0 + m])
            f += 1


def compute_features(reflectance: np.ndarray) -> np.ndarray:
    """Kernel: ``(band, time, y, x)`` masked reflectance -> ``(feature, y, x)`` float32.

    Indices are ``(a - b) / (a + b)`` clipped to [-1, 1], 0 where ``|a + b| <= 1e-6``
    (dark targets), NaN where either band is NaN; medians and p10/p90 are numpy's linear
    quantiles over the clear dates, std the population std. Pixels without any clear
    observation get NaN in every feature. Compiled (numba) and releases the GIL, so dask
    threads run blocks in parallel.
    """
    nb, nt, ny, nx = reflectance.shape
    if nb != len(REFLECTANCE_BANDS):
        raise ValueError(f"expected {len(REFLECTANCE_BANDS)} bands, got {nb}")
    r = np.ascontiguousarray(reflectance, dtype=np.float32).reshape(nb, nt, ny * nx)
    out = np.empty((len(FEATURE_NAMES), ny * nx), dtype=np.float32)
    q3, q1 = _quantile_table(nt, (0.5, 0.1, 0.9)), _quantile_table(nt, (0.5,))
    _features_kernel(r, _INDEX_BANDS, _NDVI, sorting_network(nt), q3, q1, out)
    return out.reshape(len(FEATURE_NAMES), ny, nx)


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
