"""Training: features through the estimator's own code, plot-grouped CV, the model card."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from estimator.demo.runner import demo_train
from estimator.errors import LabelFileError
from estimator.stages.features import FEATURE_NAMES
from estimator.stages.model import load_model
from training.extract import read_labels


def test_card_describes_the_model(trained_model, small_world):
    card = trained_model.card
    assert card["features"] == list(FEATURE_NAMES)
    assert card["target_class"] == "coca" and "coca" in card["classes"]
    assert len(card["training_data_sha256"]) == 64
    assert card["labels"]["sha256"] == read_labels(small_world.labels_path).sha256
    m = card["metrics"]
    assert "grouped by plot" in m["cv"]
    assert m["per_class"]["coca"]["f1"] > 0.8
    cm = np.array(m["confusion_matrix"]["rows_true_cols_pred"])
    assert cm.sum() == sum(card["samples"]["pixels_per_class"].values())
    assert load_model(trained_model.path).model_id == trained_model.model_id
    rule = card["decision"]
    assert rule["rule"] == "target_threshold" and "out-of-fold calibrated" in rule["chosen_on"]
    assert trained_model.decision_threshold == rule["threshold"]
    at = rule["oof_at_threshold"]
    # Tied probabilities can map a few extra pixels, never fewer than the true ones.
    assert at["commission_pixels"] >= at["omission_pixels"]
    assert at["commission_pixels"] - at["omission_pixels"] <= 0.01 * card["samples"]["pixels_per_class"]["coca"]


def test_labels_validation(tmp_path, small_world):
    p = tmp_path / "l.geojson"
    p.write_text("not json")
    with pytest.raises(LabelFileError, match="not GeoJSON"):
        read_labels(p)
    data = json.loads(small_world.labels_path.read_text())
    p.write_text(json.dumps(data))
    with pytest.raises(LabelFileError, match="no 'clase' value"):
        read_labels(p, class_field="clase")
    for f in data["features"]:
        f["properties"]["clase"] = f["properties"].pop("class")
    p.write_text(json.dumps(data))
    labels = read_labels(p, class_field="clase")
    assert "coca" in labels.classes and len(labels.plot_ids) == len(data["features"])
    data["features"] = [f for f in data["features"] if f["properties"]["clase"] == "coca"]
    p.write_text(json.dumps(data))
    with pytest.raises(LabelFileError, match="only one class"):
        read_labels(p, class_field="clase")


@pytest.mark.integration
def test_fit_command_line(small_world, served_world, tmp_path):
    train = tmp_path / "train.yaml"
    cfg = demo_train(small_world, served_world.stac_url, tile_size=256)
    cfg["fit"].update({"n_estimators": 10, "max_depth": 8})
    train.write_text(yaml.safe_dump(cfg))
    r = subprocess.run(
        [sys.executable, "-m", "training", "fit", train, "--labels", small_world.labels_path, "--out", tmp_path / "m", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "cross-validated" in r.stdout
    assert load_model(tmp_path / "m").card["params"]["n_estimators"] == 10
