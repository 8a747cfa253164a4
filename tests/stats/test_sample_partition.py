"""Overlapping regions: strata on the partition of the overlaps, each region from its cells.

A tiny run directory made by code (class map GeoTIFF, nested regions), no demo world.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from odc.geo.geobox import GeoBox
from pyproj import Transformer
from shapely.geometry import Polygon, box

from estimator.regions.geometry import Region
from estimator.run.rundir import RunDir
from estimator.stats.area import olofsson
from estimator.stats.assess import ReferenceSample, _olofsson_by_region
from estimator.stats.sample import draw_sample, stratum_table

CRS = "EPSG:32718"
X0, Y0, RES, SIZE = 500_000.0, 8_600_000.0, 10.0, 120
CLASSES = ("coca", "forest", "pasture")


def _region(rid: str, c0: int, r0: int, c1: int, r1: int) -> Region:
    """A region covering pixel columns c0..c1-1 and rows r0..r1-1 (row 0 at the top)."""
    g = box(X0 + c0 * RES + 1, Y0 - r1 * RES + 1, X0 + c1 * RES - 1, Y0 - r0 * RES - 1)
    tr = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(*g.exterior.xy)
    return Region(rid, Polygon(zip(lon, lat, strict=True)))


def _run(tmp_path, regions: tuple[Region, ...], seed: int = 0) -> tuple[RunDir, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    codes = rng.choice([0, 1, 2, 3], size=(SIZE, SIZE), p=[0.05, 0.15, 0.55, 0.25]).astype(np.uint8)
    # reference: the map is right 85 % of the time, wrong classes uniformly
    truth = np.where(rng.random(codes.shape) < 0.85, codes, rng.integers(1, 4, codes.shape)).astype(np.uint8)
    grid = GeoBox.from_bbox((X0, Y0 - SIZE * RES, X0 + SIZE * RES, Y0), CRS, resolution=RES)
    path = tmp_path / "class.tif"
    profile = {"driver": "GTiff", "height": SIZE, "width": SIZE, "count": 1, "dtype": "uint8", "crs": CRS, "transform": grid.affine}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(codes, 1)
        dst.update_tags(classes=json.dumps(["none", *CLASSES]))
    return RunDir(tmp_path, {"synthetic": True}, regions, CLASSES, grid, path), codes, truth


NESTED = (
    _region("province", 0, 0, 80, 120),  # the left two thirds
    _region("district", 10, 10, 50, 60),  # inside the province
    _region("other", 90, 0, 120, 120),  # apart
)


def test_strata_partition_the_overlaps(tmp_path):
    run, codes, _ = _run(tmp_path, NESTED)
    strata, _ = stratum_table(run)
    cells = {s.region: s.regions for s in strata}
    assert cells == {"province+district": ("province", "district"), "province": ("province",), "other": ("other",)}
    px = {s.id: s.pixels for s in strata}
    # the cells' strata hold exactly the pixels of their part of the map
    assert px["province+district|coca"] == int((codes[10:60, 10:50] == 1).sum())
    assert px["province|coca"] == int((codes[:, :80] == 1).sum()) - px["province+district|coca"]
    assert px["other|forest"] == int((codes[:, 90:] == 2).sum())
    assert sum(px.values()) == int((codes[:, :80] > 0).sum() + (codes[:, 90:] > 0).sum())  # no pixel twice


def test_regions_that_do_not_overlap_keep_the_region_class_strata(tmp_path):
    run, _, _ = _run(tmp_path, (NESTED[0], NESTED[2]))
    fc = draw_sample(run, n=120, min_per_stratum=10, seed=1)
    ids = [s["id"] for s in fc["sampling"]["strata"]]
    assert ids == [f"{r}|{c}" for r in ("province", "other") for c in CLASSES]
    assert fc["sampling"]["design"].endswith("region x map class") and not fc["sampling"]["overlapping_regions"]


def _labeled(run: RunDir, truth: np.ndarray, n: int, seed: int) -> ReferenceSample:
    fc = draw_sample(run, n=n, min_per_stratum=20, seed=seed)
    units = [
        {**f["properties"], "reference": CLASSES[truth[f["properties"]["row"], f["properties"]["col"]] - 1]}
        for f in fc["features"]
    ]
    return ReferenceSample(units, fc["sampling"], {})


def test_nested_regions_are_estimated_from_their_cells(tmp_path):
    run, codes, truth = _run(tmp_path, NESTED)
    ref = _labeled(run, truth, 600, seed=2)
    assert ref.sampling["overlapping_regions"] and "cell of overlapping regions" in ref.sampling["design"]
    for u in ref.units:  # every unit lies in the regions its stratum names
        inside = {r.id for r, lo_c, hi_c, lo_r, hi_r in zip(NESTED, (0, 10, 90), (80, 50, 120), (0, 10, 0), (120, 60, 120), strict=True)
                  if lo_c <= u["col"] < hi_c and lo_r <= u["row"] < hi_r}
        assert inside == set(u["regions"])
    res = _olofsson_by_region(run, ref, 1.96, True)
    assert res["district"]["estimator"] == "stratified-olofsson2014" and res["other"]["estimator"] == "stratified-olofsson2014"
    assert res["province"]["estimator"] == "stehman2014"
    # the province is the district's cell plus the rest of the province: point estimates add up
    rest = [s for s in ref.sampling["strata"] if s["region"] == "province"]
    N = np.array([next((s["pixels"] for s in rest if s["map_class"] == c), 0) for c in CLASSES], dtype=float)
    counts = np.zeros((3, 3))
    for u in ref.units:
        if u["region"] == "province":
            counts[CLASSES.index(u["map_class"]), CLASSES.index(u["reference"])] += 1
    px_area = sum(s["area_ha"] for s in rest) / N.sum()
    rest_est = olofsson(N, counts, px_area)
    np.testing.assert_allclose(res["province"]["area_ha"], res["district"]["area_ha"] + rest_est.area_ha, rtol=1e-3)
    # the province's units are its cells' units, no other region's
    assert res["province"]["n"] == sum(u["region"] in ("province", "province+district") for u in ref.units)
    # and the interval covers the province's true coca area (fixed seed; 10 m pixels)
    true_ha = float((truth[:, :80][codes[:, :80] > 0] == 1).sum()) * px_area
    lo, hi = res["province"]["ci_low_ha"][0], res["province"]["ci_high_ha"][0]
    assert lo <= true_ha <= hi
    assert res["province"]["area_ha"][0] == pytest.approx(true_ha, rel=0.25)


@pytest.mark.parametrize("n_regions", [3, 25, 70])  # counted, sorted, and region sets as bytes
def test_cells_are_the_same_whichever_way_they_are_found(n_regions, monkeypatch):
    from types import SimpleNamespace

    from estimator.stats import sample

    rng = np.random.default_rng(n_regions)
    regions = np.zeros((n_regions, 30, 40), dtype=bool)
    for r in range(n_regions):  # overlapping rectangles
        r0, c0 = rng.integers(0, 20), rng.integers(0, 30)
        regions[r, r0 : r0 + rng.integers(3, 10), c0 : c0 + rng.integers(3, 10)] = True
    codes = rng.integers(0, 4, (30, 40)).astype(np.uint8)
    run = SimpleNamespace(classes=CLASSES, regions=tuple(SimpleNamespace(id=f"r{i}") for i in range(n_regions)))
    cells: dict = {}
    got = sample._block_strata(run, codes, regions, cells, grow=True)
    # expected: one cell per distinct set of regions, in order of first appearance by key
    sets = {tuple(np.flatnonzero(regions[:, y, x])) for y in range(30) for x in range(40) if regions[:, y, x].any() and codes[y, x]}
    assert {sample._cell_regions(run, key) for key in cells} == {tuple(f"r{i}" for i in s) for s in sets}
    for y, x in [(y, x) for y in range(30) for x in range(40)][::7]:
        if not regions[:, y, x].any() or codes[y, x] == 0:
            assert got[y, x] == -1
            continue
        key = next(k for k in cells if sample._cell_regions(run, k) == tuple(f"r{i}" for i in np.flatnonzero(regions[:, y, x])))
        assert got[y, x] == cells[key] * len(CLASSES) + int(codes[y, x]) - 1
    with pytest.raises(sample.EstimatorError, match="changed between the two passes"):
        sample._block_strata(run, codes, regions, {}, grow=False)


def test_region_ids_with_plus_that_make_cells_ambiguous_are_refused(tmp_path):
    from estimator.errors import EstimatorError

    regions = (_region("a", 0, 0, 30, 30), _region("b", 20, 0, 50, 30), _region("a+b", 60, 0, 90, 30))
    run, _, _ = _run(tmp_path, regions)
    with pytest.raises(EstimatorError, match="contain '\\+'"):
        stratum_table(run)
