"""Named regions of Peru built from the INEI 2007 administrative boundaries.

A region can be asked for by

- a named key from ``configs/regions.yaml`` (``peru``, ``loreto``, ``mariscal-ramon-castilla``,
  ``vrae``, ``vraem``, ``alto-huallaga``): a union of administrative units;
- any department, province or district by name, case- and accent-insensitive
  (``"Ucayali"``, ``"La Convención"``), optionally qualified by level when a name is shared
  (``"department:Ucayali"``, ``"province:Ucayali"``);
- a ubigeo code: 2 digits a department (``"16"``), 4 a province (``"1604"``), 6 a district
  (``"080910"``).

Geometries stay in lon/lat (EPSG:4326) like every :class:`~estimator.regions.geometry.Region`.
Named keys are looked up before unit names, so ``loreto`` is the department. The
monitoring zones are approximations of UNODC/DEVIDA limits; :func:`region_facts` says so.

Interface: :class:`NamedRegion`, :func:`list_regions`, :func:`resolve_region`,
:func:`region_facts`, :class:`UnknownRegionError`, :class:`AmbiguousRegionError`.
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import Geod
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from estimator.errors import AmbiguousRegionError, ConfigError, UnknownRegionError
from estimator.regions.boundaries import (
    DEFAULT_CONFIG,
    LEVELS,
    BoundaryFile,
    BoundaryFileError,
    boundaries_dir,
    boundary_files,
    read_config,
)
from estimator.regions.geometry import Region

__all__ = [
    "APPROXIMATION_NOTE",
    "AmbiguousRegionError",
    "NamedRegion",
    "UnknownRegionError",
    "list_regions",
    "region_facts",
    "resolve_region",
]

log = logging.getLogger(__name__)

APPROXIMATION_NOTE = "zones are approximations of UNODC/DEVIDA limits built from 2007 districts"
KINDS = ("country", *LEVELS, "zone")
_UNIT_NOTE = "INEI 2007 administrative unit (generalized boundaries)"
_LEVEL_OF_LENGTH = {2: "department", 4: "province", 6: "district"}
_REGION_KEYS = {"name", "kind", "units", "includes", "note"}
_GEOD = Geod(ellps="WGS84")
#: Sample spacing (degrees, about 5 km) and buffer (degrees, about 11 km) for MGRS squares.
_TILE_STEP_DEG = 0.045
_TILE_BUFFER_DEG = 0.1


@dataclass(frozen=True)
class NamedRegion:
    """A region defined in ``configs/regions.yaml``."""

    key: str
    """Identifier used on the command line and as the region id, e.g. ``vraem``."""
    name: str
    """Human-readable name."""
    kind: str
    """``department``, ``province``, ``district`` or ``zone``."""
    units: tuple[str, ...]
    """Ubigeo codes of the INEI 2007 units whose union is the region (includes expanded)."""
    approximate: bool
    """True when the region approximates limits drawn by an agency (the zones)."""
    note: str
    """What the definition is and how far to trust it."""


def list_regions(config: Path | None = None) -> list[NamedRegion]:
    """The named regions of ``configs/regions.yaml`` (or ``config``), in file order.

    Raises
    ------
    ConfigError
        A region has an unknown key or kind, a malformed ubigeo, or includes an unknown
        or circular region.
    """
    path = config or DEFAULT_CONFIG
    raw = read_config(path).get("regions")
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: 'regions' must map region keys to definitions")
    for key, entry in raw.items():
        if not isinstance(entry, dict) or not {"name", "kind"} <= set(entry) or set(entry) - _REGION_KEYS:
            raise ConfigError(f"{path}: region '{key}' needs name and kind and may have only {sorted(_REGION_KEYS)}")
        if entry["kind"] not in KINDS:
            raise ConfigError(f"{path}: region '{key}' has kind '{entry['kind']}'; use one of {', '.join(KINDS)}")
        for code in entry.get("units") or []:
            if not (isinstance(code, str) and code.isdigit() and len(code) in _LEVEL_OF_LENGTH):
                raise ConfigError(f"{path}: region '{key}' unit {code!r} is not a quoted 2, 4 or 6 digit ubigeo")

    def units_of(key: str, seen: tuple[str, ...]) -> list[str]:
        if key in seen:
            raise ConfigError(f"{path}: region '{key}' includes itself through {' -> '.join(seen)}")
        if key not in raw:
            raise ConfigError(f"{path}: region '{seen[-1]}' includes unknown region '{key}'")
        out = [u for inc in raw[key].get("includes") or [] for u in units_of(inc, (*seen, key))]
        return out + list(raw[key].get("units") or [])

    regions = []
    for key, entry in raw.items():
        units = tuple(dict.fromkeys(units_of(key, ())))
        if not units:
            raise ConfigError(f"{path}: region '{key}' has no units; list ubigeo codes under 'units'")
        zone = entry["kind"] == "zone"
        default_note = APPROXIMATION_NOTE if zone else _UNIT_NOTE
        regions.append(
            NamedRegion(key, str(entry["name"]), entry["kind"], units, zone, str(entry.get("note") or default_note))
        )
    return regions


@dataclass(frozen=True)
class _Unit:
    ubigeo: str
    level: str
    name: str
    within: str
    """Parent units, e.g. ``LA CONVENCION, CUSCO``, to tell homonyms apart."""
    geometry: BaseGeometry | None


@dataclass(frozen=True)
class _Index:
    units: dict[str, _Unit]
    by_name: dict[str, tuple[str, ...]]
    """Normalized name -> ubigeos of the units carrying it."""


def _norm(text: str) -> str:
    """Case-, accent- and separator-insensitive form of a name (``La Convención`` -> ``la convencion``)."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return re.sub(r"[\s_\-]+", " ", plain).strip().casefold()


