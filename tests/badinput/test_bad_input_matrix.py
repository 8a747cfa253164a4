"""The bad-input matrix: one row per way a user (or the network) can hand the tools something
wrong. Each row asserts the exit code, the one-line message, and that no file that existed
before changed (the tree is hashed before and after)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from estimator.cli.main import main as estimator_main
from estimator.demo.runner import demo_job, demo_train
from estimator.testing.servers import free_port
from training.cli import main as training_main

pytestmark = pytest.mark.integration


def tree_hash(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@dataclass
class Env:
    """What a row needs: a work folder, a job file on the served world, a finished run copy."""

    tmp: Path
    job: Path
    run: Path
    train: Path
    model: Path
    world: object


@pytest.fixture
def env(tmp_path, small_world, served_world, trained_model, run_copy) -> Env:
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(demo_job(small_world, served_world.stac_url, trained_model.path, tmp_path / "out", tile_size=256)))
    train = tmp_path / "train.yaml"
    train.write_text(yaml.safe_dump(demo_train(small_world, served_world.stac_url, tile_size=256)))
    return Env(tmp_path, job, run_copy, train, trained_model.path, small_world)


def _labeled_sample(e: Env) -> Path:
    from estimator.run.rundir import open_run
    from estimator.stats.sample import draw_sample

    fc = draw_sample(open_run(e.run), n=300, min_per_stratum=5, seed=1)
    for f in fc["features"]:
        f["properties"]["consensus"] = f["properties"]["map_class"]
    p = e.tmp / "labeled.geojson"
    p.write_text(json.dumps(fc))
    return p


def _plots(e: Env, cls: str, crs: str | None = None) -> Path:
    feats = json.loads(e.world.labels_path.read_text())["features"][:6]
    for i, f in enumerate(feats):
        f["properties"].update({"plot_id": f"q{i}", "observed": "2022-01-10", "source": "test"})
    feats[0]["properties"]["class"] = cls
    fc: dict = {"type": "FeatureCollection", "features": feats}
    if crs:
        fc["crs"] = {"type": "name", "properties": {"name": crs}}
    p = e.tmp / "plots.geojson"
    p.write_text(json.dumps(fc))
    return p


def _single_class_store(e: Env) -> Path:
    feats = [f for f in json.loads(e.world.labels_path.read_text())["features"] if f["properties"]["class"] == "forest"][:3]
    for i, f in enumerate(feats):
        f["properties"].update({"plot_id": f"f{i}", "observed": "2022-01-10", "source": "test"})
    p = e.tmp / "forest.geojson"
    p.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    assert training_main(["labels", "add", str(p), "--store", str(e.tmp / "store"), "--quiet"]) == 0
    return e.tmp / "store"


def _swapped_model(e: Env) -> Path:
    d = e.tmp / "swapped"
    shutil.copytree(e.model, d)
    (d / "model.skops").write_bytes((d / "cascade.skops").read_bytes())
    return d


def _foreign_dir(e: Env) -> Path:
    d = e.tmp / "mine"
    (d / "tiles" / "notes").mkdir(parents=True)
    (d / "report.md").write_text("my own notes\n")
    (d / "tiles" / "notes" / "keep.txt").write_text("keep\n")
    return d


def _corrupt(e: Env, name: str, text: str) -> Path:
    (e.run / name).write_text(text)
    return e.run


def _mixed_run(e: Env) -> Path:
    m = json.loads((e.run / "manifest.json").read_text())
    m["run_id"] = "another-run"
    (e.run / "manifest.json").write_text(json.dumps(m))
    return e.run


def _half_committed(e: Env) -> Path:
    (e.run / "manifest.json").unlink()  # a commit interrupted after the old manifest went
    return e.run


def _dup_sample(e: Env) -> Path:
    p = _labeled_sample(e)
    fc = json.loads(p.read_text())
    fc["features"].append(fc["features"][0])
    p.write_text(json.dumps(fc))
    return p


def _a_file(e: Env) -> Path:
    p = e.tmp / "a-file"
    p.write_text("x")
    return p


def _pc_items_elsewhere(e: Env, shared: Path) -> Path:
    return shared / "real/stac/planetary_computer/itemcollection_T35MNM_2020-06_07_DRCongo.geojson"


Row = tuple[str, str, Callable[[Env], list[str]], str]

# (id, module, argv, fragment of the one error line); exit code 2 for every row.
ROWS: list[Row] = [
    # already handled before this matrix; kept so they stay so
    ("missing-job-file", "estimator", lambda e: ["run", str(e.tmp / "nope.yaml")], "config file not found"),
    ("unknown-key", "estimator", lambda e: ["run", str(e.job), "--set", "stac.colection=x"], "unknown key 'stac.colection'"),
    ("bad-set-value", "estimator", lambda e: ["run", str(e.job), "--set", "stac.url=[oops"], "not a valid YAML value"),
    ("no-scenes", "estimator", lambda e: ["run", str(e.job), "--set", "period.start=2010-01-01", "--set", "period.end=2010-02-01"], "no usable scenes"),
    ("bad-expected-ua", "estimator", lambda e: ["sample", str(e.run), "--expected-ua", "coca", "--out", str(e.tmp / "s.geojson")], "CLASS=ACCURACY"),
    ("assess-not-geojson", "estimator", lambda e: ["assess", str(e.run), "--reference", str(_a_file(e))], "is not GeoJSON"),
    # 1. projected grids only, in metres
    ("grid-degrees", "estimator", lambda e: ["run", str(e.job), "--set", "grid.crs=EPSG:4326"], "geographic (degrees)"),
    ("grid-feet", "estimator", lambda e: ["plan", str(e.job), "--set", "grid.crs=EPSG:2230"], "US survey foot"),
    # 2. nothing outside the run's own files deleted or overwritten
    ("foreign-out-dir", "estimator", lambda e: ["run", str(e.job), "--out", str(_foreign_dir(e))], "is not a run directory"),
    # 6. labels, samples, models
    ("fit-misspelled-class", "training", lambda e: ["fit", str(e.train), "--labels", str(_plots(e, "Coca ")), "--out", str(e.tmp / "m")], "did you mean 'coca'"),
    ("fit-store-one-class", "training", lambda e: ["fit", str(e.train), "--store", str(_single_class_store(e)), "--out", str(e.tmp / "m")], "only one class"),
    ("assess-duplicate-id", "estimator", lambda e: ["assess", str(e.run), "--reference", str(_dup_sample(e))], "more than once"),
    ("sample-n-0", "estimator", lambda e: ["sample", str(e.run), "--n", "0", "--out", str(e.tmp / "s.geojson")], "--n must be between"),
    ("sample-n-negative", "estimator", lambda e: ["sample", str(e.run), "--n", "-5", "--out", str(e.tmp / "s.geojson")], "--n must be between"),
    ("sample-n-below-minimum", "estimator", lambda e: ["sample", str(e.run), "--n", "10", "--out", str(e.tmp / "s.geojson")], "raise --n or lower --min-per-stratum"),
    ("sample-n-huge", "estimator", lambda e: ["sample", str(e.run), "--n", "100000000", "--out", str(e.tmp / "s.geojson")], "--n must be between"),
    ("swapped-model-file", "estimator", lambda e: ["run", str(e.job), "--set", f"model={_swapped_model(e)}"], "does not match the sha256"),
    # 4. mixed or half-written run directories are refused by their readers
    ("mixed-run-sample", "estimator", lambda e: ["sample", str(_mixed_run(e)), "--n", "500", "--out", str(e.tmp / "s.geojson")], "different runs"),
    ("mixed-run-compare", "estimator", lambda e: ["compare", str(_mixed_run(e)), "--out", str(e.tmp / "cmp")], "different runs"),
    ("half-committed-run", "estimator", lambda e: ["compare", str(_half_committed(e)), "--out", str(e.tmp / "cmp")], "manifest.json missing"),
    # 7. one-line errors, not tracebacks
    ("run-out-under-a-file", "estimator", lambda e: ["run", str(e.job), "--out", str(_a_file(e) / "run")], "is a file, not a directory"),
    ("compare-out-is-a-file", "estimator", lambda e: ["compare", str(e.run), "--out", str(_a_file(e))], "is a file"),
    ("sample-out-under-a-file", "estimator", lambda e: ["sample", str(e.run), "--n", "500", "--out", str(_a_file(e) / "s.geojson")], "is a file, not a directory"),
    ("unknown-epsg", "estimator", lambda e: ["run", str(e.job), "--set", "grid.crs=EPSG:999999"], "unknown CRS"),
    ("impossible-date", "estimator", lambda e: ["run", str(e.job), "--set", "period.end=2022-02-30"], "day is out of range"),
    ("corrupt-estimates-sample", "estimator", lambda e: ["sample", str(_corrupt(e, "estimates.json", "{trunc")), "--n", "500", "--out", str(e.tmp / "s.geojson")], "not valid JSON"),
    ("corrupt-manifest-assess", "estimator", lambda e: ["assess", str(_corrupt(e, "manifest.json", "[1,")), "--reference", str(e.tmp / "x.geojson")], "not valid JSON"),
    # 8. smaller gaps
    ("labels-lonlat-declared-utm", "training", lambda e: ["labels", "add", str(_plots(e, "coca", "EPSG:32718")), "--store", str(e.tmp / "store")], "every coordinate lies within lon/lat"),
    # first hour
    ("dead-loopback-stac", "estimator", lambda e: ["run", str(e.job), "--set", f"stac.url=http://127.0.0.1:{free_port()}"], "demo serve"),
]


@pytest.mark.parametrize(("case", "module", "argv", "fragment"), ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(env, capsys, case, module, argv, fragment):
    args = argv(env)  # builds the row's inputs
    before = tree_hash(env.tmp)
    main = estimator_main if module == "estimator" else training_main
    code = main([*args, "--quiet"])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert fragment in lines[0], lines[0]
    after = tree_hash(env.tmp)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing that existed changed
    assert not (env.tmp / "out").exists()


def test_plan_items_of_another_place_and_time(env, capsys, shared):
    items = _pc_items_elsewhere(env, shared)
    code = estimator_main(["plan", str(env.job), "--items", str(items), "--set", "stac.provider=planetary-computer"])
    err = capsys.readouterr().err
    assert code == 2 and "none of the 13 saved item(s) can serve this job" in err and "outside the period" in err
