"""A cold start on the small SYNTHETIC world: `model: none` -> strata -> sample -> oracle
labels -> assess (every class, with intervals) -> the sample trains the first model only
through the label store."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import rasterio
import yaml

from estimator.config import load_job
from estimator.demo.oracle import label_with_truth
from estimator.demo.runner import demo_job
from estimator.errors import EstimatorError
from estimator.location import write_json
from estimator.run.pipeline import run
from estimator.run.rundir import open_run
from estimator.stats.assess import assess_run
from estimator.stats.sample import draw_sample
from training.labels import DEFAULT_CLASSES, read_label_file

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cold_run(small_world, served_world, tmp_path_factory):
    d = tmp_path_factory.mktemp("cold")
    job = demo_job(small_world, served_world.stac_url, d / "none", d / "run", tile_size=256)
    job.update(model="none", classes=list(DEFAULT_CLASSES), strata={"clusters": 5, "fit_pixels": 4000})
    (d / "job.yaml").write_text(yaml.safe_dump(job))
    return run(load_job(d / "job.yaml"), progress=False)


def test_strata_run_is_a_run_dir_without_a_model(cold_run):
    d = cold_run.run_dir
    m = json.loads((d / "manifest.json").read_text())
    assert m["model"]["id"] == "none" and m["config"]["model"] == "none"
    assert m["model"]["classes"] == ["k1", "k2", "k3", "k4", "k5", "harvest"]
    assert m["model"]["reference_classes"] == list(DEFAULT_CLASSES)
    assert not (d / "maps" / "class.tif").exists() and not list((d / "maps").glob("*_probability.tif"))
    with rasterio.open(d / "maps" / "strata.tif") as src:
        codes = src.read(1)
        assert json.loads(src.tags()["strata"])[1:] == m["model"]["classes"]
    est = json.loads((d / "estimates.json").read_text())
    assert est["records"] == [] and est["model_id"] == "none"
    # The strata's pixels per region are those of the map inside each region.
    run_dir = open_run(d)
    assert run_dir.strata_only and run_dir.reference_classes == DEFAULT_CLASSES
    inside = sum(int(((b.codes > 0) & b.regions.any(axis=0)).sum()) for b in run_dir.blocks())
    assert sum(r["pixels"] for r in est["strata"]) == inside and inside <= (codes > 0).sum()
    assert {r["stratum"] for r in est["strata"]} == set(m["model"]["classes"])
    report = (d / "report.md").read_text()
    assert "No model was used" in report and "SYNTHETIC" in report


def test_sample_and_assess_give_every_class_with_an_interval(cold_run, small_world, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(cold_run.run_dir, d, ignore=shutil.ignore_patterns("tiles"))
    run_dir = open_run(d)
    sample = draw_sample(run_dir, n=400, min_per_stratum=5, seed=3)
    s = sample["sampling"]
    assert s["model"] == "none" and s["classes"] == list(DEFAULT_CLASSES) and "label-free stratum" in s["design"]
    assert s["strata_map"]["sha256"] == run_dir.manifest["model"]["strata"]["sha256"]
    assert all(st["n"] >= min(5, st["pixels"]) for st in s["strata"])
    assert {f["properties"]["map_class"] for f in sample["features"]} <= set(run_dir.classes)
    write_json(tmp_path / "labeled.geojson", label_with_truth(sample, small_world, seed=3))
    out = assess_run(d, tmp_path / "labeled.geojson")
    recs = out["records"]
    regions = {r.id for r in run_dir.regions}
    assert {(r["region"], r["class"]) for r in recs} == {(g, c) for g in regions for c in DEFAULT_CLASSES}
    for r in recs:
        assert r["estimator"] == "stehman2014" and r["ci95_low_ha"] <= r["area_ha"] <= r["ci95_high_ha"]
        assert r["users_accuracy"] is None and r["mapped_area_ha"] is None
    for g in regions:
        # The class areas of a region add up to its observed area (every pixel has one class).
        total = sum(r["area_ha"] for r in recs if r["region"] == g)
        observed = next(r["observed_area_ha"] for r in recs if r["region"] == g)
        assert total == pytest.approx(observed, rel=1e-3)
        # A class absent from the region's units still gets an interval above 0 (zero-cell variance).
        for r in recs:
            if r["region"] == g and r["area_ha"] == 0:
                assert r["ci95_high_ha"] > 0
    assert "No accuracy" in out["assessment"]["accuracy_note"]
    assert "No model was used" in (d / "report.md").read_text()
    est = json.loads((d / "estimates.json").read_text())
    assert est["strata"] and est["assessment"] == "assessment.json"

    # The same labelled units are a label batch (keeping its provenance) but never plain labels.
    batch = read_label_file(tmp_path / "labeled.geojson", observed=small_world.spec.end)
    assert batch.reference_sample and len(batch.plots) == len(sample["features"])
    from estimator.errors import LabelFileError
    from training.extract import read_labels

    with pytest.raises(LabelFileError, match=r"is a reference sample .*training labels add"):
        read_labels(tmp_path / "labeled.geojson")


def test_an_unlabelled_strata_sample_is_refused(cold_run, tmp_path):
    sample = draw_sample(open_run(cold_run.run_dir), n=200, min_per_stratum=5, seed=4)
    write_json(tmp_path / "sample.geojson", sample)
    with pytest.raises(EstimatorError, match="no reference label") as e:
        read_label_file(tmp_path / "sample.geojson")
    assert "\n" not in str(e.value)
    with pytest.raises(EstimatorError, match="have no label"):
        assess_run(cold_run.run_dir, tmp_path / "sample.geojson")
    # Before an assessment there is no estimate to set beside a claim.
    from estimator.claims.compare import read_run

    with pytest.raises(EstimatorError, match=r"is a cold start \(model: none\): it holds strata, no estimate yet"):
        read_run(cold_run.run_dir)
    # A label outside the job's legend is a spelling error, not a class.
    sample["features"][0]["properties"]["interpreter_1"] = "coca_bush"
    for f in sample["features"][1:]:
        f["properties"]["interpreter_1"] = "forest"
    write_json(tmp_path / "bad.geojson", sample)
    with pytest.raises(EstimatorError, match=r"labels \['coca_bush'\] are not classes of this run \(coca, forest"):
        assess_run(cold_run.run_dir, tmp_path / "bad.geojson")


def test_strata_rerun_reuses_its_tiles(cold_run, small_world, served_world, tmp_path):
    job = load_job(cold_run.run_dir.parent / "job.yaml")
    again = run(job, progress=False)
    assert again.tiles_reused == len(cold_run.manifest["tiles"])
    assert np.array_equal(
        rasterio.open(again.run_dir / "maps" / "strata.tif").read(1), rasterio.open(cold_run.run_dir / "maps" / "strata.tif").read(1)
    )


def _cli(*args, module="estimator"):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True, timeout=300)


def _one_line_error(r, *fragments):
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_cli_refuses_a_sample_as_plain_labels_and_a_cold_job_without_a_legend(cold_run, tmp_path):
    sample = draw_sample(open_run(cold_run.run_dir), n=200, min_per_stratum=5, seed=5)
    write_json(tmp_path / "sample.geojson", sample)
    train = {"stac": {"url": "http://127.0.0.1:1/"}, "period": {"start": "2021-09-01", "end": "2022-08-31"}}
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(train))
    r = _cli("fit", tmp_path / "train.yaml", "--labels", tmp_path / "sample.geojson", "--out", tmp_path / "m", module="training")
    _one_line_error(r, "is a reference sample", "training labels add")
    assert not (tmp_path / "m").exists()
    r = _cli("labels", "add", tmp_path / "sample.geojson", "--store", tmp_path / "store", module="training")
    _one_line_error(r, "no reference label")
    job = yaml.safe_load((cold_run.run_dir.parent / "job.yaml").read_text())
    job.pop("classes")
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    _one_line_error(_cli("run", tmp_path / "job.yaml", "--out", tmp_path / "run"), "model: none needs `classes:`")
    assert not (tmp_path / "run").exists()


def test_interpret_labels_a_strata_sample(cold_run, served_world, tmp_path):
    from estimator.interpret.server import open_app

    sample = draw_sample(open_run(cold_run.run_dir), n=120, min_per_stratum=3, seed=6)
    write_json(tmp_path / "sample.geojson", sample)
    app = open_app(tmp_path / "sample.geojson", cold_run.run_dir, interpreter="ana", stac_url=served_world.stac_url)
    state = app.state()
    assert state["classes"] == list(DEFAULT_CLASSES) and state["blind"] and state["target_class"] == "coca"
    assert "map_class" not in state["units"][0]  # blind: nothing to show anyway, there is no map class
    sid = state["units"][0]["id"]
    unit = app.unit(sid)
    assert unit["dates"] and unit["chips"]
    assert app.chip(sid, unit["chips"][0], "true").startswith(b"\x89PNG")
    assert app.answer({"id": sid, "label": "forest", "confidence": "high"}, consensus=False)["done"]["interpreter_1"] == 1
    saved = json.loads((tmp_path / "sample.geojson").read_text())["features"][0]["properties"]
    assert saved["sample_id"] == sid and saved["interpreter_1"] == "forest"
