"""Mask stage: keep clear observations only, using the Sen2Cor scene classification (SCL).

Clouds (8, 9), cirrus (10), shadows (3), saturated/defective (1) and no data (0) are not
"no coca": they are no observation. A pixel with no clear observation in the period is
unobserved and is reported in ``observed_fraction``, never classified.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

__all__ = ["MaskedStack", "clear_mask", "clear_span", "mask_observations", "mask_stack"]


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


def clear_span(clear: np.ndarray, axis: int = 0) -> np.ndarray:
    """Numpy kernel: index of the first and of the last clear observation along ``axis``.

    Returns an int16 array with a new last axis of size 2 (first, last); -1 where no
    observation is clear.
    """
    clear = np.moveaxis(clear, axis, -1)
    n = clear.shape[-1]
    seen = clear.any(axis=-1)
    first = np.argmax(clear, axis=-1)
    last = n - 1 - np.argmax(clear[..., ::-1], axis=-1)
    out = np.stack([first, last], axis=-1).astype(np.int16)
    out[~seen] = -1
    return out


@dataclass(frozen=True)
class MaskedStack:
    """Lazy result of :func:`mask_observations`."""

    masked: xr.DataArray
    """``(band, time, y, x)`` float32 reflectance, NaN where not clear."""
    n_clear: xr.DataArray
    """``(y, x)`` int16 number of clear observations."""
    span: xr.DataArray
    """``(bound, y, x)`` int16 time index of the first (``bound=0``) and last (``bound=1``)
    clear observation, -1 where none."""


def mask_observations(reflectance: xr.DataArray, scl: xr.DataArray, clear_codes: Sequence[int]) -> MaskedStack:
    """Lazy: reflectance with non-clear observations set to NaN, clear counts and the
    first/last clear time index per pixel, all from one clear mask (one dask graph)."""
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
    )
    span = xr.apply_ufunc(
        clear_span,
        clear,
        kwargs={"axis": -1},
        input_core_dims=[["time"]],
        output_core_dims=[["bound"]],
        dask="parallelized",
        output_dtypes=[np.int16],
        dask_gufunc_kwargs={"output_sizes": {"bound": 2}},
    ).transpose("bound", "y", "x")
    clear = clear.transpose("time", "y", "x")
    return MaskedStack(reflectance.where(clear), clear.sum("time").astype(np.int16), span)


def mask_stack(reflectance: xr.DataArray, scl: xr.DataArray, clear_codes: Sequence[int]) -> tuple[xr.DataArray, xr.DataArray]:
    """Lazy: reflectance with non-clear observations set to NaN, and clear counts per pixel.

    Returns
    -------
    masked
        ``(band, time, y, x)`` float32.
    n_clear
        ``(y, x)`` int16 number of clear observations.
    """
    m = mask_observations(reflectance, scl, clear_codes)
    return m.masked, m.n_clear