@functools.lru_cache(maxsize=4)
def _load_index(directory: Path, files: tuple[BoundaryFile, ...]) -> _Index:
    """Parse the three (already verified) boundary files once per directory and registry."""
    parts: dict[str, list[tuple[float, str, BaseGeometry | None]]] = {}
    names: dict[str, set[str]] = {}
    within: dict[str, str] = {}
    for f in files:
        level = f.level
        data = json.loads((directory / f.file).read_text(encoding="utf-8"))
        for feat in data["features"]:
            props = feat["properties"]
            code, name = str(props[f.id_field]), str(props[f.name_field]).strip()
            # A few generalized districts lost their polygon; keep them so asking for one
            # explains that instead of calling it unknown.
            geom = shape(feat["geometry"]) if feat.get("geometry") else None
            parts.setdefault(code, []).append((geom.area if geom is not None else 0.0, name, geom))
            names.setdefault(_norm(name), set()).add(code)
            if level == "province":
                within[code] = str(props.get("FIRST_NOMB", ""))
            elif level == "district":
                within[code] = f"{props.get('NOMBPROV', '')}, {props.get('NOMBDEP', '')}"
    units = {}
    for code, pieces in parts.items():
        # Two provinces come as two features, one with a misspelt name (PUIRA); the
        # largest piece names the unit and all pieces form its polygon.
        name = max(pieces, key=lambda p: p[0])[1]
        geoms = [g for _, _, g in pieces if g is not None]
        geom = _polygonal(shapely.union_all(geoms)) if geoms else None
        units[code] = _Unit(code, _LEVEL_OF_LENGTH[len(code)], name, within.get(code, ""), geom)
    return _Index(units, {k: tuple(sorted(v)) for k, v in names.items()})


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """Valid polygonal part of ``geom`` (make_valid may leave lines or points behind)."""
    geom = shapely.make_valid(geom)
    if geom.geom_type == "GeometryCollection":
        geom = shapely.union_all([g for g in geom.geoms if g.geom_type in ("Polygon", "MultiPolygon")])
    return geom


