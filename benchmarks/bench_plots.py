"""Plots stage cost: vectorizing N x N synthetic tiles of coca patches (default tile size).

    python benchmarks/bench_plots.py [--tiles 3] [--tile-size 2048] [--cover 0.02]

Prints seconds per tile, plots found, and the stage's peak memory beyond its inputs (tracemalloc;
tracing slows it), which should grow with the number of plots, not with the number of tiles.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Iterator

import numpy as np
from affine import Affine
from odc.geo.geobox import GeoBox
from scipy import ndimage

from estimator.grid import pixel_area_m2
from estimator.stages.classify import sieve_codes
from estimator.stages.plots import TileLayers, make_plots

GRID = Affine(10, 0, 500_000, 0, -10, 9_000_000)


def _tiles(n: int, size: int, cover: float, seed: int) -> Iterator[TileLayers]:
    rng = np.random.default_rng(seed)
    # Smooth noise thresholded at the cover quantile: blobs of a few hectares, and specks.
    noise = ndimage.gaussian_filter(rng.random((n * size, n * size), dtype=np.float32), 4)
    coca = noise > np.quantile(noise[::7, ::7], 1 - cover)
    codes = np.where(coca, 1, 2).astype(np.uint8)
    for r in range(n):
        for c in range(n):
            raw = codes[r * size : (r + 1) * size, c * size : (c + 1) * size]
            sieved, _ = sieve_codes(raw, 10)
            gb = GeoBox((size, size), GRID * Affine.translation(c * size, r * size), "EPSG:32718")
            yield TileLayers(
                row_off=r * size, col_off=c * size, target=sieved == 1, target_raw=raw == 1,
                prob=np.full((size, size), 0.8, np.float32),
                first_day=np.full((size, size), 19000, np.uint16), last_day=np.full((size, size), 19300, np.uint16),
                pixel_area=pixel_area_m2(gb), region_masks=np.ones((1, size, size), bool),
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tiles", type=int, default=3)
    ap.add_argument("--tile-size", type=int, default=2048)
    ap.add_argument("--cover", type=float, default=0.02)
    a = ap.parse_args()
    tiles = list(_tiles(a.tiles, a.tile_size, a.cover, 0))
    tracemalloc.start()
    t0 = time.perf_counter()
    plots = make_plots(iter(tiles), grid_affine=GRID, crs="EPSG:32718", region_ids=["R"], synthetic=True)
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    f = plots.frame
    print(
        f"{a.tiles}x{a.tiles} tiles of {a.tile_size} px: {dt:.2f} s ({dt / a.tiles**2:.2f} s/tile), "
        f"{int((~f['below_mmu']).sum())} plots ({f.loc[~f['below_mmu'], 'area_ha'].sum():.0f} ha), "
        f"{int(f['below_mmu'].sum())} below MMU; peak memory of the stage {peak:.0f} MB (inputs excluded)"
    )


if __name__ == "__main__":
    main()
