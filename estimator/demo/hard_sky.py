"""Imaging the SYNTHETIC hard world: a cloudier sky that Sen2Cor's SCL gets partly wrong.

On top of the easy world's clouds, shadows and cirrus (:func:`estimator.demo.world._sky`):

- more clouds: 15 % nearly clear, 45 % broken, 40 % overcast dates; thin cirrus on 60 %;
- cloud fringes: a semi-transparent halo up to 60 m around every cloud, never in the SCL;
- shadows: thin cloud casts faint shadows that the SCL never flags, and on each date the SCL
  misses 15-60 % of the dark shadows too;
- thin cirrus: stronger than in the easy world; the SCL flags it only where it is thick
  (> 0.45) and, on each date, misses 20-70 % of that;
- SCL false clouds: bright soils and roofs flagged as cloud on some dates, blobs of clear
  land flagged as cloud, and dark burn scars flagged as cloud shadow;
- haze: an unflagged, spatially smooth path radiance (strongest in the blue, heavier in the
  east) on half of the dates;
- illumination: hills (a smooth relief with slopes up to about 12 degrees) lit by a sun whose
  elevation and azimuth change with the season, with no terrain correction, as in L2A
  products made without a fine DEM.

The SCL is made from the reflectance actually written and from what a cloud detector would
have *detected*, not from the true sky; docs/hard_world.md lists the parameters.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from estimator.bands import REFLECTANCE_BANDS, SCL
from estimator.demo.hard import HardLandscape, hard_ground_reflectance

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

    from estimator.demo.world import WorldSpec, _Acquisition

__all__ = ["hard_acquisitions", "render_hard"]

# Additive haze per band (REFLECTANCE_BANDS order), relative to the blue.
_HAZE = np.array([1.0, 0.78, 0.6, 0.32, 0.5, 0.4, 0.36, 0.3, 0.08, 0.03], dtype=np.float32)


def hard_acquisitions(acquisitions: Sequence[_Acquisition], rng: np.random.Generator) -> list[_Acquisition]:
    """The same dates with a cloudier sky: cloud and cirrus fractions drawn again."""
    n = len(acquisitions)
    n_clear, n_overcast = round(0.15 * n), round(0.40 * n)
    kinds = rng.permutation(["clear"] * n_clear + ["overcast"] * n_overcast + ["broken"] * (n - n_clear - n_overcast))
    out = []
    for acq, kind in zip(acquisitions, kinds, strict=True):
        draws = {"clear": rng.uniform(0.0, 0.05), "broken": rng.uniform(0.15, 0.5), "overcast": rng.uniform(0.55, 0.85)}
        cirrus = rng.uniform(0.1, 0.4) if rng.uniform() < 0.6 else 0.0
        out.append(dataclasses.replace(acq, cloud_fraction=float(draws[str(kind)]), cirrus_fraction=float(cirrus)))
    return out


def _illumination(slopes: np.ndarray, sun_azimuth: float, sun_elevation: float) -> np.ndarray:
    """cos(incidence) / cos(zenith): how much brighter a slope is than flat ground."""
    az, el = math.radians(sun_azimuth), math.radians(max(sun_elevation, 5.0))
    sun = np.array([math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el)])
    gx, gy = slopes
    cos_i = (-gx * sun[0] - gy * sun[1] + sun[2]) / np.sqrt(gx * gx + gy * gy + 1.0)
    return np.clip(cos_i / sun[2], 0.5, 1.5).astype(np.float32)


def _smooth(rng: np.random.Generator, size: int, sigma_m: float) -> np.ndarray:
    """Zero-mean, unit-std smooth field drawn at 80 m and interpolated."""
    low = -(-size // 8)
    f = ndimage.gaussian_filter(rng.standard_normal((low, low)), sigma_m / 80.0, mode="wrap")
    f = (f - f.mean()) / (f.std() or 1.0)
    return ndimage.zoom(f, size / low, order=1, grid_mode=True, mode="nearest")[:size, :size].astype(np.float32)


def _missed(rng: np.random.Generator, size: int, low: float, high: float) -> np.ndarray:
    """Where a detector misses on this date: a smooth random share in [low, high] of the scene."""
    field = _smooth(rng, size, 400.0)
    return field < float(np.quantile(field, rng.uniform(low, high)))


def render_hard(root: Path, spec: WorldSpec, land: HardLandscape, acq: _Acquisition) -> tuple[np.ndarray, BaseGeometry]:
    """Make and write one date's COGs of the hard world; return its SCL histogram and footprint."""
    from estimator.demo import world as w  # imports this module lazily: no cycle at import time

    rng = w._rng(spec, "image", acq.index)
    hrng = w._rng(spec, "hard_image", acq.index)
    size = land.grid.size_px
    refl = hard_ground_reflectance(land, acq.datetime.date(), rng)
    refl *= rng.normal(1.0, 0.02, (len(REFLECTANCE_BANDS), 1, 1)).astype(np.float32)
    refl *= _illumination(land.terrain, acq.sun_azimuth, acq.sun_elevation)[None]
    if hrng.uniform() < 0.5:
        east = np.linspace(0.6, 1.4, size, dtype=np.float32)[None, :]
        haze = hrng.uniform(0.005, 0.03) * np.clip(1.0 + 0.5 * _smooth(hrng, size, 1500.0), 0.0, None) * east
        refl += _HAZE[:, None, None] * haze[None]
    sky = w._sky(rng, size, acq)

    # Faint shadows of thin cloud (never detected) and the dark shadows the SCL sees.
    reach_px = acq.cloud_height_m / math.tan(math.radians(max(acq.sun_elevation, 5.0))) / 10.0
    az = math.radians(acq.sun_azimuth)
    d_row, d_col = round(math.cos(az) * reach_px), round(-math.sin(az) * reach_px)
    faint = w._shift((sky.opacity > 0.02) & sky.cloud, d_row, d_col) & ~sky.cloud & ~sky.shadow
    refl[:, sky.shadow] *= w._SHADOW[:, None]
    refl[:, faint] *= (1.0 - 0.5 * (1.0 - w._SHADOW))[:, None]
    thick_cirrus = sky.cirrus * 1.8
    refl += w._CIRRUS[:, None, None] * (0.3 + 0.7 * sky.cirrus) * 1.8 * (sky.cirrus > 0)
    # Cloud fringes: semi-transparent up to 60 m beyond the opaque cloud.
    dist = ndimage.distance_transform_edt(~sky.cloud) if sky.cloud.any() else np.full((size, size), np.inf)
    fringe = np.where(~sky.cloud & (dist <= 6.0), 0.3 * np.exp(-dist / 3.0), 0.0).astype(np.float32)
    alpha = np.where(sky.cloud, 0.55 + 0.45 * sky.opacity, fringe).astype(np.float32)
    refl = refl * (1.0 - alpha) + alpha * (w._CLOUD[:, None, None] * (0.8 + 0.3 * sky.opacity))

    detected = w._Sky(
        sky.cloud,
        sky.opacity,
        np.where((sky.cirrus > 0.45) & ~_missed(hrng, size, 0.2, 0.7), thick_cirrus, 0.0).astype(np.float32),
        sky.shadow & ~_missed(hrng, size, 0.15, 0.6),
    )
    nodata20 = w._swath_nodata(size // 2, acq.swath_edge)
    scl = w._scene_classification(refl, detected, nodata20)
    _false_detections(scl, refl, hrng, nodata20)
    return w._write_date(root, spec, land.grid, acq, refl, scl, nodata20)


def _false_detections(scl: np.ndarray, refl: np.ndarray, rng: np.random.Generator, nodata20: np.ndarray) -> None:
    """SCL errors of commission, in place: bright ground as cloud, dark ground as shadow."""
    from estimator.demo.world import _block_mean

    clear = np.isin(scl, (SCL.VEGETATION, SCL.NOT_VEGETATED, SCL.WATER)) & ~nodata20
    blue, nir = (_block_mean(refl[REFLECTANCE_BANDS.index(b)]) for b in ("blue", "nir"))
    size20 = scl.shape[0]
    if rng.uniform() < 0.35:
        scl[clear & (blue > 0.08)] = SCL.CLOUD_MEDIUM
    if rng.uniform() < 0.4:
        field = _smooth(rng, size20, 120.0)
        scl[clear & (field > np.quantile(field, 1.0 - rng.uniform(0.01, 0.04)))] = SCL.CLOUD_MEDIUM
    if rng.uniform() < 0.3:
        scl[clear & (scl != SCL.WATER) & (nir < 0.12)] = SCL.CLOUD_SHADOW
