"""SCL masking: clouds, shadows, cirrus and no data are not observations."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import xarray as xr

from estimator.bands import SCL, SCL_CLEAR_DEFAULT
from estimator.mask import clear_mask, clear_span, mask_observations, mask_stack


def test_clear_mask_by_scl_code():
    scl = np.arange(12, dtype=np.uint8).reshape(12, 1, 1)
    refl = np.full((10, 12, 1, 1), 0.1, dtype=np.float32)
    clear = clear_mask(scl, refl, SCL_CLEAR_DEFAULT)[:, 0, 0]
    assert set(np.flatnonzero(clear)) == {int(c) for c in SCL_CLEAR_DEFAULT}
    for code in (SCL.NO_DATA, SCL.SATURATED_DEFECTIVE, SCL.CLOUD_SHADOW, SCL.CLOUD_MEDIUM, SCL.CLOUD_HIGH, SCL.THIN_CIRRUS):
        assert not clear[code]


def test_missing_band_data_is_not_clear():
    scl = np.full((2, 1, 1), SCL.VEGETATION, dtype=np.uint8)
    refl = np.full((10, 2, 1, 1), 0.1, dtype=np.float32)
    refl[3, 1] = np.nan
    assert clear_mask(scl, refl, SCL_CLEAR_DEFAULT)[:, 0, 0].tolist() == [True, False]


def test_mask_stack_sets_nan_and_counts_clear():
    scl = xr.DataArray(np.array([[[4, 9]], [[8, 5]], [[3, 4]]], dtype=np.uint8), dims=("time", "y", "x"))
    refl = xr.DataArray(np.full((10, 3, 1, 2), 0.2, dtype=np.float32), dims=("band", "time", "y", "x"))
    masked, n_clear = mask_stack(refl, scl, SCL_CLEAR_DEFAULT)
    assert n_clear.values.tolist() == [[1, 2]]
    assert np.isnan(masked.values[:, 1, 0, 0]).all() and np.isfinite(masked.values[:, 0, 0, 0]).all()


def test_clear_span_finds_first_and_last_clear_slice():
    clear = np.array([[0, 1, 0, 1, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], bool)  # (pixel, time)
    assert clear_span(clear, axis=-1).tolist() == [[1, 3], [0, 0], [-1, -1]]


def test_mask_observations_span_on_dask_blocks():
    scl = xr.DataArray(np.array([[[4, 9]], [[8, 5]], [[3, 4]]], dtype=np.uint8), dims=("time", "y", "x")).chunk({"x": 1})
    refl = xr.DataArray(np.full((10, 3, 1, 2), 0.2, dtype=np.float32), dims=("band", "time", "y", "x")).chunk({"x": 1})
    m = mask_observations(refl, scl, SCL_CLEAR_DEFAULT)
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
    refl = np.full((10, *scl.shape), 0.1, dtype=np.float32)
    clear = clear_mask(scl, refl, SCL_CLEAR_DEFAULT)
    reported = sum(props[f"s2:{k}_percentage"] for k in ("vegetation", "not_vegetated", "water", "unclassified"))
    assert 100 * clear[scl > 0].mean() == pytest.approx(reported, abs=0.2)  # 10x downsampled raster
    cloudy = sum(props[f"s2:{k}_percentage"] for k in ("medium_proba_clouds", "high_proba_clouds", "thin_cirrus"))
    assert 100 * (~clear[scl > 0]).mean() == pytest.approx(cloudy, abs=0.2)
