"""Packed forests decide exactly as scikit-learn does."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from estimator.stages.treeeval import _float32_at_most, pack_forest

N_FEATURES, N_CLASSES = 33, 6


def _training_data(seed: int = 0, n: int = 6000) -> tuple[np.ndarray, np.ndarray]:
    """Six overlapping classes (so trees grow deep) with string labels in unsorted order."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, N_CLASSES, size=n)
    X = rng.normal(size=(n, N_FEATURES)) + 0.8 * np.eye(N_CLASSES, N_FEATURES)[y]
    labels = np.array(["pasture", "coca", "forest", "water", "crop", "urban"])
    return X.astype(np.float32), labels[y]


def _probe(estimator, n: int = 200_000, seed: int = 1) -> np.ndarray:
    """Rows with values exactly on the trees' own thresholds (as float32, either side of the
    float64 threshold) and just next to them, plus ordinary random values."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    trees = estimator.estimators_ if hasattr(estimator, "estimators_") else [estimator]
    for f in range(N_FEATURES):
        thr = np.concatenate([t.tree_.threshold[t.tree_.feature == f] for t in trees]).astype(np.float32)
        thr = thr[np.isfinite(thr)]  # +inf: the "missing or not" splits of a forest fitted with NaN
        rows = rng.random(n) < 0.5
        pick = rng.choice(thr, size=rows.sum())
        nudge = rng.integers(-1, 2, size=pick.size)  # one float32 step down, none, up
        pick = np.where(nudge < 0, np.nextafter(pick, np.float32(-np.inf)), pick)
        X[rows, f] = np.where(nudge > 0, np.nextafter(pick, np.float32(np.inf)), pick)
    return X


def _assert_same_as_sklearn(estimator, X: np.ndarray) -> None:
    pf = pack_forest(estimator)
    got = pf.predict_proba(X)
    want = estimator.predict_proba(X)
    assert got.dtype == np.float32
    assert got.shape == want.shape == (X.shape[0], len(estimator.classes_))
    # Same leaves, summed in the same order in float64: equal up to the final float32 rounding.
    assert np.abs(got - want).max() <= 1e-6
    np.testing.assert_array_equal(got.argmax(axis=1), want.astype(np.float32).argmax(axis=1))
    np.testing.assert_array_equal(got, want.astype(np.float32))


@pytest.fixture(scope="module")
def forest() -> RandomForestClassifier:
    X, y = _training_data()
    return RandomForestClassifier(n_estimators=50, max_depth=20, random_state=0, n_jobs=1).fit(X, y)


def test_random_forest_matches_sklearn_on_thresholds_and_random_rows(forest):
    assert max(t.tree_.max_depth for t in forest.estimators_) >= 15  # deep trees, as in production
    _assert_same_as_sklearn(forest, _probe(forest))


def test_class_order_follows_classes_(forest):
    pf = pack_forest(forest)
    assert pf.n_classes == len(forest.classes_) and pf.n_features == N_FEATURES
    X, _ = _training_data(seed=5, n=2000)
    pred = forest.classes_[pf.predict_proba(X).argmax(axis=1)]
    np.testing.assert_array_equal(pred, forest.predict(X))


def test_balanced_subsample_forest_as_training_fits_it():
    X, y = _training_data(seed=2)
    y[:5000][y[:5000] == "coca"] = "forest"  # make coca rare, so the weights matter
    est = RandomForestClassifier(
        n_estimators=30, max_depth=14, min_samples_leaf=2, class_weight="balanced_subsample", random_state=0, n_jobs=1
    ).fit(X, y)
    _assert_same_as_sklearn(est, _probe(est))


def test_extra_trees_and_single_tree_match_sklearn():
    X, y = _training_data(seed=3)
    for est in (
        ExtraTreesClassifier(n_estimators=20, max_depth=20, random_state=0, n_jobs=1).fit(X, y),
        DecisionTreeClassifier(max_depth=20, random_state=0).fit(X, y),
    ):
        _assert_same_as_sklearn(est, _probe(est, n=50_000))


def test_nan_features_go_where_sklearn_sends_them():
    X, y = _training_data(seed=4)
    X[np.random.default_rng(4).random(X.shape) < 0.05] = np.nan  # fitted with missing values
    est = RandomForestClassifier(n_estimators=10, max_depth=12, random_state=0, n_jobs=1).fit(X, y)
    probe = _probe(est, n=20_000)
    probe[np.random.default_rng(5).random(probe.shape) < 0.1] = np.nan
    _assert_same_as_sklearn(est, probe)


def test_other_estimators_raise_type_error():
    X, y = _training_data(n=300)
    with pytest.raises(TypeError, match="LogisticRegression"):
        pack_forest(LogisticRegression(max_iter=50).fit(X, y))
    multi = RandomForestClassifier(n_estimators=2, random_state=0).fit(X, np.stack([y, y[::-1]], axis=1))
    with pytest.raises(TypeError, match="multi-output"):
        pack_forest(multi)


def test_rejects_wrong_feature_count(forest):
    with pytest.raises(ValueError, match="33"):
        pack_forest(forest).predict_proba(np.zeros((3, 5), dtype=np.float32))


def test_float32_thresholds_decide_as_float64_ones():
    rng = np.random.default_rng(7)
    t = np.concatenate([rng.normal(size=20_000), [0.0, -0.0, 1e-45, 3.5e38, 1e39, -1e39, np.inf]])
    t32 = _float32_at_most(t)
    with np.errstate(over="ignore"):
        near = t.astype(np.float32)
        for x in (near, np.nextafter(near, np.float32(-np.inf)), np.nextafter(near, np.float32(np.inf))):
            np.testing.assert_array_equal(x <= t32, x.astype(np.float64) <= t)
