"""Load stage: the only module that reads pixels.

``load_tile`` builds a lazy, dask-chunked stack for one output tile with odc-stac, applies
each item's scale/offset (odc-stac does not), and marks nodata as NaN. Reading happens when
the caller computes. ``find_unreadable`` probes the assets of a tile whose read failed, so
the pipeline can drop the broken items and count the pixels they would have covered as
failed reads instead of letting odc-stac fill them with zeros.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import odc.stac
import pystac
import rasterio
import xarray as xr
from dask.highlevelgraph import HighLevelGraph
from rasterio.errors import RasterioError

from estimator.bands import REFLECTANCE_BANDS
from estimator.stages.costs import ReadCost
from estimator.stages.plan import Plan, Tile
from estimator.stages.providers import get_provider, url_patcher

__all__ = [
    "GDAL_CACHE_BYTES",
    "GDAL_HTTP_OPTIONS",
    "TileStack",
    "configure_gdal",
    "find_unreadable",
    "keep_blocks",
    "load_scl",
    "load_tile",
    "measure_read",
    "to_reflectance",
]

log = logging.getLogger(__name__)

#: GDAL defaults are no HTTP timeout, no retry, and a 30 s delay once retries are on; and
#: without EMPTY_DIR every open lists the "directory" with about 11 extra requests.
GDAL_HTTP_OPTIONS: dict[str, str] = {
    "GDAL_HTTP_TIMEOUT": "30",
    "GDAL_HTTP_CONNECTTIMEOUT": "10",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "0.5",
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF",
}


@functools.cache
def _libgdal() -> ctypes.CDLL | None:
    # rasterio does not expose VSICurlClearCache; call it from the libgdal rasterio loaded
    # (the wheel's bundled copy, else the system's).
    bundled = sorted((Path(rasterio.__file__).resolve().parent.parent / "rasterio.libs").glob("libgdal*.so*"))
    candidates = [str(p) for p in bundled] + [ctypes.util.find_library("gdal") or ""]
    for path in candidates:
        if path:
            try:
                return ctypes.CDLL(path)
            except OSError:
                continue
    return None


def clear_http_cache() -> bool:
    """Forget what GDAL cached of remote files in this process, including ranges that
    arrived cut short and files that failed: without this, a retry in the same process
    replays the failure instead of reading again. Returns False if GDAL was not found."""
    lib = _libgdal()
    if lib is None:
        return False
    lib.VSICurlClearCache()
    return True


#: GDAL's raster block cache, in bytes (rasterio takes an integer). GDAL's default is 5 % of
#: the machine's RAM per process (1.2 GiB on 24 GiB), filled by whatever dataset is open:
#: writing the run's maps could hold that much. A job reads each COG block about once, so
#: a small cache costs no reads (a 16-tile job's worker peaked at 2.02 GiB with it, 2.16
#: without).
GDAL_CACHE_BYTES = 256 * 2**20


def configure_gdal() -> None:
    """Install :data:`GDAL_HTTP_OPTIONS` and the block cache size for odc-stac; captured into
    every read task (on workers too)."""
    odc.stac.configure_rio(cloud_defaults=False, GDAL_CACHEMAX=GDAL_CACHE_BYTES, **GDAL_HTTP_OPTIONS)  # type: ignore[arg-type]


def to_reflectance(dn: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Numpy kernel: ``(band, time, ...)`` digital numbers to float32 surface reflectance,
    ``dn * scale + offset`` per band and time slice, NaN where the source had no data (0).

    One float32 array is allocated and scaled in place (a 1024 px chunk of 6 dates is
    240 MB; chained expressions would hold two or three such arrays at once).
    """
    extra = (1,) * (dn.ndim - 2)
    out = dn.astype(np.float32)
    out *= scale.reshape(scale.shape + extra)
    out += offset.reshape(offset.shape + extra)
    out[dn == 0] = np.nan
    return out


