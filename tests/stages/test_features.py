"""The features kernel (compiled), its numpy reference, and its dask wrapper."""

from __future__ import annotations

import itertools

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from estimator.bands import REFLECTANCE_BANDS
from estimator.stages.features import FEATURE_NAMES, HARVEST_DROP, compute_features, features_dask, sorting_network
from tests.features_reference import quantiles, reference_features

B = {b: i for i, b in enumerate(REFLECTANCE_BANDS)}


def _stack(ndvi_series: np.ndarray, ny: int = 1, nx: int = 1) -> np.ndarray:
    """Reflectance (band, time, y, x) whose NDVI follows ``ndvi_series`` (NaN = cloudy)."""
    t = len(ndvi_series)
    r = np.full((len(REFLECTANCE_BANDS), t, ny, nx), 0.1, dtype=np.float32)
    red = 0.05
    nir = red * (1 + ndvi_series) / (1 - ndvi_series)
    r[B["red"]] = red
    r[B["nir"]] = nir[:, None, None]
    r[:, np.isnan(ndvi_series)] = np.nan
    return r


def _feat(f: np.ndarray, name: str) -> np.ndarray:
    return f[FEATURE_NAMES.index(name)]


def test_feature_names_are_unique_and_match_kernel_output():
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    out = compute_features(_stack(np.array([0.5, 0.6, 0.7])))
    assert out.shape == (len(FEATURE_NAMES), 1, 1)
    assert out.dtype == np.float32


def test_ndvi_statistics_ignore_cloudy_dates():
    series = np.array([0.8, np.nan, 0.4, 0.6, np.nan, 0.2], dtype=np.float32)
    f = compute_features(_stack(series))
    clear = series[np.isfinite(series)]
    assert _feat(f, "ndvi_median")[0, 0] == pytest.approx(np.median(clear), abs=1e-5)
    assert _feat(f, "ndvi_std")[0, 0] == pytest.approx(np.std(clear), abs=1e-5)
    assert _feat(f, "ndvi_p10")[0, 0] == pytest.approx(np.percentile(clear, 10), abs=1e-5)
    assert _feat(f, "ndvi_p90")[0, 0] == pytest.approx(np.percentile(clear, 90), abs=1e-5)


def test_harvest_features_count_drops_between_clear_observations():
    # 0.8 -> (cloud) -> 0.4 is a harvest-like drop across the cloudy date; 0.4->0.6 regrowth;
    # 0.6 -> 0.55 is too small; 0.55 -> 0.2 another drop.
    series = np.array([0.8, np.nan, 0.4, 0.6, 0.55, 0.2], dtype=np.float32)
    f = compute_features(_stack(series))
    assert _feat(f, "ndvi_drop_rate")[0, 0] == pytest.approx(2 / 4)
    assert _feat(f, "ndvi_max_drop")[0, 0] == pytest.approx(0.4, abs=1e-4)
    assert _feat(f, "ndvi_mean_absdiff")[0, 0] == pytest.approx((0.4 + 0.2 + 0.05 + 0.35) / 4, abs=1e-4)
    stable = compute_features(_stack(np.array([0.8, 0.8 - HARVEST_DROP / 2, 0.8, 0.79], dtype=np.float32)))
    assert _feat(stable, "ndvi_drop_rate")[0, 0] == 0


def test_unobserved_pixel_has_nan_features_and_single_observation_is_finite():
    r = np.concatenate([_stack(np.array([np.nan, np.nan, np.nan])), _stack(np.array([np.nan, 0.7, np.nan]))], axis=3)
    f = compute_features(r)
    assert np.isnan(f[:, 0, 0]).all()
    assert np.isfinite(f[:, 0, 1]).all()
    assert _feat(f, "ndvi_std")[0, 1] == 0


def test_quantiles_match_numpy_nanpercentile():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(17, 500)).astype(np.float32)
    x[rng.random(x.shape) < 0.4] = np.nan
    x[:, 0] = np.nan
    got = quantiles(x, (0.1, 0.5, 0.9))
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        want = np.nanpercentile(x, [10, 50, 90], axis=0)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, equal_nan=True)


def test_dask_wrapper_equals_numpy_kernel():
    rng = np.random.default_rng(0)
    r = rng.uniform(0.01, 0.5, size=(len(REFLECTANCE_BANDS), 7, 40, 30)).astype(np.float32)
    r[:, rng.random((7, 40, 30)) < 0.3] = np.nan
    want = compute_features(r)
    got = features_dask(da.from_array(r, chunks=(10, 7, 16, 16))).compute(scheduler="threads")
    np.testing.assert_allclose(got, want, equal_nan=True)
    lazy = features_dask(da.from_array(r, chunks=(10, 7, 16, 16)))
    assert lazy.name == features_dask(da.from_array(r, chunks=(10, 7, 16, 16))).name  # deterministic keys


