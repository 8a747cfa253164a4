"""The read-retry policy: a tile whose read fails is read once more with GDAL's caches
cleared, then without the scenes that stay unreadable (counted as failed reads, never zeros)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import pystac
from rasterio.errors import RasterioError

from estimator.stages.load import clear_http_cache, find_unreadable
from estimator.stages.plan import Tile

__all__ = ["CLUSTER_ERRORS", "clear_http_caches", "is_read_error", "read_robust"]

_T = TypeVar("_T")

log = logging.getLogger(__name__)


#: Cluster trouble is not a read failure: it must stop the job (a rerun resumes), not be
#: recorded as missing pixels.
CLUSTER_ERRORS = ("CommClosedError", "KilledWorker", "TimeoutError", "CancelledError", "FutureCancelledError")


def is_read_error(e: BaseException) -> bool:
    if type(e).__name__ in CLUSTER_ERRORS:
        return False
    # Under dask.distributed a RasterioIOError can arrive re-raised as a plain Exception.
    return isinstance(e, (RasterioError, OSError)) or "Rasterio" in type(e).__name__ or "RasterioIOError" in repr(e)


def clear_http_caches() -> None:
    clear_http_cache()
    try:
        from distributed import get_client

        get_client().run(clear_http_cache)
    except (ImportError, ValueError):
        pass


def read_robust(
    tile: Tile, items: Mapping[str, pystac.Item], attempt: Callable[[Sequence[str]], _T]
) -> tuple[_T | None, list[str], str]:
    """``attempt(exclude)`` (which reads the tile's scenes, leaving out ``exclude``), with
    unreadable items isolated and dropped. Returns (result, failed items, error)."""
    first = ""
    for n in range(2):
        try:
            return attempt(()), [], ""
        except Exception as e:
            if not is_read_error(e):
                raise
            first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            # GDAL does not retry a body cut short, and caches the short range and failed
            # files in-process: clear that (on every worker) and read the tile once more.
            if n == 0:
                log.warning("tile %s: read failed (%s); clearing GDAL's HTTP cache and retrying once", tile.id, first)
                clear_http_caches()
    tile_items = [i for g in tile.groups for i in g]
    bad = find_unreadable(tile_items, items)
    if not bad:
        return None, tile_items, f"read failed and could not be isolated to an item: {first}"
    try:
        return attempt(bad), bad, ""
    except Exception as e:
        if not is_read_error(e):
            raise
        return None, tile_items, f"read failed after dropping {len(bad)} unreadable item(s): {str(e)[:200]}"
