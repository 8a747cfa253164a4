"""Spatial cross-validation, calibrated probabilities, the model registry, `model: promoted`,
and the compare/evaluate commands on held-out labels."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from estimator.config import FitConfig, load_job
from estimator.errors import ConfigError, ModelFileError
from estimator.modelrefs import REGISTRY_ENV
from estimator.stages.classify import make_predictor
from estimator.stages.features import FEATURE_NAMES
from estimator.stages.model import forest_of, load_model
from estimator.warnings import MissingClassInFoldWarning
from training.extract import Samples
from training.fit import calibration_report, cross_validate, fit_model, out_of_fold, save_model, spatial_blocks
from training.registry import promote, register

FIT = FitConfig(n_estimators=10, max_depth=6, cv_folds=4, block_km=1.0, seed=0)


def _samples(rare_in_one_block: bool) -> Samples:
    """Plots of 8 pixels on a 4 x 4 km field; class 'rare' in the south-west block only
    (``rare_in_one_block``) or everywhere."""
    rng = np.random.default_rng(1)
    X, y, g, xy = [], [], [], []
    for i in range(64):
        cls = ["coca", "forest", "pasture", "rare"][i % 4]
        centre = rng.uniform(0, 4000, 2)
        if cls == "rare" and rare_in_one_block:
            centre = rng.uniform(0, 900, 2)
        pts = centre + rng.normal(0, 30, (8, 2))
        f = rng.normal(size=(8, len(FEATURE_NAMES))) + 1.5 * ["coca", "forest", "pasture", "rare"].index(cls)
        X.append(f)
        y += [cls] * 8
        g += [f"p{i}"] * 8
        xy.append(pts)
    return Samples(np.vstack(X).astype(np.float32), np.array(y), np.array(g), 0, 0, np.vstack(xy))


def test_spatial_blocks_keep_plots_whole():
    s = _samples(False)
    blocks = spatial_blocks(s, 1.0)
    for p in np.unique(s.groups):
        assert len(np.unique(blocks[s.groups == p])) == 1
    assert 10 <= len(np.unique(blocks)) <= 25


def test_class_confined_to_one_block_is_reported_missing():
    s = _samples(True)
    with pytest.warns(MissingClassInFoldWarning, match="no test pixel of \\['rare'\\]"):
        m = cross_validate(s, FIT, "coca")
    assert "spatial blocks of 1 km, grouped by plot" in m["cv"]
    missing = [f for f in m["folds"] if "rare" in f["missing_classes"]]
    assert missing and m["folds_missing_a_class"] == len(missing)
    assert all("rare" not in f["per_class"] for f in missing)
    assert {"precision", "recall", "f1", "support"} <= set(m["folds"][0]["per_class"]["coca"])


def test_calibrated_model_keeps_the_forest_argmax_and_the_fast_path(tmp_path):
    s = _samples(False)
    model = fit_model(s, FIT)  # temperature scaling on out-of-fold probabilities
    forest = forest_of(model)
    assert type(forest).__name__ == "RandomForestClassifier" and len(model.calibrated_classifiers_) == 1
    raw, cal = forest.predict_proba(s.X), model.predict_proba(s.X)
    assert (np.argmax(raw, axis=1) == np.argmax(cal, axis=1)).all()  # temperature keeps the ranking
    assert not np.allclose(raw, cal)
    card = {"features": list(FEATURE_NAMES), "classes": list(model.classes_), "target_class": "coca"}
    saved = save_model(tmp_path / "m", model, card)  # loads back with the trusted-type list
    pred = make_predictor(saved)
    assert type(pred.full).__name__ == "_Calibrated"  # compiled forest + sklearn's calibrator
    np.testing.assert_allclose(pred.predict_proba(s.X), cal, atol=1e-5)


def test_calibration_report_measures_out_of_fold():
    s = _samples(False)
    from training.fit import cv_splits

    splits, _ = cv_splits(s, FIT, spatial=True)
    rep, after = calibration_report(s.y, out_of_fold(s, FIT, splits), splits, "temperature", "coca")
    assert rep["argmax_changed_fraction"] == 0.0 and after.shape == (len(s.y), 4)
    for k in ("coca_brier", "brier_multiclass", "log_loss"):
        assert rep["before"][k] >= 0 and rep["after"][k] >= 0
    assert sum(b["n"] for b in rep["after"]["coca_reliability"]) == len(s.y)


def _labels(small_world, tmp_path, batch):
    data = json.loads(small_world.labels_path.read_text())
    data["features"] = [f for f in data["features"] if f["properties"]["batch"] in batch]
    p = tmp_path / f"batch{''.join(map(str, batch))}.geojson"
    p.write_text(json.dumps(data))
    return p


@pytest.fixture(scope="module")
def batch1_model(small_world, trained_model, tmp_path_factory):
    """A model trained on batch 1 only (batch 2 is held out)."""
    from estimator.config import TrainConfig
    from training.extract import read_labels
    from training.fit import train

    d = tmp_path_factory.mktemp("b1")
    cfg = TrainConfig.model_validate(trained_model.card["train_config"])
    cfg = cfg.model_copy(update={"fit": cfg.fit.model_copy(update={"n_estimators": 20, "cascade_trees": 0, "block_km": 1.0})})
    return train(cfg, read_labels(_labels(small_world, d, [1])), d / "m", progress=False)


def test_card_reports_spatial_and_plot_cv_and_calibration(trained_model):
    card = trained_model.card
    assert "spatial blocks" in card["metrics"]["cv"] and "grouped by plot" in card["metrics_plot_cv"]["cv"]
    cal = card["calibration"]
    assert cal["method"] == "temperature" and cal["argmax_changed_fraction"] == 0.0
    assert cal["after"]["coca_brier"] <= cal["before"]["coca_brier"] + 1e-3
    assert card["estimator"] == "CalibratedClassifierCV" and "training_plots" in card


def test_promoted_model_is_what_the_next_job_uses(small_world, served_world, trained_model, batch1_model, tmp_path, monkeypatch):
    from estimator.demo.runner import demo_job
    from estimator.run.pipeline import run

    root = tmp_path / "models"
    a = register(root, trained_model.path)
    assert (root / a.model_id / "model.skops").is_file() and trained_model.path.is_dir()  # copied, not moved
    job = demo_job(small_world, served_world.stac_url, trained_model.path, tmp_path / "run", tile_size=256)
    job["model"] = "promoted"
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    with pytest.raises(ConfigError, match="no model is promoted"):
        load_job(tmp_path / "job.yaml")  # registry defaults to models/ beside the job

    promote(root, batch1_model.path)
    index = json.loads((root / "registry.json").read_text())
    assert index["promoted"] == batch1_model.model_id and set(index["models"]) == {a.model_id, batch1_model.model_id}
    assert load_job(tmp_path / "job.yaml").model == root / batch1_model.model_id
    result = run(load_job(tmp_path / "job.yaml"), progress=False)
    assert result.manifest["model"]["id"] == batch1_model.model_id

    promote(root, a.model_id[:8])
    assert load_job(tmp_path / "job.yaml").model == root / a.model_id
    monkeypatch.setenv(REGISTRY_ENV, str(tmp_path / "elsewhere"))
    with pytest.raises(ConfigError, match="elsewhere"):
        load_job(tmp_path / "job.yaml")
    with pytest.raises(ModelFileError, match="matches"):
        promote(root, "ffffffff")


@pytest.mark.integration
def test_compare_and_evaluate_on_a_held_out_batch(small_world, trained_model, batch1_model, tmp_path):
    heldout = _labels(small_world, tmp_path, [2])
    r = subprocess.run(
        [sys.executable, "-m", "training", "compare", batch1_model.path, trained_model.path, "--labels", heldout,
         "--out", tmp_path, "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert f"A {batch1_model.model_id}" in r.stdout and "coca" in r.stdout
    assert f"note: model {trained_model.model_id} was trained on" in r.stdout  # B saw batch 2 in training
    cmp = json.loads((tmp_path / "compare.json").read_text())
    a, b = cmp["models"]
    assert a["overlap"] == [] and b["overlap"]
    assert a["n_pixels"] == b["n_pixels"] > 0 and a["per_class"]["coca"]["f1"] > 0.5

    r = subprocess.run(
        [sys.executable, "-m", "training", "evaluate", batch1_model.path, "--labels", heldout, "--out", tmp_path / "ev", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    ev = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert ev["per_class"] == a["per_class"]
    assert (tmp_path / "ev" / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "ev" / "per_class.csv").read_text().startswith("class,precision,recall,f1,support")
    assert load_model(batch1_model.path).model_id == batch1_model.model_id


def test_calibration_report_survives_a_fold_without_a_class():
    """Spatial folds on few plots can put every plot of a class in one fold's test part."""
    from training.fit import calibration_report

    rng = np.random.default_rng(0)
    y = np.repeat(np.array(["coca", "forest", "water"]), [40, 40, 10])
    proba = rng.dirichlet([1, 1, 1], len(y))
    idx = np.arange(len(y))
    water = idx[y == "water"]
    splits = [(np.setdiff1d(idx, water), water), (water, np.setdiff1d(idx, water))]
    report, after = calibration_report(y, proba, splits, "temperature", "coca")
    assert report["folds_not_calibrated"] == [0, 1]  # fold 1 trains on water only
    np.testing.assert_array_equal(after, proba)