def test_dark_targets_with_zero_or_negative_reflectance_give_finite_features():
    """After the -0.1 offset, water can read 0 or below: still a clear observation."""
    r = np.full((len(REFLECTANCE_BANDS), 3, 1, 1), 0.02, dtype=np.float32)
    r[B["nir"]] = 0.0
    r[B["swir16"]] = 0.0
    r[B["swir22"], 1] = -0.003
    f = compute_features(r)
    assert np.isfinite(f).all()
    for name in ("ndmi_median", "ndvi_median", "nbr_median"):
        assert -1.0 <= _feat(f, name)[0, 0] <= 1.0


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 11, 12])
def test_sorting_network_sorts_every_zero_one_input(n):
    """0-1 principle: a comparator network that sorts all 2**n 0/1 inputs sorts everything."""
    net = sorting_network(n)
    x = np.array(list(itertools.product([0, 1], repeat=n)), dtype=np.float32).T.copy()
    for i, j in net:
        lo, hi = np.minimum(x[i], x[j]), np.maximum(x[i], x[j])
        x[i], x[j] = lo, hi
    assert (np.diff(x, axis=0) >= 0).all()


@pytest.mark.parametrize("n", [13, 18, 31, 32, 33, 70])
def test_sorting_network_sorts_random_columns(n):
    x = np.random.default_rng(n).integers(0, 5, size=(n, 4000)).astype(np.float32)
    want = np.sort(x, axis=0)
    for i, j in sorting_network(n):
        lo, hi = np.minimum(x[i], x[j]), np.maximum(x[i], x[j])
        x[i], x[j] = lo, hi
    np.testing.assert_array_equal(x, want)


def _awkward_block(seed: int, nt: int, ny: int, nx: int) -> np.ndarray:
    """Reflectance with the cases that matter: many clouds, unobserved and single-observation
    pixels, dark targets whose bands sum to 0 or nearly, negative reflectance, repeated values."""
    rng = np.random.default_rng(seed)
    r = rng.uniform(-0.05, 0.6, size=(len(REFLECTANCE_BANDS), nt, ny, nx)).astype(np.float32)
    r[:, rng.random((nt, ny, nx)) < 0.45] = np.nan  # cloudy dates: all bands
    r[rng.random(r.shape) < 0.03] = np.nan  # single missing bands
    flat = r.reshape(len(REFLECTANCE_BANDS), nt, -1)
    npix = flat.shape[2]
    flat[:, :, rng.random(npix) < 0.05] = np.nan  # never observed
    single = np.flatnonzero(rng.random(npix) < 0.05)
    keep = rng.integers(0, nt, size=single.size)
    for p, t in zip(single, keep, strict=True):
        flat[:, np.arange(nt) != t, p] = np.nan
    dark = rng.random((nt, npix)) < 0.1
    for a, b in (("nir", "red"), ("nir", "swir16"), ("green", "nir")):
        va = flat[B[a]]
        flat[B[b]][dark] = -va[dark]  # a + b == 0 exactly
    flat[B["swir22"]][rng.random((nt, npix)) < 0.05] = 0.0
    flat[B["nir08"]][rng.random((nt, npix)) < 0.05] = 4e-7  # |a + b| around the 1e-6 cut
    flat[B["rededge1"]][rng.random((nt, npix)) < 0.05] = -4e-7
    flat[B["red"]][rng.random((nt, npix)) < 0.1] = 0.05  # ties in the sorts
    return r


@pytest.mark.parametrize(
    ("seed", "nt", "ny", "nx"),
    [(0, 18, 40, 37), (1, 1, 9, 9), (2, 2, 30, 30), (3, 37, 25, 41), (4, 7, 1, 1), (5, 12, 3, 700)],
)
def test_kernel_equals_numpy_reference(seed, nt, ny, nx):
    """The compiled kernel does the numpy kernel's float32/float64 operations in the same
    order (sums over dates in date order, float64 interpolation and std), so the results are
    identical bit for bit: the tolerance is 0, NaN exactly where the reference has NaN."""
    r = _awkward_block(seed, nt, ny, nx)
    got = compute_features(r)
    with np.errstate(all="ignore"):
        want = reference_features(r)
    assert got.shape == want.shape == (len(FEATURE_NAMES), ny, nx)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


_SPECIAL = st.sampled_from([np.nan, 0.0, -0.0, 0.05, -0.05, 0.3, 0.30000001, 4e-7, -4e-7, 1.0, -0.01])


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.just(len(REFLECTANCE_BANDS)), st.integers(1, 9), st.just(2), st.integers(1, 5)),
        elements=_SPECIAL,
    )
)
def test_kernel_equals_numpy_reference_on_special_values(r):
    with np.errstate(all="ignore"):
        want = reference_features(r)
    np.testing.assert_array_equal(compute_features(r), want)
