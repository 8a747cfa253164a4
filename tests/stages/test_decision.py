"""The decision rule (a target threshold chosen so that commission equals omission) and the
model-based area (sum of calibrated target probabilities)."""

from __future__ import annotations

import dataclasses

import numpy as np

from estimator.regions.geometry import Region
from estimator.stages.aggregate import TilePartial, aggregate_tile, reduce_partials
from estimator.stages.classify import class_codes
from estimator.stages.estimate import mapped_records
from estimator.stages.model import Model
from training.fit import area_threshold


def test_threshold_makes_commission_equal_omission():
    rng = np.random.default_rng(0)
    classes = np.array(["coca", "forest", "pasture"])
    y = rng.choice(classes, size=2000, p=[0.2, 0.5, 0.3])
    # Probabilities that over-predict coca: every forest pixel leans towards coca.
    p_coca = np.where(y == "coca", rng.uniform(0.3, 1.0, y.size), np.where(y == "forest", rng.uniform(0.0, 0.6, y.size), rng.uniform(0.0, 0.2, y.size)))
    rest = (1 - p_coca)[:, None] * np.column_stack([np.full(y.size, 0.5), np.full(y.size, 0.5)])
    proba = np.column_stack([p_coca, rest])
    d = area_threshold(y, proba, classes, "coca", "test folds")
    at = d["oof_at_threshold"]
    n_true = int((y == "coca").sum())
    assert int((p_coca >= d["threshold"]).sum()) == n_true
    assert at["commission_pixels"] == at["omission_pixels"] > 0
    assert at["mapped_over_true"] == 1.0
    # The argmax rule maps more coca than there is here, which the threshold removes.
    assert d["oof_argmax"]["mapped_over_true"] > 1.2
    assert d["rule"] == "target_threshold" and "commission" in d["chosen_on"]


def test_class_codes_apply_threshold_else_most_probable_other():
    # classes: coca, forest, pasture; 4 pixels and one unobserved.
    probs = np.array([
        [0.40, 0.20, 0.60, 0.10, np.nan],
        [0.35, 0.50, 0.30, 0.20, np.nan],
        [0.25, 0.30, 0.10, 0.70, np.nan],
    ], dtype=np.float32)[:, None, :]
    assert class_codes(probs).ravel().tolist() == [1, 2, 1, 3, 0]
    assert class_codes(probs, target=0, threshold=0.5).ravel().tolist() == [2, 2, 1, 3, 0]
    assert class_codes(probs, target=0, threshold=0.15).ravel().tolist() == [1, 1, 1, 3, 0]


def _model(card: dict) -> Model:
    return Model(None, ("coca", "forest"), "coca", card, "x", "x", None)  # type: ignore[arg-type]


def test_model_reads_threshold_only_from_a_card_that_has_one():
    assert _model({"target_class": "coca"}).decision_threshold is None  # an old model: argmax
    card = {"target_class": "coca", "decision": {"rule": "target_threshold", "threshold": 0.61}}
    assert _model(card).decision_threshold == 0.61
    other = dataclasses.replace(_model(card), target_class="forest")
    assert other.decision_threshold is None  # chosen for coca, not for another target


def test_model_based_area_is_the_probability_sum():
    codes = np.array([[1, 2, 0], [1, 1, 2]], dtype=np.uint8)
    prob = np.array([[0.9, 0.2, np.nan], [0.6, 0.7, 0.1]], dtype=np.float32)
    area = np.array([[100.0, 100.0, 100.0], [120.0, 120.0, 120.0]])
    masks = np.ones((1, 2, 3), dtype=bool)
    zeros = np.zeros((2, 3))
    part = aggregate_tile("t", codes, ("coca", "forest"), ["r"], masks, area, zeros, zeros, target_prob=prob)
    expected = 0.9 * 100 + 0.2 * 100 + 0.6 * 120 + 0.7 * 120 + 0.1 * 120
    assert np.isclose(part.regions["r"].target_prob_m2, expected)
    again = TilePartial.from_json(part.to_json())
    totals = reduce_partials([again, again], ["r"])
    assert np.isclose(totals["r"].target_prob_m2, 2 * expected)
    region = Region("r", None, "R")  # type: ignore[arg-type]
    recs = mapped_records(totals, [region], ("coca", "forest"), period="p", model_id="m", synthetic=True, target_class="coca")
    by = {r["class"]: r for r in recs}
    assert np.isclose(by["coca"]["model_based_area_ha"], 2 * expected / 1e4, atol=1e-4)
    assert by["forest"]["model_based_area_ha"] is None
    assert by["coca"]["area_ha"] == by["coca"]["mapped_area_ha"]  # the mapped area is untouched
