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

pytestmark = pytest.mark.integration

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
