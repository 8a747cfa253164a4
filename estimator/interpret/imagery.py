"""What an interpreter sees of one sample unit: image chips and index time series, read
from the run's own scenes through the run's own planning and loading code.

Scenes. The run's ``manifest.json`` lists the scenes it used (item ids) and the job's STAC
settings; the items are searched again over the sample's extent and only the manifest's are
kept (a scene published since the run is not shown; a mirror can stand in with
``stac_url``). :func:`estimator.stages.plan.make_plan` on the run's regions and grid settings
rebuilds the run's grid, checked equal to the class map's, so a unit's ``row``/``col`` are
the pixel the map classified.

Chips. Around each unit a window of ``2 * CHIP_HALF + 1`` pixels (490 m at 10 m) is loaded
with :func:`estimator.stages.load.load_tile` (odc-stac, per-item scale/offset), masked with
the job's clear SCL codes (:func:`estimator.stages.mask.clear_mask`), and drawn per date on
which the unit's pixel is clear: true colour (red, green, blue) and colour infrared (NIR,
red, green: healthy vegetation bright red, fresh clearings and harvested plots dark). The
stretch is fixed, not per chip, so dates and units compare by eye.

Series. NDVI and NBR (the features stage's definitions) at the unit's pixel on every date
with data, each marked clear or not.
"""

from __future__ import annotations

import io
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dask
import numpy as np
import pystac
import rasterio
import shapely
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry

from estimator.bands import REFLECTANCE_BANDS
from estimator.config import GridConfig, MaskConfig, PeriodConfig, StacConfig
from estimator.interpret.errors import SampleFileError
from estimator.regions.geometry import to_crs
from estimator.run.rundir import RunDir
from estimator.stages.features import INDICES
from estimator.stages.load import configure_gdal, load_tile, to_reflectance
from estimator.stages.mask import clear_mask
from estimator.stages.plan import Plan, Tile, make_plan
from estimator.stages.search import search_items

__all__ = ["CHIP_HALF", "COMPOSITES", "Scenes", "UnitImagery", "map_values", "open_scenes"]

log = logging.getLogger(__name__)

#: Pixels on each side of the unit's pixel: 24 gives 49 x 49 px, 490 m at 10 m.
CHIP_HALF = 24
_B = {b: i for i, b in enumerate(REFLECTANCE_BANDS)}
#: Composite name -> (bands as red, green, blue; reflectance shown as full brightness).
COMPOSITES: dict[str, tuple[tuple[str, str, str], tuple[float, float, float]]] = {
    "true": (("red", "green", "blue"), (0.18, 0.18, 0.18)),
    "cir": (("nir", "red", "green"), (0.5, 0.18, 0.18)),
}
_GAMMA = 1 / 1.6  # lifts the dark forest canopy without washing out bright soil


@dataclass(frozen=True)
class UnitImagery:
    """One unit's chips and series (computed once, then kept in memory)."""

    dates: tuple[str, ...]
    """ISO solar date of every time slice touching the chip."""
    series: tuple[dict[str, Any], ...]
    """Per date with data at the pixel: ``date``, ``ndvi``, ``nbr``, ``clear``, ``scl``."""
    chip_dates: tuple[int, ...]
    """Indices into ``dates`` where the unit's pixel is clear (one chip pair each)."""
    centre: tuple[int, int]
    """Row and column of the unit's pixel inside the chip."""
    shape: tuple[int, int]
    """Chip height and width in pixels."""
    pngs: dict[tuple[int, str], bytes] = field(repr=False)

    def meta(self, resolution: float) -> dict[str, Any]:
        return {
            "dates": list(self.dates), "series": list(self.series), "chips": list(self.chip_dates),
            "centre": list(self.centre), "shape": list(self.shape), "pixel_m": resolution,
            "composites": {k: list(v[0]) for k, v in COMPOSITES.items()},
        }


def _png(rgb: np.ndarray) -> bytes:
    import matplotlib.image

    buf = io.BytesIO()
    matplotlib.image.imsave(buf, rgb, format="png")
    return buf.getvalue()


def composite(refl: np.ndarray, t: int, name: str) -> np.ndarray:
    """``(y, x, 3)`` float image in [0, 1] of composite ``name`` at time index ``t`` of a
    ``(band, time, y, x)`` reflectance block; no data is black."""
    bands, top = COMPOSITES[name]
    rgb = np.stack([refl[_B[b], t] / m for b, m in zip(bands, top, strict=True)], axis=-1)
    return np.clip(np.nan_to_num(rgb, nan=0.0), 0.0, 1.0) ** _GAMMA


def _nd(a: float, b: float) -> float | None:
    s = a + b
    return None if not np.isfinite(s) or abs(s) < 1e-6 else round(float((a - b) / s), 4)


