"""Reference sampling and error-adjusted areas on a real (small, demo) run directory."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from estimator.demo.oracle import label_with_truth
from estimator.errors import AreaSampleError, EstimatorError, ReferenceSampleError
from estimator.location import write_json
from estimator.run.rundir import open_run
from estimator.stages.estimate import apply_coverage
from estimator.stats.assess import assess_run
from estimator.stats.sample import draw_sample

pytestmark = pytest.mark.integration


def _truth(world):
    return {rid: r["area_ha"] for rid, r in json.loads(world.truth_path.read_text())["regions"].items()}


def test_sample_is_reproducible_and_stratified(run_copy):
    run = open_run(run_copy)
    a = draw_sample(run, n=400, min_per_stratum=10, seed=3)
    b = draw_sample(run, n=400, min_per_stratum=10, seed=3)
    c = draw_sample(run, n=400, min_per_stratum=10, seed=4)
    assert [f["properties"] for f in a["features"]] == [f["properties"] for f in b["features"]]
    assert [f["properties"]["row"] for f in a["features"]] != [f["properties"]["row"] for f in c["features"]]
    strata = a["sampling"]["strata"]
    assert sum(s["n"] for s in strata) == len(a["features"]) == 400
    for s in strata:
        assert s["n"] >= min(10, s["pixels"])
        assert sum(f["properties"]["stratum"] == s["id"] for f in a["features"]) == s["n"]
    # strata partition the observed pixels of the regions, and their true areas add up
    est = {(r["region"], r["class"]): r for r in json.loads((run_copy / "estimates.json").read_text())["records"]}
    for s in strata:
        assert s["area_ha"] == pytest.approx(est[(s["region"], s["map_class"])]["mapped_area_ha"], rel=1e-6, abs=1e-3)
    with rasterio.open(run_copy / "maps/class.tif") as src:
        codes = src.read(1)
    for f in a["features"]:
        p = f["properties"]
        assert run.classes[codes[p["row"], p["col"]] - 1] == p["map_class"]
        assert p["interpreter_1"] is None and p["consensus"] is None
    assert len({(f["properties"]["row"], f["properties"]["col"]) for f in a["features"]}) == 400  # no repeats


def test_sample_size_from_target_standard_error(run_copy):
    run = open_run(run_copy)
    loose = draw_sample(run, target_se=0.02, min_per_stratum=2)
    tight = draw_sample(run, target_se=0.01, min_per_stratum=2)
    assert len(tight["features"]) > 3 * len(loose["features"])


def test_assess_with_oracle_labels_covers_the_truth(run_copy, small_world):
    run = open_run(run_copy)
    sample = label_with_truth(draw_sample(run, n=900, min_per_stratum=20, seed=1), small_world, seed=1)
    write_json(run_copy.parent / "lab.geojson", sample)
    out = assess_run(run_copy, run_copy.parent / "lab.geojson")
    truth = _truth(small_world)
    for r in out["records"]:
        assert r["estimator"] == "stratified-olofsson2014"
        assert r["ci95_low_ha"] <= r["area_ha"] <= r["ci95_high_ha"]
        assert r["coverage_policy"] == "withheld" and r["extrapolated_area_ha"] is None
    coca = [r for r in out["records"] if r["class"] == "coca"]
    for r in coca:
        assert r["ci95_low_ha"] <= truth[r["region"]]["coca"] <= r["ci95_high_ha"], r
    # the class areas of a region still add up to its observed area
    for rid in truth:
        recs = [r for r in out["records"] if r["region"] == rid]
        assert sum(r["area_ha"] for r in recs) == pytest.approx(recs[0]["observed_area_ha"], rel=1e-3)
    a = json.loads((run_copy / "assessment.json").read_text())
    assert a["interpreters"]["agreement_rate"] < 1.0 and a["interpreters"]["disagreements"]
    saved = json.loads((run_copy / "estimates.json").read_text())["records"]
    assert saved == out["records"]
    report = (run_copy / "report.md").read_text()
    assert "Accuracy (reference sample)" in report and "agreement" in report


def test_class_only_strata_use_stehman_domains(run_copy, small_world):
    run = open_run(run_copy)
    sample = label_with_truth(draw_sample(run, n=600, min_per_stratum=20, by_region=False, seed=2), small_world, seed=2)
    write_json(run_copy.parent / "lab.geojson", sample)
    out = assess_run(run_copy, run_copy.parent / "lab.geojson")
    assert {r["estimator"] for r in out["records"]} == {"stehman2014"}
    truth = _truth(small_world)
    total_est = sum(r["area_ha"] for r in out["records"] if r["class"] == "coca")
    total_true = sum(t["coca"] for t in truth.values())
    assert total_est == pytest.approx(total_true, rel=0.3)


def _labeled(run_copy, small_world, **kw):
    run = open_run(run_copy)
    return label_with_truth(draw_sample(run, n=300, min_per_stratum=5, seed=0, **kw), small_world, seed=0)


@pytest.mark.parametrize(
    ("damage", "error", "match"),
    [
        (lambda fc: fc["features"][0]["properties"].update(consensus="cocaa"), ReferenceSampleError, "not classes of this run"),
        (lambda fc: fc["features"][1]["properties"].update(interpreter_1=None, interpreter_2=None, consensus=None), ReferenceSampleError, "no label"),
        (lambda fc: fc["features"][2]["properties"].update(interpreter_1="coca", interpreter_2="forest", consensus=None), ReferenceSampleError, "disagree without a consensus"),
        (lambda fc: fc["features"][3]["geometry"].update(coordinates=[0.0, 0.0]), ReferenceSampleError, "outside this run's map"),
        (lambda fc: fc["sampling"].update(class_map_sha256="0" * 64), ReferenceSampleError, "another class map"),
        (lambda fc: fc.pop("sampling"), ReferenceSampleError, "no 'sampling' design"),
    ],
)
def test_bad_reference_samples_are_clear_errors(run_copy, small_world, damage, error, match):
    fc = _labeled(run_copy, small_world)
    damage(fc)
    write_json(run_copy.parent / "bad.geojson", fc)
    before = (run_copy / "estimates.json").read_bytes()
    with pytest.raises(error, match=match) as e:
        assess_run(run_copy, run_copy.parent / "bad.geojson")
    assert "\n" not in str(e.value)
    assert (run_copy / "estimates.json").read_bytes() == before  # nothing half-updated


def test_a_stratum_with_one_unit_is_an_error_not_nan(run_copy, small_world):
    fc = _labeled(run_copy, small_world)
    big = max(fc["sampling"]["strata"], key=lambda s: s["pixels"])
    keep_one = [f for f in fc["features"] if f["properties"]["stratum"] == big["id"]][:1]
    fc["features"] = [f for f in fc["features"] if f["properties"]["stratum"] != big["id"]] + keep_one
    write_json(run_copy.parent / "one.geojson", fc)
    with pytest.raises(ReferenceSampleError, match="single sample unit"):
        assess_run(run_copy, run_copy.parent / "one.geojson")
    assert issubclass(AreaSampleError, EstimatorError)


def test_zero_cell_adjustment_widens_only_degenerate_intervals(run_copy, small_world):
    fc = _labeled(run_copy, small_world)
    write_json(run_copy.parent / "lab.geojson", fc)
    adj = {(r["region"], r["class"]): r for r in assess_run(run_copy, run_copy.parent / "lab.geojson")["records"]}
    raw = {(r["region"], r["class"]): r for r in assess_run(run_copy, run_copy.parent / "lab.geojson", adjust_zero_cells=False)["records"]}
    for k, r in raw.items():
        assert r["area_ha"] == pytest.approx(adj[k]["area_ha"])  # point estimates unchanged
        assert r["se_area_ha"] <= adj[k]["se_area_ha"] + 1e-9


def test_coverage_policy_extrapolates_with_a_wider_interval():
    base = {"area_ha": 40.0, "se_area_ha": 5.0, "ci95_low_ha": 30.2, "ci95_high_ha": 49.8, "observed_fraction": 0.5}
    recs = [dict(base)]
    apply_coverage(recs, "extrapolate", 0.5)
    r = recs[0]
    assert r["coverage_policy"] == "extrapolated" and r["extrapolated_area_ha"] == 80.0
    width = r["extrapolated_ci95_high_ha"] - r["extrapolated_ci95_low_ha"]
    assert width > 2 * (base["ci95_high_ha"] - base["ci95_low_ha"])  # wider than the scaled-up observed CI
    assert r["extrapolated_ci95_low_ha"] >= base["ci95_low_ha"]
    full = [dict(base, observed_fraction=1.0)]
    apply_coverage(full, "extrapolate", 0.5)
    assert full[0]["extrapolated_area_ha"] == 40.0 and full[0]["extrapolated_ci95_high_ha"] == pytest.approx(49.8)
    withheld = [dict(base)]
    apply_coverage(withheld, "withhold", 0.5)
    assert withheld[0]["coverage_policy"] == "withheld" and withheld[0]["extrapolated_area_ha"] is None
    mapped = [dict(base, se_area_ha=None)]
    apply_coverage(mapped, "extrapolate", 0.5)
    assert mapped[0]["extrapolated_area_ha"] == 80.0 and mapped[0]["extrapolated_ci95_low_ha"] is None


def test_sample_and_assess_commands(run_copy, small_world, tmp_path):
    import subprocess
    import sys

    s = tmp_path / "s.geojson"
    r = subprocess.run([sys.executable, "-m", "estimator", "sample", run_copy, "--n", "300", "--min-per-stratum", "5", "--out", s, "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    write_json(tmp_path / "l.geojson", label_with_truth(json.loads(s.read_text()), small_world))
    r = subprocess.run([sys.executable, "-m", "estimator", "assess", run_copy, "--reference", tmp_path / "l.geojson"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "SYNTHETIC" in r.stdout and "coca" in r.stdout
    r = subprocess.run([sys.executable, "-m", "estimator", "assess", run_copy, "--reference", s], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "no label" in r.stderr
    assert np.isfinite(json.loads((run_copy / "estimates.json").read_text())["records"][0]["area_ha"])


def _add_province(run_copy, tmp_path) -> tuple[str, str]:
    """Add a region 'province' holding the run's first two (disjoint) regions, with the
    records a run would have for it (their sums)."""
    from pathlib import Path

    from shapely.geometry import mapping, shape
    from shapely.ops import unary_union

    man = json.loads((run_copy / "manifest.json").read_text())
    cfg = man["config"]["regions"]
    fc = json.loads(Path(cfg["file"]).read_text())
    a, b = fc["features"][:2]
    ida, idb = a["properties"][cfg["id_field"]], b["properties"][cfg["id_field"]]
    union = unary_union([shape(a["geometry"]), shape(b["geometry"])])
    fc["features"].append({"type": "Feature", "properties": {cfg["id_field"]: "province"}, "geometry": mapping(union)})
    (tmp_path / "regions.geojson").write_text(json.dumps(fc))
    cfg["file"] = str(tmp_path / "regions.geojson")
    write_json(run_copy / "manifest.json", man)
    est = json.loads((run_copy / "estimates.json").read_text())
    by = {(r["region"], r["class"]): r for r in est["records"]}
    for cls in {r["class"] for r in est["records"]}:
        ra, rb = by[(ida, cls)], by[(idb, cls)]
        rec = dict(ra, region="province")
        for key in ("region_area_ha", "mapped_area_ha", "area_ha"):
            rec[key] = ra[key] + rb[key]
        est["records"].append(rec)
    write_json(run_copy / "estimates.json", est)
    return ida, idb


def test_nested_regions_with_region_class_strata(run_copy, small_world, tmp_path):
    ida, idb = _add_province(run_copy, tmp_path)
    run = open_run(run_copy)
    fc = draw_sample(run, n=900, min_per_stratum=20, seed=1)
    assert fc["sampling"]["overlapping_regions"]
    assert {s["region"] for s in fc["sampling"]["strata"]} >= {f"{ida}+province", f"{idb}+province"}
    write_json(tmp_path / "lab.geojson", label_with_truth(fc, small_world, seed=1))
    out = assess_run(run_copy, tmp_path / "lab.geojson")
    rec = {(r["region"], r["class"]): r for r in out["records"]}
    assert rec[(ida, "coca")]["estimator"] == "stratified-olofsson2014"
    assert rec[("province", "coca")]["estimator"] == "stehman2014"
    for cls in run.classes:  # the province is its two cells: point estimates add up
        assert rec[("province", cls)]["area_ha"] == pytest.approx(rec[(ida, cls)]["area_ha"] + rec[(idb, cls)]["area_ha"], rel=1e-6, abs=1e-4)
    truth = _truth(small_world)
    true_p = truth[ida]["coca"] + truth[idb]["coca"]
    p = rec[("province", "coca")]
    assert p["ci95_low_ha"] <= true_p <= p["ci95_high_ha"]
    assert p["sample_n"] == rec[(ida, "coca")]["sample_n"] + rec[(idb, "coca")]["sample_n"]
    a = json.loads((run_copy / "assessment.json").read_text())
    assert "cells" in a["regions"]["province"]["accuracy_scope"]


def test_class_strata_give_each_region_its_own_accuracies(run_copy, small_world, tmp_path):
    run = open_run(run_copy)
    fc = draw_sample(run, n=600, min_per_stratum=20, by_region=False, seed=2)
    write_json(tmp_path / "lab.geojson", label_with_truth(fc, small_world, seed=2))
    assess_run(run_copy, tmp_path / "lab.geojson")
    a = json.loads((run_copy / "assessment.json").read_text())
    assert "Jeffreys" in a["interval"] and "not estimable" in a["accuracy_note"]
    regions = a["regions"]
    overall = {rid: r["overall_accuracy"] for rid, r in regions.items()}
    assert len(set(overall.values())) == len(overall) > 1  # no longer the whole sample's figure
    for r in regions.values():
        assert "domain" in r["accuracy_scope"]
        for c in r["per_class"].values():
            # a user's accuracy exactly where the region holds units mapped as the class
            assert (c["users_accuracy"] is None) == (c["units_mapped"] == 0)
    assert sum(r["n"] for r in regions.values()) <= a["n_units"]
    report = (run_copy / "report.md").read_text()
    assert "from that region's own sample units" in report and "Jeffreys" in report


def test_a_map_outside_the_interval_is_named_in_the_report_and_console(run_copy, small_world, tmp_path, capsys):
    from estimator.report.run_report import render_report_md
    from estimator.report.text import print_estimates
    from estimator.stages.estimate import map_outside_interval

    run = open_run(run_copy)
    write_json(tmp_path / "lab.geojson", label_with_truth(draw_sample(run, n=600, min_per_stratum=20, seed=1), small_world, seed=1))
    records = assess_run(run_copy, tmp_path / "lab.geojson")["records"]
    manifest = json.loads((run_copy / "manifest.json").read_text())
    # On the easy world the map sits inside every interval: nothing is flagged.
    assert map_outside_interval(records, "coca") == []
    assert "outside the design-based interval" not in render_report_md(records, manifest, target_class="coca")
    # A map that counts twice the upper bound in one region is flagged there, and only there.
    biased = [dict(r) for r in records]
    hit = next(r for r in biased if r["class"] == "coca" and r["area_ha"] > 0)
    hit["mapped_area_ha"] = 2 * hit["ci95_high_ha"]
    notes = map_outside_interval(biased, "coca")
    assert len(notes) == 1 and notes[0].startswith(f"{hit['region']}: the map counts")
    assert f"{hit['mapped_area_ha'] / hit['area_ha']:.1f} times the estimate" in notes[0]
    assert notes[0] in render_report_md(biased, manifest, target_class="coca")
    print_estimates(biased, "coca", synthetic=True)
    assert f"map outside the interval - {notes[0]}" in capsys.readouterr().out
