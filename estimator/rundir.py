"""A finished run directory, read back: manifest, regions, classes, grid and the class map.

Sampling and assessment work on a run after the fact; this module is the one place that
knows the run layout, and streams the class map block by block so memory stays bounded
whatever the region size.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.windows import Window

from .config import RegionsConfig
from .errors import EstimatorError
from .grid import pixel_area_m2
from .regions import Region, job_regions, rasterize_regions
from .store import as_output, is_url

__all__ = ["Block", "RunDir", "open_run"]

_BLOCK = 2048


@dataclass(frozen=True)
class Block:
    """One window of the class map with what sampling and assessment need."""

    row_off: int
    col_off: int
    codes: np.ndarray
    """Class codes (0 = unobserved, else 1 + index into ``RunDir.classes``)."""
    regions: np.ndarray
    """``(n_regions, h, w)`` region masks (pixel-centre rule)."""
    pixel_area_m2: np.ndarray


@dataclass(frozen=True)
class RunDir:
    """A run directory written by ``estimator run``."""

    path: Path
    manifest: dict[str, Any]
    regions: tuple[Region, ...]
    classes: tuple[str, ...]
    grid: GeoBox
    class_map: Path

    @property
    def synthetic(self) -> bool:
        return bool(self.manifest.get("synthetic"))

    def class_map_sha256(self) -> str:
        h = hashlib.sha256()
        with open(self.class_map, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    def blocks(self, block: int = _BLOCK) -> Iterator[Block]:
        """Windows of the class map in a fixed (row-major) order."""
        ny, nx = self.grid.shape.yx
        with rasterio.open(self.class_map) as src:
            for r0 in range(0, ny, block):
                for c0 in range(0, nx, block):
                    h, w = min(block, ny - r0), min(block, nx - c0)
                    codes = src.read(1, window=Window(c0, r0, w, h))
                    gb = self.grid[r0 : r0 + h, c0 : c0 + w]
                    yield Block(r0, c0, codes, rasterize_regions(self.regions, gb), pixel_area_m2(gb))

    def pixel_xy(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid-CRS coordinates of pixel centres."""
        a = self.grid.affine
        return a.c + a.a * (cols + 0.5) + a.b * (rows + 0.5), a.f + a.d * (cols + 0.5) + a.e * (rows + 0.5)


def open_run(path: Path | str) -> RunDir:
    """Open a local run directory; a clear error when it is not one.

    Runs written to a remote output (``s3://...``) are read from a local copy: the class
    map is read many times, window by window.
    """
    if is_url(path) and not Path(path).exists():
        url = as_output(path)
        if not isinstance(url, Path):
            raise EstimatorError(
                f"{url} is a remote run; copy it to a local directory first "
                f"(e.g. `aws s3 cp --recursive {url} ./run --exclude 'tiles/*'`) and pass that directory"
            )
        path = url
    path = Path(path)
    mpath, cmap = path / "manifest.json", path / "maps" / "class.tif"
    if not mpath.is_file() or not cmap.is_file():
        raise EstimatorError(f"{path} is not a finished run directory (needs manifest.json and maps/class.tif); run `estimator run` first")
    manifest = json.loads(mpath.read_text())
    cfg = manifest["config"]
    regions = job_regions(RegionsConfig.model_validate(cfg["regions"]))
    with rasterio.open(cmap) as src:
        grid = GeoBox((src.height, src.width), src.transform, src.crs)
        classes = tuple(json.loads(src.tags()["classes"])[1:])
    if list(classes) != manifest["model"]["classes"]:
        raise EstimatorError(f"{cmap} does not match the run's manifest (classes differ); rerun the job")
    return RunDir(path, manifest, regions, classes, grid, cmap)