def _index(boundaries: Path | None, config: Path | None) -> _Index:
    directory = boundaries_dir(boundaries, config=config).resolve()
    return _load_index(directory, tuple(boundary_files(config).values()))


def _describe(u: _Unit) -> str:
    return f"{u.level} {u.ubigeo} {u.name}" + (f" ({u.within})" if u.within else "")


def _geometry(index: _Index, codes: tuple[str, ...]) -> BaseGeometry:
    geoms = []
    for code in codes:
        unit = index.units.get(code)
        if unit is None:
            raise UnknownRegionError(f"ubigeo {code} is not in the INEI 2007 boundary files; check the code")
        if unit.geometry is None:
            raise BoundaryFileError(
                f"{_describe(unit)} has no polygon in the generalized INEI 2007 file; "
                f"ask for its province {code[:4]} or use your own regions GeoJSON"
            )
        geoms.append(unit.geometry)
    return _polygonal(shapely.union_all(geoms))


def resolve_region(name: str, boundaries: Path | None = None, *, config: Path | None = None) -> Region:
    """The polygon (lon/lat) of a named region, administrative unit or ubigeo code.

    Parameters
    ----------
    name
        A key of ``configs/regions.yaml``; a department, province or district name, optionally
        prefixed ``department:``, ``province:`` or ``district:``; or a 2/4/6 digit ubigeo.
    boundaries
        Local directory holding the boundary files (see :func:`~estimator.regions.boundaries.boundaries_dir`).
    config
        Regions config (default ``configs/regions.yaml``).

    Returns
    -------
    Region
        ``id`` is the named key, or the ubigeo for an administrative unit; the geometry is
        the valid union of the units.

    Raises
    ------
    UnknownRegionError
        Nothing matches; the message suggests close names.
    AmbiguousRegionError
        Several units carry the name; the message lists them with their ubigeos.
    """
    query = name.strip()
    named = {_norm(r.key): r for r in list_regions(config)}
    index = _index(boundaries, config)
    if _norm(query) in named:
        r = named[_norm(query)]
        return Region(r.key, _geometry(index, r.units), r.name, r.note if r.approximate else "")
    if query.isdigit():
        if len(query) not in _LEVEL_OF_LENGTH or query not in index.units:
            raise UnknownRegionError(
                f"ubigeo '{query}' is not in the INEI 2007 boundaries; use 2 (department), 4 (province) or 6 (district) digits"
            )
        return _unit_region(index, index.units[query])

    level, _, bare = query.rpartition(":")
    level = _norm(level)
    if level and level not in LEVELS:
        raise UnknownRegionError(f"'{level}:' is not a level; prefix with department:, province: or district:")
    codes = [c for c in index.by_name.get(_norm(bare), ()) if not level or index.units[c].level == level]
    if not codes:
        choices = {k: index.units[v[0]].name for k, v in index.by_name.items()}
        choices.update({_norm(r.key): r.key for r in named.values()})
        close = [choices[c] for c in difflib.get_close_matches(_norm(bare), choices, n=5, cutoff=0.75)]
        hint = f"did you mean {', '.join(close)}?" if close else "see `python -m estimator regions list`"
        raise UnknownRegionError(f"no region, department, province or district named '{query}'; {hint}")
    if len(codes) > 1:
        listed = "; ".join(_describe(index.units[c]) for c in codes)
        levels = sorted({index.units[c].level for c in codes}, key=LEVELS.index)
        how = "by its ubigeo" + (f" or as {' / '.join(f'{lv}:{bare}' for lv in levels)}" if len(levels) > 1 else "")
        raise AmbiguousRegionError(f"'{query}' names {len(codes)} units: {listed}; ask for one {how}")
    return _unit_region(index, index.units[codes[0]])


