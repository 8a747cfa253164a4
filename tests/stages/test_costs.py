"""The plan's classification cost: timed on the job's model, or the demo figure, said so."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from estimator.stages.costs import CLASSIFY_MPIX_PER_S, job_classify_cost, measure_classify, synthetic_rows


def _forest(depth: int) -> RandomForestClassifier:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 5))
    y = (X[:, 0] + rng.standard_normal(2000) > 0).astype(int)
    return RandomForestClassifier(n_estimators=5, max_depth=depth, random_state=0).fit(X, y)


def test_synthetic_rows_lie_where_the_forest_splits():
    f = _forest(6)
    rows = synthetic_rows(f, 500, 5, seed=1)
    thr = np.concatenate([t.tree_.threshold[t.tree_.feature == 0] for t in f.estimators_])
    assert rows.shape == (500, 5) and rows.dtype == np.float32
    assert set(np.round(rows[:, 0], 4)) <= set(np.round(thr.astype(np.float32), 4))


def test_a_deeper_forest_measures_slower():
    shallow = measure_classify(_forest(2), _forest(2), 5, seconds=0.2)
    deep = _forest(14)
    slow = measure_classify(deep, deep, 5, seconds=0.2)
    assert shallow.measured and "synthetic feature rows" in shallow.source
    assert slow.mpix_per_s < shallow.mpix_per_s


def test_no_model_yet_falls_back_to_the_demo_figure_and_says_so(tmp_path):
    cost = job_classify_cost(tmp_path / "missing")
    assert not cost.measured and cost.mpix_per_s == CLASSIFY_MPIX_PER_S
    assert "no model at" in cost.source and "BENCHMARKS.md" in cost.source
