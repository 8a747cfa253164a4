"""The public Python API (``estimator``, ``training``) on the SYNTHETIC demo world: a finished
run opened locally and from ``memory://``, and the notebook round trip run -> sample ->
assess -> compare, checked against what the command line writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import fsspec
import numpy as np
import pytest
import rasterio

import estimator
import training

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


def _copy_to_memory(run_dir: Path, prefix: str) -> str:
    fs = fsspec.filesystem("memory")
    for p in run_dir.rglob("*"):
        if p.is_file() and "tiles" not in p.relative_to(run_dir).parts:
            fs.pipe_file(f"/{prefix}/{p.relative_to(run_dir).as_posix()}", p.read_bytes())
    return f"memory://{prefix}"


def _check_run(run: estimator.Run, run_dir: Path) -> None:
    records = json.loads((run_dir / "estimates.json").read_text())["records"]
    est = run.estimates
    # A number some records lack (model_based_area_ha: the target class only) is NaN in the table.
    table = [{k: None if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()} for row in est.to_dict("records")]
    assert table == [{c: r.get(c) for c in est.columns} for r in records]
    assert list(est.columns[:3]) == ["region", "region_name", "class"]

    m = run.manifest
    assert isinstance(m, estimator.Manifest)
    assert m.model_id == m["model"]["id"] and m.crs == m["grid"]["crs"] and m.synthetic
    assert list(m.items["id"]) == [i["id"] for i in m["items"]]

    maps = run.maps
    target = m.target_class
    assert sorted(maps.data_vars) == sorted(["class", f"{target}_probability", "valid_obs_count"])
    assert all(v.chunks is not None for v in maps.data_vars.values())  # lazy: dask-backed
    assert maps.attrs["crs"] == m.crs and maps.rio.crs.to_string() == m.crs
    assert maps.attrs["classes"] == ["unobserved", *m.classes]
    assert maps["class"].attrs["flag_meanings"].split() == maps.attrs["classes"]
    with rasterio.open(run_dir / "maps" / "class.tif") as src:
        codes = src.read(1)
        x0, y0 = src.xy(0, 0)
    np.testing.assert_array_equal(maps["class"].values, codes)
    assert (float(maps.x[0]), float(maps.y[0])) == pytest.approx((x0, y0))
    prob = maps[f"{target}_probability"].values
    assert np.isnan(prob[codes == 0]).all() and np.nanmax(prob) <= 1.0

    plots = run.plots
    assert plots.crs.to_string() == m.crs
    assert len(plots) == m["plots"]["n_plots"] + m["plots"]["n_below_mmu"]

    html = run._repr_html_()
    assert "SYNTHETIC" in html and "data:image/png;base64," in html
    assert html.count("<tr") == 1 + sum(r["class"] == target for r in records)  # header + one row per region


def test_open_run_local(small_run):
    run_dir = Path(small_run[1].run_dir)
    run = estimator.open_run(run_dir)
    assert isinstance(run, estimator.Run) and run.run_dir == run_dir
    _check_run(run, run_dir)
    assert run.assessment is None and run.comparison is None
    assert "SYNTHETIC" in repr(run)


def test_open_run_memory_url(small_run):
    run_dir = Path(small_run[1].run_dir)
    url = _copy_to_memory(run_dir, "api-test/run")
    try:
        run = estimator.open_run(url)
        assert run.run_dir == url
        _check_run(run, run_dir)
    finally:
        fsspec.filesystem("memory").rm("/api-test", recursive=True)


def test_run_returns_the_run_object(small_run):
    _job, result = small_run
    assert isinstance(result, estimator.Run) and estimator.RunResult is estimator.Run
    opened = estimator.open_run(result.run_dir)
    assert result.records == opened.records and dict(result.manifest) == dict(opened.manifest)
    assert result.estimates.equals(opened.estimates)


def test_open_run_on_a_directory_that_is_not_a_run(tmp_path):
    with pytest.raises(estimator.EstimatorError, match=r"not a finished run directory \(manifest.json missing\)"):
        estimator.open_run(tmp_path)
    with pytest.raises(estimator.EstimatorError, match="not a finished run directory"):
        estimator.open_run("memory://api-test/nothing-here")


def test_plot_draws_the_quicklook(small_run):
    import matplotlib

    matplotlib.use("Agg")
    ax = estimator.open_run(small_run[1].run_dir).plot()
    assert ax.images and ax.images[0].get_array().shape[:2] > (100, 100)
    assert "SYNTHETIC" in ax.get_title()


def test_public_names_resolve_whatever_was_imported_first():
    code = (
        "import estimator.run.rundir, estimator\n"
        "names = [n for n in estimator.__all__ if getattr(estimator, n) is None]\n"
        "assert callable(estimator.run) and estimator.run.__module__ == 'estimator.run.pipeline', estimator.run\n"
        "assert not names, names\n"
        "import training\n"
        "assert all(getattr(training, n) is not None for n in training.__all__)\n"
        "assert callable(training.fit) and training.fit.__module__ == 'training.fit'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_notebook_round_trip_matches_the_command_line(run_copy, small_world, tmp_path):
    """run -> sample -> label -> assess -> compare from Python; the CLI on a copy of the run,
    with the same sample, writes the same estimates and verdicts."""
    import shutil

    from estimator.cli.main import main
    from estimator.demo.claims import write_demo_claims
    from estimator.demo.examples import Example

    cli_dir = tmp_path / "cli-run"
    shutil.copytree(run_copy, cli_dir)
    truth = {rid: r["area_ha"] for rid, r in json.loads(small_world.truth_path.read_text())["regions"].items()}
    claims = write_demo_claims(tmp_path / "claims.yaml", {rid: a["coca"] for rid, a in truth.items()}, small_world.spec)
    ex = Example(tmp_path, small_world, tmp_path, run_copy, claims)

    run = estimator.open_run(run_copy)
    sample = estimator.sample(run, n=500, min_per_stratum=10, seed=5, out=tmp_path / "sample.geojson")
    assert len(sample) == 500 and sample.crs.to_string() == "EPSG:4326"
    assert sample["interpreter_1"].isna().all()

    assert main(["sample", str(cli_dir), "--n", "500", "--min-per-stratum", "10", "--seed", "5", "--out", str(tmp_path / "cli.geojson"), "--quiet"]) == 0
    ours, theirs = (json.loads((tmp_path / n).read_text()) for n in ("sample.geojson", "cli.geojson"))
    assert [f["properties"] for f in ours["features"]] == [f["properties"] for f in theirs["features"]]

    labeled = ex.label(sample, seed=5)
    assert labeled["interpreter_1"].notna().all()
    assessed = estimator.assess(run, labeled)
    assert isinstance(assessed.assessment, estimator.Assessment)
    assert assessed.assessment.n_units == 500 and assessed.assessment.estimator == "stratified-olofsson2014"
    coca = assessed.estimates.query("`class` == 'coca'")
    assert (coca["estimator"] == "stratified-olofsson2014").all()
    assert ((coca["ci95_low_ha"] <= coca["area_ha"]) & (coca["area_ha"] <= coca["ci95_high_ha"])).all()

    # The CLI assesses the same labels (written as the file an interpreter returns).
    fc = json.loads(labeled.to_json(na="null", drop_id=True))
    (tmp_path / "labeled.geojson").write_text(json.dumps({**fc, "sampling": labeled.attrs["sampling"]}))
    assert main(["assess", str(cli_dir), "--reference", str(tmp_path / "labeled.geojson")]) == 0
    cli_run = estimator.open_run(cli_dir)
    assert cli_run.estimates.drop(columns=[]).equals(assessed.estimates)
    assert cli_run.assessment.accuracy.equals(assessed.assessment.accuracy)

    comparison = estimator.compare(assessed, claims=claims)
    assert isinstance(comparison, estimator.Comparison) and comparison.synthetic
    assert set(comparison.claims["verdict"]) <= {"consistent", "contradicted", "inconclusive"}
    assert len(comparison.claims) + len(comparison.unmatched) == 5
    assert run_copy / "comparison.json" in comparison.files
    assert estimator.open_run(run_copy).comparison.claims.equals(comparison.claims)
    assert main(["compare", str(cli_dir), "--claims", str(claims)]) == 0
    assert cli_run.comparison.claims.drop(columns="warnings").equals(comparison.claims.drop(columns="warnings"))


def test_assess_rejects_a_frame_without_its_design(run_copy):
    run = estimator.open_run(run_copy)
    sample = estimator.sample(run, n=100, min_per_stratum=2, seed=1)
    sample.attrs.clear()
    with pytest.raises(estimator.EstimatorError, match=r"no attrs\['sampling'\]"):
        estimator.assess(run, sample)


def test_training_registry_table(trained_model, tmp_path):
    registry = tmp_path / "models"
    model = training.promote(registry, trained_model.path)
    table = training.models(registry)
    assert table.to_dict("records")[0]["id"] == model.model_id
    assert table["promoted"].tolist() == [True]
    assert list(table.columns[:3]) == ["id", "created", "promoted"]


def test_training_fit_needs_a_destination(tmp_path, small_world):
    import yaml

    from estimator.demo import demo_train

    (tmp_path / "train.yaml").write_text(yaml.safe_dump(demo_train(small_world, "http://127.0.0.1:9")))
    with pytest.raises(estimator.EstimatorError, match="say where the model goes"):
        training.fit(tmp_path / "train.yaml", small_world.labels_path)