def _unit_region(index: _Index, unit: _Unit) -> Region:
    return Region(unit.ubigeo, _geometry(index, (unit.ubigeo,)), f"{unit.name} ({unit.level})")


def geodesic_area_ha(geom: BaseGeometry) -> float:
    """Area of a lon/lat polygon on the WGS84 ellipsoid, in hectares."""
    # pyproj adds ring areas with their sign: exteriors counter-clockwise, holes clockwise.
    area, _ = _GEOD.geometry_area_perimeter(shapely.orient_polygons(geom))
    return abs(area) / 1e4


def utm_epsg_codes(geom: BaseGeometry) -> list[int]:
    """EPSG codes of the WGS84 UTM zones the geometry's longitude span touches."""
    w, s, e, n = geom.bounds
    zones = range(min(60, math.floor((w + 180) / 6) + 1), min(60, math.floor((e + 180) / 6) + 1) + 1)
    bases = ([32600] if n >= 0 else []) + ([32700] if s < 0 else [])
    return sorted(b + z for b in bases for z in zones)


def s2_tiles(geom: BaseGeometry) -> list[str]:
    """MGRS 100 km squares (Sentinel-2 tile ids, e.g. ``18MXT``) that meet the region.

    Points on a ~5 km grid inside the region buffered by 0.1 degree (about 11 km), plus the
    buffered outline's vertices, are converted to their MGRS square. A Sentinel-2 tile is its
    100 km square plus 9.8 km to the east and south (tiles overlap their neighbours by about
    10 km), so the buffer makes this the set of tiles whose square, or the overlap strip that
    extends it, meets the region; it can include a tile that only comes within ~11 km.
    """
    import mgrs

    zone = geom.buffer(_TILE_BUFFER_DEG)
    w, s, e, n = zone.bounds
    lon, lat = np.meshgrid(
        np.arange(w, e + _TILE_STEP_DEG, _TILE_STEP_DEG), np.arange(s, n + _TILE_STEP_DEG, _TILE_STEP_DEG)
    )
    inside = shapely.contains_xy(zone, lon, lat)
    pts = np.vstack([np.column_stack([lon[inside], lat[inside]]), shapely.get_coordinates(zone.boundary)])
    # Neighbouring samples mostly share a square; rounding to ~100 m drops repeats cheaply.
    pts = np.unique(np.round(pts, 3), axis=0)
    conv = mgrs.MGRS()
    squares = {conv.toMGRS(float(y), float(x), MGRSPrecision=0) for x, y in pts}
    return sorted(sq.zfill(5) for sq in squares)


def region_facts(region: Region, config: Path | None = None) -> dict[str, Any]:
    """Facts about a region's polygon that a job plan and a report need.

    Returns
    -------
    dict
        ``id``, ``name``, ``kind``, ``area_ha`` (geodesic, WGS84), ``bbox`` (lon/lat
        west, south, east, north), ``utm_epsg`` (zones touched by its longitude span),
        ``s2_tiles`` (see :func:`s2_tiles`), ``approximate``, ``approximation`` (for zones
        the statement that they approximate UNODC/DEVIDA limits, else None) and ``note``.
    """
    named = {r.key: r for r in list_regions(config)}.get(region.id)
    if named is not None:
        kind, approximate, note = named.kind, named.approximate, named.note
    else:
        kind = _LEVEL_OF_LENGTH.get(len(region.id), "custom") if region.id.isdigit() else "custom"
        approximate, note = False, _UNIT_NOTE if kind in LEVELS else ""
    return {
        "id": region.id,
        "name": region.name,
        "kind": kind,
        "area_ha": geodesic_area_ha(region.geometry),
        "bbox": [round(v, 6) for v in region.geometry.bounds],
        "utm_epsg": utm_epsg_codes(region.geometry),
        "s2_tiles": s2_tiles(region.geometry),
        "approximate": approximate,
        "approximation": APPROXIMATION_NOTE if approximate else None,
        "note": note,
    }
