"""The output grid and the true ground area of its pixels.

A projected pixel is not ``resolution**2`` of ground: in UTM the scale factor reaches
about 1.01 (2 % in area) at the zone edge and more beyond it, which matters when a job
spanning two zones (Loreto) uses one grid. Hectares are therefore always summed from
per-pixel true areas.
"""

from __future__ import annotations

import math

import numpy as np
from odc.geo.geobox import GeoBox
from pyproj import CRS, Geod, Proj, Transformer
from scipy.interpolate import RegularGridInterpolator
from shapely.geometry.base import BaseGeometry

__all__ = ["make_grid", "pixel_area_m2", "utm_crs_for"]

_GEOD = Geod(ellps="WGS84")
#: Areal scale varies smoothly; evaluate it every this many pixels and interpolate.
_LATTICE_STEP = 32


def utm_crs_for(lon: float, lat: float) -> str:
    """EPSG code of the WGS84 UTM zone containing a point, e.g. ``EPSG:32718``."""
    zone = min(60, int(math.floor((lon + 180.0) / 6.0)) + 1)
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def make_grid(area_xy: BaseGeometry, crs: str, resolution: float) -> GeoBox:
    """A north-up grid covering ``area_xy`` (already in ``crs``), snapped to ``resolution``."""
    x0, y0, x1, y1 = area_xy.bounds
    r = float(resolution)
    x0, y0 = math.floor(x0 / r) * r, math.floor(y0 / r) * r
    x1, y1 = math.ceil(x1 / r) * r, math.ceil(y1 / r) * r
    return GeoBox.from_bbox((x0, y0, x1, y1), crs=crs, resolution=r, tight=True)


def pixel_area_m2(geobox: GeoBox) -> np.ndarray:
    """True ground area (m^2, WGS84 ellipsoid) of every pixel of ``geobox``, shape ``(ny, nx)``."""
    ny, nx = geobox.shape.yx
    crs = CRS.from_user_input(str(geobox.crs))
    a = geobox.affine
    if crs.is_geographic:
        # Ellipsoidal area of a lon/lat cell depends on its latitudes only: one geodesic
        # polygon per row.
        lat_edges = a.f + a.e * np.arange(ny + 1)
        dlon = abs(a.a)
        rows = np.array(
            [abs(_GEOD.polygon_area_perimeter([0, dlon, dlon, 0], [lat_edges[i], lat_edges[i], lat_edges[i + 1], lat_edges[i + 1]])[0]) for i in range(ny)]
        )
        return np.broadcast_to(rows[:, None], (ny, nx)).astype(np.float64)

    nominal = abs(a.a * a.e - a.b * a.d)
    ys = np.unique(np.r_[np.arange(0, ny, _LATTICE_STEP), ny - 1]).astype(float)
    xs = np.unique(np.r_[np.arange(0, nx, _LATTICE_STEP), nx - 1]).astype(float)
    cx, cy = np.meshgrid(xs + 0.5, ys + 0.5)
    px = a.c + a.a * cx + a.b * cy
    py = a.f + a.d * cx + a.e * cy
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(px, py)
    scale = Proj(crs).get_factors(lon, lat).areal_scale
    lattice = nominal / np.asarray(scale, dtype=np.float64)
    if len(ys) == 1 or len(xs) == 1:
        return np.broadcast_to(lattice.mean(), (ny, nx)).astype(np.float64)
    interp = RegularGridInterpolator((ys, xs), lattice)
    gy, gx = np.meshgrid(np.arange(ny, dtype=float), np.arange(nx, dtype=float), indexing="ij")
    return interp(np.stack([gy.ravel(), gx.ravel()], axis=1)).reshape(ny, nx)