@dataclass(frozen=True)
class TileStack:
    """Lazy pixel stack of one tile, as read: digital numbers and their scaling."""

    dn: xr.DataArray
    """``(band, time, y, x)`` digital numbers as stored (uint16 for Sentinel-2 L2A), 0 where
    the source had no data; one chunk over bands and dates per ``plan.chunk_size`` pixels."""
    scale: np.ndarray
    """``(band, time)`` float32: reflectance = dn * scale + offset."""
    offset: np.ndarray
    """``(band, time)`` float32."""
    scl: xr.DataArray
    """``(time, y, x)`` uint8 scene classification, 0 where no data."""
    groups: tuple[tuple[str, ...], ...]
    """Item ids per time slice, as loaded (broken items removed)."""

    @property
    def reflectance(self) -> xr.DataArray:
        """``(band, time, y, x)`` float32 surface reflectance, NaN where the source had no
        data (lazy; the job masks and scales in one step instead, see ``estimator.stages.mask``)."""
        data = self.dn.data.map_blocks(to_reflectance, scale=self.scale, offset=self.offset, dtype=np.float32)
        return xr.DataArray(data, coords=self.dn.coords, dims=self.dn.dims)


def keep_blocks(a: da.Array, keep: np.ndarray) -> da.Array:
    """``a`` with the blocks where ``keep`` (one bool per block) is False replaced by zeros,
    the value odc-stac gives "no data". Their tasks, the reads, drop out of the graph.

    Written as a graph of aliases because dask has no "some blocks of this array" operation:
    ``da.where`` would still read every block, and ``da.block`` over ``a.blocks[...]`` builds
    one graph layer per block.
    """
    if keep.shape != a.numblocks:
        raise ValueError(f"keep has shape {keep.shape}, the array has {a.numblocks} blocks")
    if keep.all():
        return a
    name = "keep-" + da.core.tokenize(a.name, keep)
    dsk: dict[Any, Any] = {}
    for idx in np.ndindex(*a.numblocks):
        if keep[idx]:
            dsk[(name, *idx)] = (a.name, *idx)
        else:
            shape = tuple(a.chunks[d][i] for d, i in enumerate(idx))
            dsk[(name, *idx)] = (functools.partial(np.zeros, shape, a.dtype),)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[a])  # type: ignore[list-item]  # dask stubs
    return da.Array(graph, name, a.chunks, dtype=a.dtype)


