"""The features kernel (numpy) and its dask wrapper."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from estimator.bands import REFLECTANCE_BANDS
from estimator.features import FEATURE_NAMES, HARVEST_DROP, _quantiles, compute_features, features_dask

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
    got = _quantiles(x, (0.1, 0.5, 0.9))
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
