"""The minimum mapping unit across tile edges: a patch cut by a tile edge is judged whole,
in the estimates, the class map and the plots."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import yaml

from estimator.config import load_job
from estimator.demo.runner import demo_job
from estimator.run import tiles as tiles_mod
from estimator.run.pipeline import run
from estimator.run.tiles import Classified

TILE = 64
#: A 4 x 4 coca patch (16 px) on the edge between tiles r1c0 and r1c1: 8 px on each side,
#: under a unit of 0.1 ha (10 px of about 100 m^2) on each side, over it whole.
ROWS, COLS = slice(40, 44), slice(TILE - 2, TILE + 2)


def _painted(coca: int, other: int):
    """A classifier that reads no pixel: ``other`` everywhere, ``coca`` on the patch."""

    def classify(tile, plan, items, regions, model, estimator, clear_scl, exclude=(), read_clear_only=False):
        ny, nx = tile.geobox.shape.yx
        a, g = tile.geobox.affine, plan.grid.affine
        r0, c0 = int(round((a.f - g.f) / g.e)), int(round((a.c - g.c) / g.a))
        codes = np.full((ny, nx), other, np.uint8)
        on_grid = np.zeros(plan.grid.shape.yx, bool)
        on_grid[ROWS, COLS] = True
        patch = on_grid[r0 : r0 + ny, c0 : c0 + nx]
        codes[patch] = coca
        prob = np.where(patch, 0.9, 0.1).astype(np.float32)
        span = np.zeros((2, ny, nx), np.int16)
        return Classified(codes, prob, np.full((ny, nx), 3, np.int16), span, tile.groups[:1])

    return classify


@pytest.mark.integration
def test_a_patch_cut_by_a_tile_edge_is_judged_whole(small_world, served_world, trained_model, tmp_path, monkeypatch):
    data = demo_job(small_world, served_world.stac_url, trained_model.path, tmp_path / "run", tile_size=TILE)
    data["classify"] = {**data.get("classify", {}), "min_patch_ha": 0.1}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(data))
    job = load_job(tmp_path / "run.yaml")
    classes = trained_model.classes
    coca, forest = classes.index("coca") + 1, classes.index("forest") + 1
    monkeypatch.setattr(tiles_mod, "classify_tile", _painted(coca, forest))

    result = run(job, progress=False)

    d = result.run_dir
    with rasterio.open(d / "maps" / "class.tif") as src:
        cls = src.read(1)
    assert (cls == coca).sum() == 16 and (cls[ROWS, COLS] == coca).all()
    plots = gpd.read_parquet(d / "plots.geoparquet")
    assert len(plots) == 1 and not plots["below_mmu"].any()
    assert plots["n_pixels"].tolist() == [16]
    assert plots.geometry.iloc[0].geom_type == "Polygon"
    # the polygon covers the whole patch: 4 x 4 pixels of the grid
    assert plots.geometry.iloc[0].area == pytest.approx(16 * 10.0 * 10.0)
    # the estimates count the whole patch too (it lies inside a region)
    est = json.loads((d / "estimates.json").read_text())
    mapped = sum(r["mapped_area_ha"] for r in est["records"] if r["class"] == "coca")
    assert mapped == pytest.approx(plots["area_ha"].iloc[0], abs=1e-4)  # estimates are rounded
    assert result.manifest["plots"]["area_ha"] == pytest.approx(plots["area_ha"].iloc[0], abs=1e-4)


def test_a_tiles_window_holds_its_neighbours_edges_and_nothing_beyond_the_grid():
    from affine import Affine
    from odc.geo.geobox import GeoBox, GeoboxTiles

    from estimator.run.tiles import halo_window, tile_neighbours
    from estimator.stages.plan import Plan, Tile

    grid = GeoBox((10, 11), Affine(10, 0, 500_000, 0, -10, 9_000_000), "EPSG:32718")
    gbt = GeoboxTiles(grid, (4, 4))  # 3 x 3 tiles, the last row and column narrower
    tiles = tuple(Tile(f"r{r}c{c}", gbt[r, c], ()) for r in range(3) for c in range(3) if (r, c) != (2, 0))
    plan = Plan(grid=grid, tiles=tiles, items={}, groups=(), chunk_size=4)
    codes = np.random.default_rng(0).integers(1, 9, size=(10, 11)).astype(np.uint8)
    by_id = {t.id: t for t in tiles}

    def own(tid):
        a = by_id[tid].geobox.affine
        r0, c0 = int((a.f - grid.affine.f) / -10), int((a.c - grid.affine.c) / 10)
        ny, nx = by_id[tid].geobox.shape.yx
        return codes[r0 : r0 + ny, c0 : c0 + nx]

    near = tile_neighbours(plan)
    assert sorted(near["r1c1"]) == ["r0c0", "r0c1", "r0c2", "r1c0", "r1c2", "r2c1", "r2c2"]  # r2c0 is not planned
    assert sorted(near["r0c0"]) == ["r0c1", "r1c0", "r1c1"]
    win = halo_window(by_id["r1c1"], plan, own("r1c1"), [by_id[n] for n in near["r1c1"]], own, 2)
    expected = codes[2:10, 2:10].copy()
    expected[6:, :2] = 0  # the unplanned tile r2c0 counts as unobserved
    assert np.array_equal(win, expected)
    corner = halo_window(by_id["r0c0"], plan, own("r0c0"), [by_id[n] for n in near["r0c0"]], own, 2)
    assert np.array_equal(corner[2:, 2:], codes[0:6, 0:6]) and not corner[:2].any() and not corner[:, :2].any()