def _slices(tile: Tile, exclude: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    skip = set(exclude)
    return tuple(g2 for g2 in (tuple(i for i in g if i not in skip) for g in tile.groups) if g2)


def _open(tile: Tile, plan: Plan, items: Mapping[str, pystac.Item], groups: tuple[tuple[str, ...], ...], bands: Sequence[str]) -> xr.Dataset:
    """The lazy odc-stac dataset of ``bands``: one block per band, time slice and chunk."""
    slice_of = {iid: t for t, g in enumerate(groups) for iid in g}
    ordered = [items[iid] for g in groups for iid in g]
    c = plan.chunk_size
    return odc.stac.load(
        ordered,
        bands=list(bands),
        geobox=tile.geobox,
        chunks={"x": c, "y": c},
        # Time slices were decided by the plan (same solar day and scaling); items of a
        # slice are fused first-valid-wins by odc-stac.
        groupby=lambda item, parsed, idx: slice_of[item.id],
        resampling={"scl": "nearest", "*": "bilinear"},
        fail_on_error=True,
        # Signed here, per tile, just before its reads (Planetary Computer SAS tokens expire).
        patch_url=url_patcher(get_provider(plan.provider)),
    )


def load_scl(
    tile: Tile, plan: Plan, items: Mapping[str, pystac.Item], *, exclude: Sequence[str] = (), keep_yx: np.ndarray | None = None
) -> xr.DataArray | None:
    """Lazy ``(time, y, x)`` uint8 scene classification of ``tile``, one block per time slice
    and chunk (the same values :func:`load_tile` gives); chunks where ``keep_yx``
    (``(chunk row, chunk column)`` bool) is False are never read and hold 0 (no data).
    ``None`` when no item touches the tile."""
    groups = _slices(tile, exclude)
    if not groups:
        return None
    scl = _open(tile, plan, items, groups, ["scl"])["scl"]
    if keep_yx is not None:
        keep = np.broadcast_to(keep_yx, (scl.data.numblocks[0], *keep_yx.shape))
        scl = scl.copy(data=keep_blocks(scl.data, keep))
    return scl


def load_tile(
    tile: Tile,
    plan: Plan,
    items: Mapping[str, pystac.Item],
    *,
    exclude: Sequence[str] = (),
    keep: np.ndarray | None = None,
) -> TileStack | None:
    """Lazily load ``tile``; ``None`` when no item touches it.

    Items listed in ``exclude`` (found unreadable) are left out; a slice left empty is dropped.
    ``keep`` (``(time slice, chunk row, chunk column)`` bool, over the slices left after
    ``exclude``) reads only those blocks, bands and SCL; the others hold 0, which every
    later stage takes for "no data" (not clear).
    """
    groups = _slices(tile, exclude)
    if not groups:
        return None
    ds = _open(tile, plan, items, groups, [*REFLECTANCE_BANDS, "scl"])
    if keep is not None:
        for b in ds.data_vars:
            ds[b] = ds[b].copy(data=keep_blocks(ds[b].data, keep))
    # Per slice and band (scale, offset): all items of a slice share it by construction.
    scaling = np.array([plan.items[g[0]].scaling for g in groups], dtype=np.float64)  # (time, band, 2)
    dn = xr.concat([ds[b] for b in REFLECTANCE_BANDS], dim="band").assign_coords(band=list(REFLECTANCE_BANDS))
    # Chunks join all bands and dates as digital numbers (2 bytes per value, not 4).
    dn = dn.transpose("band", "time", "y", "x").chunk({"band": -1, "time": -1})
    scl = ds["scl"].astype(np.uint8).chunk({"time": -1})
    return TileStack(
        dn=dn,
        scale=np.ascontiguousarray(scaling[:, :, 0].T, dtype=np.float32),
        offset=np.ascontiguousarray(scaling[:, :, 1].T, dtype=np.float32),
        scl=scl,
        groups=groups,
    )


def find_unreadable(item_ids: Sequence[str], items: Mapping[str, pystac.Item]) -> list[str]:
    """Items with at least one asset that cannot be opened and read (a small window)."""
    bad: list[str] = []
    with rasterio.Env(**GDAL_HTTP_OPTIONS):
        for iid in item_ids:
            for band in (*REFLECTANCE_BANDS, "scl"):
                href = items[iid].assets[band].href
                try:
                    with rasterio.open(href) as src:
                        src.read(1, window=((0, 1), (0, 1)))
                        if src.overviews(1):
                            src.read(1, out_shape=(1, 1))
                except RasterioError as e:
                    log.warning("unreadable asset %s of %s: %s", band, iid, str(e).splitlines()[0][:200])
                    bad.append(iid)
                    break
    return bad


def measure_read(plan: Plan, items: Mapping[str, pystac.Item], *, slices: int = 3) -> ReadCost:
    """Time the job's own read: the first chunk of the tile with the most dates, all
    reflectance bands and SCL of its first ``slices`` time slices (the other scenes left
    out), through the load stage on this thread.

    Wall time, not CPU time: a read waits on the network and then decompresses, and a core
    of the job pays both. The read opens the scenes (their headers), as every tile of the
    job does. Raises what the read raises (the caller falls back to the constant).
    """
    tile = max(plan.tiles, key=lambda t: len(t.groups))
    later = [iid for g in tile.groups[slices:] for iid in g]
    stack = load_tile(tile, plan, items, exclude=later)
    if stack is None:
        raise ValueError(f"no scene touches tile {tile.id}")
    c = plan.chunk_size
    configure_gdal()
    dn = stack.dn.isel(y=slice(0, c), x=slice(0, c))
    scl = stack.scl.isel(y=slice(0, c), x=slice(0, c))
    start = time.perf_counter()
    dask.compute(dn.data.sum(dtype=np.int64), scl.data.sum(dtype=np.int64), scheduler="synchronous")
    elapsed = max(time.perf_counter() - start, 1e-6)
    n = dn.sizes["time"]
    rate = dn.sizes["y"] * dn.sizes["x"] * n / elapsed / 1e6
    return ReadCost(
        rate,
        f"timed while planning: {n} date(s) of one {c} px chunk of tile {tile.id} read from the job's "
        f"scenes in {elapsed:.1f} s, one thread, {rate:.3g} Mpix x dates/s",
        measured=True,
    )
