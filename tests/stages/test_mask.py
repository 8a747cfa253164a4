"""SCL masking: clouds, shadows, cirrus and no data are not observations."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import xarray as xr

from estimator.bands import SCL, SCL_CLEAR_DEFAULT
from estimator.stages.load import TileStack, to_reflectance
from estimator.stages.mask import clear_mask, clear_span, mask_observations


def test_clear_mask_by_scl_code():
    scl = np.arange(12, dtype=np.uint8).reshape(12, 1, 1)
    dn = np.full((10, 12, 1, 1), 1000, dtype=np.uint16)
    clear = clear_mask(scl, dn, SCL_CLEAR_DEFAULT)[:, 0, 0]
    assert set(np.flatnonzero(clear)) == {int(c) for c in SCL_CLEAR_DEFAULT}
    for code in (SCL.NO_DATA, SCL.SATURATED_DEFECTIVE, SCL.CLOUD_SHADOW, SCL.CLOUD_MEDIUM, SCL.CLOUD_HIGH, SCL.THIN_CIRRUS):
        assert not clear[code]


def test_missing_band_data_is_not_clear():
    scl = np.full((2, 1, 1), SCL.VEGETATION, dtype=np.uint8)
    dn = np.full((10, 2, 1, 1), 1000, dtype=np.uint16)
    dn[3, 1] = 0  # no data in one band
    assert clear_mask(scl, dn, SCL_CLEAR_DEFAULT)[:, 0, 0].tolist() == [True, False]


def _stack(dn: np.ndarray, scl: np.ndarray, chunks: dict[str, int] | None = None) -> TileStack:
    n_band, n_time = dn.shape[:2]
    scale = np.full((n_band, n_time), 1e-4, np.float32)
    offset = np.tile(np.array([0.0, -0.1] * n_time, np.float32)[:n_time], (n_band, 1))
    dn_x = xr.DataArray(dn, dims=("band", "time", "y", "x")).chunk(chunks or {})
    return TileStack(dn_x, scale, offset, xr.DataArray(scl, dims=("time", "y", "x")).chunk(chunks or {}), ())


def test_mask_observations_sets_nan_scales_and_counts_clear():
    scl = np.array([[[4, 9]], [[8, 5]], [[3, 4]]], dtype=np.uint8)
    dn = np.full((10, 3, 1, 2), 3000, dtype=np.uint16)
    dn[2, 2, 0, 1] = 0  # no data in one band of an otherwise clear observation
    m = mask_observations(_stack(dn, scl), SCL_CLEAR_DEFAULT)
    masked = m.masked.values
    assert m.n_clear.values.tolist() == [[1, 1]]
    assert np.isnan(masked[:, 1, 0, 0]).all() and np.isnan(masked[:, 2, 0, 1]).all()
    # Slice 0 has offset 0, slice 1 -0.1 (the 2022 baseline change): scaled per slice.
    assert masked[0, 0, 0, 0] == np.float32(3000) * np.float32(1e-4)
    assert masked[0, 1, 0, 1] == np.float32(3000) * np.float32(1e-4) + np.float32(-0.1)


def test_masking_equals_scaling_then_masking_with_numpy():
    """The one-step chunk kernel gives bit for bit what scaling then masking gives."""
    rng = np.random.default_rng(3)
    dn = rng.integers(0, 12000, size=(10, 5, 7, 9), dtype=np.uint16)
    dn[rng.random(dn.shape) < 0.05] = 0
    scl = rng.choice(np.arange(12, dtype=np.uint8), size=(5, 7, 9))
    stack = _stack(dn, scl, {"x": 4, "y": 3})
    m = mask_observations(stack, SCL_CLEAR_DEFAULT)
    refl = to_reflectance(dn, stack.scale, stack.offset)
    expected = np.where(clear_mask(scl, dn, SCL_CLEAR_DEFAULT)[None], refl, np.float32(np.nan))
    np.testing.assert_array_equal(m.masked.values, expected)
    np.testing.assert_array_equal(stack.reflectance.values, refl)
    assert np.isnan(refl[dn == 0]).all() and np.isfinite(refl[dn != 0]).all()


def test_clear_span_finds_first_and_last_clear_slice():
    clear = np.array([[0, 1, 0, 1, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], bool)  # (pixel, time)
    assert clear_span(clear, axis=-1).tolist() == [[1, 3], [0, 0], [-1, -1]]


def test_mask_observations_span_on_dask_blocks():
    scl = np.array([[[4, 9]], [[8, 5]], [[3, 4]]], dtype=np.uint8)
    dn = np.full((10, 3, 1, 2), 2000, dtype=np.uint16)
    m = mask_observations(_stack(dn, scl, {"x": 1}), SCL_CLEAR_DEFAULT)
    assert m.span.dims == ("bound", "y", "x") and m.span.dtype == np.int16
    assert m.span.values[:, 0].tolist() == [[0, 1], [0, 2]]  # first / last per pixel
    assert m.n_clear.values.tolist() == [[1, 2]]


def test_real_scl_clear_share_matches_the_items_own_percentages(shared):
    """Independent check: the clear share our mask finds in the real SCL raster equals what
    Sen2Cor reported in the item's metadata (vegetation + not vegetated + water + unclassified)."""
    import json

    path = shared / "real/rasters/s2_l2a_T29RKH_2020-02-19_earthsearch_downsampled/SCL.tif"
    if not path.is_file():
        pytest.skip(f"{path} absent")
    props = json.loads((shared / "real/stac/earth_search_v1/item_S2A_29RKH_20200219_0_L2A.json").read_text())["properties"]
    with rasterio.open(path) as src:
        scl = src.read(1)[None]
    dn = np.full((10, *scl.shape), 1000, dtype=np.uint16)
    clear = clear_mask(scl, dn, SCL_CLEAR_DEFAULT)
    reported = sum(props[f"s2:{k}_percentage"] for k in ("vegetation", "not_vegetated", "water", "unclassified"))
    assert 100 * clear[scl > 0].mean() == pytest.approx(reported, abs=0.2)  # 10x downsampled raster
    cloudy = sum(props[f"s2:{k}_percentage"] for k in ("medium_proba_clouds", "high_proba_clouds", "thin_cirrus"))
    assert 100 * (~clear[scl > 0]).mean() == pytest.approx(cloudy, abs=0.2)
