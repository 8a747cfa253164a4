"""Mask stage: keep clear observations only, using the Sen2Cor scene classification (SCL).

Clouds (8, 9), cirrus (10), shadows (3), saturated/defective (1) and no data (0) are not
"no coca": they are no observation. A pixel with no clear observation in the period is
unobserved and is reported in ``observed_fraction``, never classified.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dask.array as da
import numpy as np
import xarray as xr

from estimator.stages.load import TileStack, to_reflectance

__all__ = ["MaskedStack", "block_any", "clear_blocks", "clear_inside_any", "clear_mask", "clear_span", "mask_observations"]


def clear_mask(scl: np.ndarray, dn: np.ndarray, clear_codes: Sequence[int], band_axis: int = 0) -> np.ndarray:
    """Numpy kernel: True where SCL says clear and every band has data.

    Parameters
    ----------
    scl
        ``(time, y, x)`` SCL codes.
    dn
        ``(band, time, y, x)`` digital numbers, 0 for no data.
    clear_codes
        SCL codes counted as clear.
    band_axis
        Axis of ``dn`` holding bands; removing it must leave ``scl``'s shape.
    """
    return np.isin(scl, np.asarray(clear_codes, dtype=scl.dtype)) & (dn != 0).all(axis=band_axis)


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


def clear_inside_any(scl: np.ndarray, inside: np.ndarray, clear_codes: Sequence[int]) -> np.ndarray:
    """Numpy kernel: ``(time, y, x)`` SCL and ``(y, x)`` area of interest -> ``(time, 1, 1)``,
    True where some pixel is clear by SCL and inside: the time slices of this block whose
    reflectance can be used."""
    clear = np.isin(scl, np.asarray(clear_codes, dtype=scl.dtype)) & inside
    return clear.any(axis=(1, 2)).reshape(-1, 1, 1)


def clear_blocks(scl: da.Array, inside: da.Array, clear_codes: Sequence[int]) -> da.Array:
    """Lazy ``(time, chunk row, chunk column)`` bool, one value per block of ``scl``:
    :func:`clear_inside_any` of that block. ``inside`` is ``(y, x)`` bool."""
    codes = tuple(int(c) for c in clear_codes)
    return da.blockwise(
        clear_inside_any, "tyx", scl, "tyx", inside.rechunk(scl.chunks[1:]), "yx",
        clear_codes=codes, dtype=bool, adjust_chunks={"y": 1, "x": 1},
    )


def block_any(mask: np.ndarray, chunk: int) -> np.ndarray:
    """``(y, x)`` bool -> ``(chunk row, chunk column)``: True where the chunk holds a True."""
    ny, nx = mask.shape
    out = np.zeros((-(-ny // chunk), -(-nx // chunk)), dtype=bool)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = mask[i * chunk : (i + 1) * chunk, j * chunk : (j + 1) * chunk].any()
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


def _masked_reflectance(dn: np.ndarray, clear: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    out = to_reflectance(dn, scale, offset)
    out[:, ~clear] = np.nan  # in place: the chunk's only float copy of its bands
    return out


def _span_first_axis(clear: np.ndarray) -> np.ndarray:
    return np.moveaxis(clear_span(clear, axis=0), -1, 0)


def mask_observations(stack: TileStack, clear_codes: Sequence[int]) -> MaskedStack:
    """Lazy: reflectance with non-clear observations set to NaN, clear counts and the
    first/last clear time index per pixel, all from one clear mask (one dask graph).

    Scaling and masking are one step per chunk, on the digital numbers as read: a chunk holds
    its bands as uint16 plus one float32 copy, not three float32 arrays.
    """
    codes = tuple(int(c) for c in clear_codes)
    dn, scl = stack.dn.data, stack.scl.data
    clear = da.blockwise(
        clear_mask, "tyx", scl, "tyx", dn, "btyx", clear_codes=codes, dtype=bool, concatenate=True
    )
    masked = da.blockwise(
        _masked_reflectance, "btyx", dn, "btyx", clear, "tyx", scale=stack.scale, offset=stack.offset, dtype=np.float32
    )
    span = clear.map_blocks(_span_first_axis, chunks=((2,), *clear.chunks[1:]), dtype=np.int16)
    yx = {k: stack.dn.coords[k] for k in ("y", "x")}
    return MaskedStack(
        masked=xr.DataArray(masked, coords=stack.dn.coords, dims=stack.dn.dims),
        n_clear=xr.DataArray(clear.sum(axis=0, dtype=np.int16), coords=yx, dims=("y", "x")),
        span=xr.DataArray(span, coords=yx, dims=("bound", "y", "x")),
    )
