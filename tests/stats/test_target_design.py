"""The target-area sample design: strata from the target probability map, Neyman
allocation, and sample + assess end to end on the small demo run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.transform import from_origin
from shapely.geometry import box

from estimator.regions.geometry import Region
from estimator.run.rundir import RunDir
from estimator.stats.target_design import (
    TargetStratum,
    anticipated_se_ha,
    neyman_allocation,
    size_for_target_se,
    target_strata,
)


def _stratum(i: int, pixels: int, p: float) -> TargetStratum:
    return TargetStratum(f"r|s{i}", f"s{i}", "r", ("r",), pixels, pixels * 0.01, p)


def test_neyman_allocation_known_answer():
    # N_h S_h = 1000*0.3, 1000*0.4, 2000*0.0 -> 300 : 400 : 0; the empty-probability stratum gets the minimum.
    strata = [_stratum(0, 1000, 0.1), _stratum(1, 1000, 0.2), _stratum(2, 2000, 0.0)]
    a = neyman_allocation(strata, 170, min_per_stratum=30)
    assert a.tolist() == [60, 80, 30]
    # Neyman beats proportional allocation at equal n on the anticipated SE
    prop = np.array([43, 43, 84])
    assert anticipated_se_ha(strata, a) < anticipated_se_ha(strata, prop)


def test_sample_size_for_a_target_standard_error_is_the_smallest_that_reaches_it():
    strata = [_stratum(0, 100_000, 0.01), _stratum(1, 5_000, 0.3), _stratum(2, 500, 0.8)]
    n = size_for_target_se(strata, ["r"], 5.0, min_per_stratum=5)
    assert anticipated_se_ha(strata, neyman_allocation(strata, n, 5), "r") <= 5.0
    assert anticipated_se_ha(strata, neyman_allocation(strata, n - 1, 5), "r") > 5.0


def test_strata_are_probability_bins_and_a_buffer_in_each_region(tmp_path):
    # Two regions side by side (west, east) on a 20 x 20 grid; one mapped coca pixel in the west.
    crs = "EPSG:32718"
    tr = from_origin(500_000, 9_000_200, 10, 10)
    codes = np.full((20, 20), 2, dtype=np.uint8)  # "forest"
    codes[5, 5] = 1  # "coca"
    codes[0, :] = 0  # unobserved row
    prob = np.full((20, 20), 0.005, dtype=np.float32)
    prob[:, 10:] = 0.2
    prob[5, 5] = 0.9
    (tmp_path / "maps").mkdir()
    profile = {"driver": "GTiff", "width": 20, "height": 20, "count": 1, "crs": crs, "transform": tr}
    with rasterio.open(tmp_path / "maps/class.tif", "w", dtype="uint8", **profile) as dst:
        dst.write(codes, 1)
    with rasterio.open(tmp_path / "maps/coca_probability.tif", "w", dtype="float32", **profile) as dst:
        dst.write(prob, 1)
    grid = GeoBox((20, 20), tr, crs)
    from pyproj import Transformer

    t = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    x0, y1 = t.transform(500_000, 9_000_200)
    xm, _ = t.transform(500_100, 9_000_000)
    x1, y0 = t.transform(500_200, 9_000_000)
    regions = (Region("west", box(x0 - 1e-6, y0, xm, y1)), Region("east", box(xm, y0, x1 + 1e-6, y1)))
    run = RunDir(tmp_path, {"model": {"target_class": "coca"}}, regions, ("coca", "forest"), grid, tmp_path / "maps/class.tif")
    strata, _, _ = target_strata(run, bins=(0.01, 0.5), buffer_px=1, progress=False)
    got = {s.id: (s.pixels, round(s.p, 4)) for s in strata}
    assert got == {
        "west|p0-0.01": (19 * 10 - 1 - 8, 0.005),
        "west|p0.5-1": (1, 0.9),
        "west|buffer": (8, 0.005),
        "east|p0.01-0.5": (19 * 10, 0.2),
    }
    assert sum(s.pixels for s in strata) == 19 * 20




@pytest.mark.integration
def test_target_area_sample_and_assess_end_to_end(run_copy, small_world, tmp_path):
    from estimator.cli.main import main
    from estimator.demo.oracle import label_with_truth
    from estimator.location import write_json

    out = tmp_path / "s.geojson"
    assert main(["sample", str(run_copy), "--design", "target-area", "--n", "300", "--seed", "2", "--out", str(out), "--quiet"]) == 0
    fc = json.loads(out.read_text())
    sampling = fc["sampling"]
    assert sampling["kind"] == "target-area" and len(fc["features"]) == 300
    assert {s["stratum"] for s in sampling["strata"]} >= {"buffer", "p0-0.01"}
    for s in sampling["strata"]:
        assert sum(f["properties"]["stratum"] == s["id"] for f in fc["features"]) == s["n"] >= min(10, s["pixels"])
    write_json(tmp_path / "lab.geojson", label_with_truth(fc, small_world, seed=2))
    assert main(["assess", str(run_copy), "--reference", str(tmp_path / "lab.geojson")]) == 0
    truth = {rid: r["area_ha"] for rid, r in json.loads(small_world.truth_path.read_text())["regions"].items()}
    recs = [r for r in json.loads((run_copy / "estimates.json").read_text())["records"] if r["class"] == "coca"]
    assert recs and all(r["estimator"] == "stehman2014" for r in recs)
    for r in recs:
        assert r["ci95_low_ha"] <= truth[r["region"]]["coca"] <= r["ci95_high_ha"], r
    # --target-se-ha picks n; both or neither of --n / --target-se-ha is a clear error
    assert main(["sample", str(run_copy), "--design", "target-area", "--target-se-ha", "50", "--out", str(out), "--quiet"]) == 0
    assert json.loads(out.read_text())["sampling"]["target_se_ha"] == 50
    assert main(["sample", str(run_copy), "--design", "target-area", "--out", str(out), "--quiet"]) == 2
