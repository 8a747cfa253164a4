"""Mask stage: keep clear observations only, using the Sen2Cor scene classification (SCL).

Clouds (8, 9), cirrus (10), shadows (3), saturated/defective (1) and no data (0) are not
"no coca": they are no observation. A pixel with no clear observation in the period is
unobserved and is reported in ``observed_fraction``, never classified.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

__all__ = ["clear_mask", "mask_stack"]


def clear_mask(scl: np.ndarray, reflectance: np.ndarray, clear_codes: Sequence[int], band_axis: int = 0) -> np.ndarray:
    """Numpy kernel: True where SCL says clear and every band has data.

    Parameters
    ----------
    scl
        ``(time, y, x)`` SCL codes.
    reflectance
        ``(band, time, y, x)`` reflectance with NaN for no data.
    clear_codes
        SCL codes counted as clear.
    band_axis
        Axis of ``reflectance`` holding bands; removing it must leave ``scl``'s shape.
    """
    return np.isin(scl, np.asarray(clear_codes, dtype=scl.dtype)) & np.isfinite(reflectance).all(axis=band_axis)


def mask_stack(reflectance: xr.DataArray, scl: xr.DataArray, clear_codes: Sequence[int]) -> tuple[xr.DataArray, xr.DataArray]:
    """Lazy: reflectance with non-clear observations set to NaN, and clear counts per pixel.

    Returns
    -------
    masked
        ``(band, time, y, x)`` float32.
    n_clear
        ``(y, x)`` int16 number of clear observations.
    """
    clear = xr.apply_ufunc(
        clear_mask,
        scl,
        reflectance,
        # apply_ufunc moves core dims last: scl (..., time), reflectance (..., band, time)
        kwargs={"clear_codes": tuple(int(c) for c in clear_codes), "band_axis": -2},
        input_core_dims=[["time"], ["band", "time"]],
        output_core_dims=[["time"]],
        dask="parallelized",
        output_dtypes=[bool],
    ).transpose("time", "y", "x")
    masked = reflectance.where(clear)
    n_clear = clear.sum("time").astype(np.int16)
    return masked, n_clear