@dataclass
class Scenes:
    """The run's scenes over the sample, planned on the run's grid, and a cache of units."""

    run: RunDir
    plan: Plan
    items: dict[str, pystac.Item]
    clear_scl: tuple[int, ...]
    footprints: dict[str, BaseGeometry]
    """Item footprints in the grid's CRS."""
    cache_size: int = 64
    _cache: OrderedDict[tuple[int, int], UnitImagery] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loading: dict[tuple[int, int], threading.Lock] = field(default_factory=dict)

    def unit(self, row: int, col: int) -> UnitImagery:
        """Chips and series of the pixel (row, col), loaded once (concurrent callers for
        the same unit wait for the first)."""
        key = (row, col)
        with self._lock:
            got = self._cache.get(key)
            if got is not None:
                self._cache.move_to_end(key)
                return got
            unit_lock = self._loading.setdefault(key, threading.Lock())
        with unit_lock:
            with self._lock:
                got = self._cache.get(key)
            if got is None:
                got = self._load(row, col)
                with self._lock:
                    self._cache[key] = got
                    while len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
            with self._lock:
                self._loading.pop(key, None)
        return got

    def _load(self, row: int, col: int) -> UnitImagery:
        ny, nx = self.plan.grid.shape.yx
        r0, r1 = max(0, row - CHIP_HALF), min(ny, row + CHIP_HALF + 1)
        c0, c1 = max(0, col - CHIP_HALF), min(nx, col + CHIP_HALF + 1)
        gb = self.plan.grid[r0:r1, c0:c1]
        box = shapely.box(*gb.boundingbox)
        groups = tuple(g2 for g in self.plan.groups if (g2 := tuple(i for i in g if self.footprints[i].intersects(box))))
        stack = load_tile(Tile(f"unit-r{row}c{col}", gb, groups), self.plan, self.items)
        cy, cx = row - r0, col - c0
        if stack is None:
            return UnitImagery((), (), (), (cy, cx), (r1 - r0, c1 - c0), {})
        with dask.config.set(scheduler="threads"):
            dn, scl = dask.compute(stack.dn.data, stack.scl.data)
        refl = to_reflectance(dn, stack.scale, stack.offset)
        clear = clear_mask(scl, dn, self.clear_scl)
        dates = tuple(self.plan.items[g[0]].solar_day.isoformat() for g in stack.groups)
        series = []
        chip_dates = []
        for t, day in enumerate(dates):
            px = refl[:, t, cy, cx]
            if not np.isfinite(px).all():
                continue  # no data at the pixel on this date
            ok = bool(clear[t, cy, cx])
            series.append({
                "date": day, "t": t, "clear": ok, "scl": int(scl[t, cy, cx]),
                **{k: _nd(float(px[_B[INDICES[k][0]]]), float(px[_B[INDICES[k][1]]])) for k in ("ndvi", "nbr")},
            })
            if ok:
                chip_dates.append(t)
        pngs = {(t, name): _png(composite(refl, t, name)) for t in chip_dates for name in COMPOSITES}
        return UnitImagery(dates, tuple(series), tuple(chip_dates), (cy, cx), (r1 - r0, c1 - c0), pngs)


def open_scenes(run: RunDir, bbox: Sequence[float], *, stac_url: str | None = None, progress: bool = False) -> Scenes:
    """Search the run's scenes over ``bbox`` (lon/lat) and plan them on the run's grid.

    Raises
    ------
    SampleFileError
        None of the run's scenes is found, or they no longer give the run's grid.
    """
    cfg = run.manifest["config"]
    stac = StacConfig.model_validate(cfg["stac"])
    if stac_url:
        stac = stac.model_copy(update={"url": stac_url})
    period = PeriodConfig.model_validate(cfg["period"])
    grid = GridConfig.model_validate(cfg.get("grid") or {})
    mask = MaskConfig.model_validate(cfg.get("mask") or {})
    found = search_items(stac, bbox, period, progress=progress)
    used = {i["id"] for i in run.manifest.get("items", [])}
    items = [i for i in found.items if i.id in used]
    if not items:
        raise SampleFileError(
            f"none of the run's {len(used)} scenes was found at {stac.url}; "
            "if the catalog moved (e.g. the demo world is served on another port), pass --stac-url"
        )
    plan = make_plan(
        [i.to_dict() for i in items], run.regions, resolution=grid.resolution, crs=str(run.grid.crs),
        tile_size=grid.tile_size, chunk_size=grid.chunk_size, provider=stac.provider,
    )
    if plan.grid.shape != run.grid.shape or plan.grid.affine != run.grid.affine:
        raise SampleFileError(f"the run's scenes no longer plan onto the grid of {run.class_map}; rerun the job")
    configure_gdal()
    crs = str(plan.grid.crs)
    footprints = {k: to_crs(v.footprint, crs) for k, v in plan.items.items()}
    log.info("interpret: %d of the run's scenes over the sample, %d dates", len(items), len(plan.groups))
    return Scenes(run, plan, {i.id: i for i in items}, tuple(mask.clear_scl), footprints)


def map_values(run: RunDir, rows: Sequence[int], cols: Sequence[int]) -> list[float | None]:
    """The target-class probability of the run's map at each pixel (None where unobserved)."""
    target = str(run.manifest["model"]["target_class"])
    path = run.path / "maps" / f"{target}_probability.tif"
    if not path.is_file():
        return [None] * len(rows)
    out: list[float | None] = []
    with rasterio.open(path) as src:
        for r, c in zip(rows, cols, strict=True):
            v = float(src.read(1, window=Window(int(c), int(r), 1, 1))[0, 0])
            out.append(round(v, 4) if np.isfinite(v) else None)
    return out
