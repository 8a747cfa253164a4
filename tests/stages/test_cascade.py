"""The cascade: a small first stage drops pixels that are surely not coca, the full model
classifies the survivors; its recall is measured out of fold at training."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from estimator.errors import ModelFileError
from estimator.stages.classify import Predictor, cascade_usable, make_predictor
from estimator.stages.features import FEATURE_NAMES
from estimator.stages.model import load_model
from training.fit import recall_threshold, save_model

CLASSES = ("coca", "forest", "water")


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.choice(np.array(CLASSES), size=n, p=[0.1, 0.6, 0.3])
    X = rng.normal(size=(n, len(FEATURE_NAMES))).astype(np.float32)
    X[:, 0] += np.where(y == "coca", 2.0, np.where(y == "water", -2.0, 0.0))
    X[:, 1] += np.where(y == "coca", 1.0, 0.0)
    return X, y


@pytest.fixture
def forests():
    X, y = _data(3000)
    full = RandomForestClassifier(n_estimators=20, max_depth=10, random_state=0).fit(X, y)
    small = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(X, y)
    return full, small


def test_recall_threshold_keeps_the_requested_share():
    p = np.arange(1000) / 1000.0  # 0.000 .. 0.999
    t = recall_threshold(p, 0.99)
    assert np.mean(p >= t) >= 0.99 and np.mean(p >= t + 1e-9) < 0.99
    assert recall_threshold(np.array([0.3, 0.3, 0.3]), 0.999) == 0.3
    assert recall_threshold(np.array([]), 0.99) == 0.0


def test_survivors_get_the_full_model_and_the_rest_the_first_stage(forests):
    full, small = forests
    X, _ = _data(20000, seed=1)
    t = list(full.classes_).index("coca")
    p1 = small.predict_proba(X)
    threshold = float(np.quantile(p1[:, t], 0.7))
    got = Predictor(full, small, threshold, t).predict_proba(X)
    keep = p1[:, t] >= threshold
    assert 0.2 < keep.mean() < 0.4  # the test exercises both paths
    np.testing.assert_allclose(got[keep], full.predict_proba(X[keep]), atol=1e-6)
    np.testing.assert_allclose(got[~keep], p1[~keep], atol=1e-6)
    assert got.dtype == np.float32


def test_threshold_zero_is_the_full_model(forests):
    full, small = forests
    X, _ = _data(5000, seed=2)
    got = Predictor(full, small, 0.0, 0).predict_proba(X)
    np.testing.assert_allclose(got, full.predict_proba(X), atol=1e-6)


def _save_with_cascade(tmp_path, forests):
    full, small = forests
    card = {
        "features": list(FEATURE_NAMES), "classes": list(full.classes_), "target_class": "coca",
        "cascade": {"threshold": 0.2, "recall_cv": 0.999},
    }
    return save_model(tmp_path / "m", full, card, small)


def test_model_with_cascade_round_trips_and_names_it_in_its_identity(tmp_path, forests):
    model = _save_with_cascade(tmp_path, forests)
    assert model.cascade is not None and model.cascade_threshold == 0.2
    assert model.identity != model.sha256
    pred = make_predictor(model)
    assert pred.stage1 is not None and pred.threshold == 0.2
    assert make_predictor(model, cascade=False).stage1 is None


def test_tampered_first_stage_is_refused(tmp_path, forests):
    model = _save_with_cascade(tmp_path, forests)
    with open(model.path / "cascade.skops", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelFileError, match="sha256"):
        load_model(model.path)
    (model.path / "cascade.skops").unlink()
    with pytest.raises(ModelFileError, match="missing"):
        load_model(model.path)


def test_small_demo_first_stage_is_measured_and_worth_having(trained_model):
    """Recall is measured out of fold (the 99.5 % floor is checked on the full demo world in
    tests/demo/test_demo.py; this small world has a handful of coca plots)."""
    info = json.loads((trained_model.path / "card.json").read_text())["cascade"]
    assert 0.0 < info["threshold"] < 1.0 and info["margin"] == 0.5
    assert info["recall_cv"] >= 0.98, info
    # most non-coca pixels skip the full model
    assert info["pass_fraction_other_cv"] < 0.5, info


def test_first_stage_below_the_recall_floor_is_not_used(tmp_path, forests):
    model = _save_with_cascade(tmp_path, forests)
    card = {**model.card, "cascade": {**model.card["cascade"], "recall_cv": 0.99}}
    low = replace(model, card=card)
    assert "below 0.995" in str(cascade_usable(low))
    assert make_predictor(low).stage1 is None


def test_cascade_changes_coca_area_by_under_half_a_percent(small_run, tmp_path):
    """Same job with and without the first stage: mapped coca within 0.5 %."""
    from estimator.run.pipeline import run

    job, fast = small_run
    slow = run(job.model_copy(update={
        "output": tmp_path / "full", "classify": job.classify.model_copy(update={"cascade": False}),
    }), progress=False)
    assert fast.manifest["model"]["cascade"]["used"], fast.manifest["model"]["cascade"]
    assert slow.manifest["model"]["cascade"] == {**fast.manifest["model"]["cascade"], "used": False, "reason": "disabled by classify.cascade"}

    def coca(res):
        return sum(r["mapped_area_ha"] for r in res.records if r["class"] == "coca")

    assert coca(slow) > 0
    assert abs(coca(fast) - coca(slow)) / coca(slow) < 0.005, (coca(fast), coca(slow))


def test_sieve_merges_small_patches_and_leaves_sliver_tiles_alone():
    from estimator.stages.classify import sieve_codes

    codes = np.full((20, 20), 2, np.uint8)
    codes[5:7, 5:7] = 1  # 4 px patch, under a 10 px unit
    codes[10:15, 10:15] = 1  # 25 px patch, kept
    codes[0, :] = 0  # unobserved row stays unobserved
    out, changed = sieve_codes(codes, 10)
    assert changed == 4 and (out[5:7, 5:7] == 2).all() and (out[10:15, 10:15] == 1).all() and (out[0] == 0).all()
    # a 2 x 3 px tile at the grid's edge is smaller than the unit: left as it is
    tiny = np.array([[1, 2, 2], [2, 2, 2]], np.uint8)
    assert sieve_codes(tiny, 10) == (tiny, 0)
