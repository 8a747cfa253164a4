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

from estimator.errors import EstimatorError
from estimator.regions.geometry import Region
from estimator.run.rundir import RunDir
from estimator.stats.target_design import (
    TargetStratum,
    allocation,
    anticipated_se_ha,
    draw_target_sample,
    fit_anticipation,
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
    # With the zero-cell floor that assess applies, Neyman is no longer best (the p = 0 stratum
    # is left too few units: here even proportional allocation beats it); the allocation the
    # design uses beats both at equal n.
    prop = np.array([43, 43, 84])
    assert anticipated_se_ha(strata, a) > anticipated_se_ha(strata, prop)
    assert anticipated_se_ha(strata, allocation(strata, 170, 30)) < anticipated_se_ha(strata, prop)


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
    # min_pixels=1: only empty bins merge (into their lower neighbour, the lowest into its upper one)
    strata = target_strata(run, bins=(0.01, 0.5), buffer_px=1, progress=False, min_pixels=1).strata
    got = {s.id: (s.pixels, round(s.p, 3)) for s in strata}
    # No decision figures in this run's manifest: the anticipated p is the mean probability
    # (at the histogram's resolution of 0.001).
    assert got == {
        "west|p0-0.5": (19 * 10 - 1 - 8, 0.004),
        "west|p0.5-1": (1, 0.899),
        "west|buffer": (8, 0.004),
        "east|p0-1": (19 * 10, 0.2),
    }
    assert sum(s.pixels for s in strata) == 19 * 20
    # the default minimum (10 pixels): the lone 0.9 pixel joins the bin below, and a buffer
    # of 8 pixels dissolves into its pixels' bins
    merged = {s.id: s.pixels for s in target_strata(run, bins=(0.01, 0.5), buffer_px=1, min_pixels=10).strata}
    assert merged == {"west|p0-1": 190, "east|p0-1": 190}




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
    labels = {s["stratum"] for s in sampling["strata"]}
    assert "buffer" in labels and any(x.startswith("p0-") for x in labels), labels
    # the demo model's card carries the out-of-fold decision figures: the probabilities are recalibrated
    assert {a["source"] for a in sampling["anticipation"].values()} <= {"out-of-fold decision figures", "out-of-fold decision figures, fitted on all cells together"}
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
    both = ["--n", "300", "--target-se-ha", "50"]
    assert main(["sample", str(run_copy), "--design", "target-area", *both, "--out", str(out), "--quiet"]) == 2
    assert main(["sample", str(run_copy), "--target-se-ha", "50", "--out", str(out), "--quiet"]) == 2
    # the Python API draws the same design as the command line (one implementation)
    import estimator

    api = estimator.sample(run_copy, design="target-area", target_se_ha=50, seed=0)
    cli = json.loads(out.read_text())  # the --target-se-ha 50 sample above (the failed calls wrote nothing)
    assert list(api["sample_id"]) == [f["properties"]["sample_id"] for f in cli["features"]]
    assert list(api["stratum"]) == [f["properties"]["stratum"] for f in cli["features"]]
    assert api.attrs["sampling"]["kind"] == "target-area" and api.attrs["sampling"]["target_se_ha"] == 50
    with pytest.raises(EstimatorError, match="design must be one of"):
        estimator.sample(run_copy, design="probability")  # type: ignore[arg-type]


def _tiny_run(tmp_path, prob: np.ndarray, codes: np.ndarray, card: dict | None = None) -> RunDir:
    """A one-region run on a hand-made class map and target probability map."""
    crs = "EPSG:32718"
    ny, nx = prob.shape
    tr = from_origin(500_000, 9_000_000 + 10 * ny, 10, 10)
    (tmp_path / "maps").mkdir(exist_ok=True)
    profile = {"driver": "GTiff", "width": nx, "height": ny, "count": 1, "crs": crs, "transform": tr}
    with rasterio.open(tmp_path / "maps/class.tif", "w", dtype="uint8", **profile) as dst:
        dst.write(codes, 1)
    with rasterio.open(tmp_path / "maps/coca_probability.tif", "w", dtype="float32", **profile) as dst:
        dst.write(prob.astype(np.float32), 1)
    from pyproj import Transformer

    t = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    x0, y0 = t.transform(500_000, 9_000_000)
    x1, y1 = t.transform(500_000 + 10 * nx, 9_000_000 + 10 * ny)
    regions = (Region("north", box(x0 - 1e-6, y0 - 1e-6, x1 + 1e-6, y1 + 1e-6)),)
    model = {"target_class": "coca", **({"decision": card} if card else {})}
    return RunDir(tmp_path, {"model": model}, regions, ("coca", "forest"), GeoBox((ny, nx), tr, crs), tmp_path / "maps/class.tif")


def test_a_bin_too_small_for_two_units_is_merged_into_its_neighbour(tmp_path):
    # The failure of hard seed 102: one pixel alone in a probability bin got one unit, and
    # `assess` (Stehman) refuses a stratum with pixels but fewer than two units.
    from estimator.stats.area import stehman

    prob = np.full((30, 30), 0.002)
    prob[10:20, 10:20] = 0.3
    prob[15, 15] = 0.6  # a lone pixel in its own bin
    codes = np.full((30, 30), 2, dtype=np.uint8)
    codes[prob >= 0.3] = 1
    run = _tiny_run(tmp_path, prob, codes)
    fc = draw_target_sample(run, n=60, min_per_stratum=5, seed=1)
    strata = fc["sampling"]["strata"]
    assert sum(s["pixels"] for s in strata) == 900
    assert all(s["pixels"] >= 5 and s["n"] >= 2 for s in strata), strata
    units = [(f["properties"]["stratum"], f["properties"]["map_class"], "coca" if f["properties"]["row"] in range(10, 20) and f["properties"]["col"] in range(10, 20) else "forest") for f in fc["features"]]
    r = stehman({s["id"]: s["pixels"] for s in strata}, units, pixel_area=0.01)
    assert np.isfinite(r.area).all() and np.isfinite(r.se_area).all()


def test_recalibration_meets_both_out_of_fold_figures():
    # A cell's probability histogram: 90 % of pixels near 0.2 (confusers), 10 % near 0.35;
    # the map marks the upper part as target. Out of fold: mapped/true 1.0, precision 0.6.
    H = 1000
    pixels = np.zeros(H)
    mapped = np.zeros(H)
    pixels[200] = 9000
    pixels[350] = 1000
    mapped[350] = 1000
    ant = fit_anticipation(pixels, mapped, mapped_over_true=1.0, precision=0.6)
    assert ant is not None and ant.b > 1  # steeper than the model's own probabilities
    centres = (np.arange(H) + 0.5) / H
    q = ant(centres)
    assert pixels @ q == pytest.approx(1000, rel=0.01)  # anticipated target = mapped / (mapped/true)
    assert (mapped @ q) / mapped.sum() == pytest.approx(0.6, abs=0.01)
    # no mapped target pixel: nothing to anchor on
    assert fit_anticipation(pixels, np.zeros(H), 1.0, 0.6) is None


def test_allocation_accounts_for_the_zero_cell_floor():
    # A huge stratum that anticipates almost no target: assess gives it the (x + 1) / (n + 2)
    # variance, about N^2 / n^2, which Neyman's N_h S_h ignores.
    strata = [_stratum(0, 60_000, 1e-5), _stratum(1, 10_000, 0.05), _stratum(2, 5_000, 0.4)]
    greedy = allocation(strata, 400, min_per_stratum=10)
    neyman = neyman_allocation(strata, 400, min_per_stratum=10)
    assert greedy.sum() == neyman.sum() == 400
    assert greedy[0] > neyman[0]
    assert anticipated_se_ha(strata, greedy) < 0.8 * anticipated_se_ha(strata, neyman)
    # greedy is optimal: moving one unit between any two strata does not lower the SE
    best = anticipated_se_ha(strata, greedy)
    for i in range(3):
        for j in range(3):
            if i != j and greedy[i] > 10:
                moved = greedy.copy()
                moved[i] -= 1
                moved[j] += 1
                assert anticipated_se_ha(strata, moved) >= best - 1e-9


@pytest.mark.parametrize("design", ["target-area", "class"])
def test_a_second_sample_never_lands_on_pixels_the_model_was_trained_on(tmp_path, design):
    # Round 2 of the cold start: the model was trained on round 1's units; `assess` refuses a
    # sample holding any of them, so the sampler takes the next units drawn instead.
    from estimator.stats.sample import draw_sample

    prob = np.full((30, 30), 0.002)
    prob[10:20, 10:20] = 0.3
    codes = np.full((30, 30), 2, dtype=np.uint8)
    codes[prob >= 0.3] = 1

    def draw(run):
        if design == "target-area":
            return draw_target_sample(run, n=90, min_per_stratum=5, seed=1)
        return draw_sample(run, n=90, min_per_stratum=5, seed=1)

    first = draw(_tiny_run(tmp_path, prob, codes))
    units = [[f["properties"]["sample_id"], *f["geometry"]["coordinates"]] for f in first["features"]]
    run = _tiny_run(tmp_path, prob, codes)
    run.manifest["model"]["reference_units"] = [{"batch": "b1", "source_file": "round1.geojson", "units": units}]
    second = draw(run)
    taken = {(f["properties"]["row"], f["properties"]["col"]) for f in first["features"]}
    again = [(f["properties"]["row"], f["properties"]["col"]) for f in second["features"]]
    assert second["sampling"]["excluded_trained"] > 0  # the plain draw would have met them
    assert not taken & set(again) and len(set(again)) == len(again)
    per_stratum = {s["id"]: s["n"] for s in second["sampling"]["strata"]}
    got: dict[str, int] = {}
    for f in second["features"]:
        got[f["properties"]["stratum"]] = got.get(f["properties"]["stratum"], 0) + 1
    assert got == {k: v for k, v in per_stratum.items() if v}  # every stratum keeps its allocation
