"""Label-free strata (cold start): the job's `model: none` validation and the strata kernel."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from estimator.config import load_job
from estimator.errors import ConfigError
from estimator.stages.features import FEATURE_NAMES
from estimator.stages.strata import HARVEST_STRATUM, fit_strata, harvest_like, strata_model

COLD = """
stac: {url: "http://127.0.0.1:1/"}
period: {start: 2022-01-01, end: 2022-12-31}
regions: {file: regions.geojson}
model: none
classes: [coca, forest, pasture]
"""


def _job(tmp_path: Path, text: str):
    p = tmp_path / "job.yaml"
    p.write_text(text)
    return load_job(p)


def test_model_none_is_a_cold_start_with_default_strata(tmp_path):
    job = _job(tmp_path, COLD)
    assert job.cold_start and job.model == "none" and job.classes == ("coca", "forest", "pasture")
    assert job.strata_config.clusters == 8 and job.strata_config.harvest_rule
    assert _job(tmp_path, COLD.replace("model: none", "model: None") + "strata: {clusters: 4}\n").strata_config.clusters == 4


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("classes: [coca, forest, pasture]\n", ""), "model: none needs `classes:`"),
        (lambda t: t.replace("[coca, forest, pasture]", "[forest, pasture]"), "target_class 'coca' is not in classes"),
        (lambda t: t.replace("[coca, forest, pasture]", "[coca, coca]"), "must be distinct"),
        (lambda t: t.replace("model: none", "model: models/m"), "apply only to a cold start (model: none)"),
        (lambda t: t.replace("model: none\nclasses: [coca, forest, pasture]", "model: models/m\nstrata: {clusters: 3}"),
         "strata apply only to a cold start"),
        (lambda t: t + "strata: {clusters: 1}\n", "key 'strata.clusters'"),
        (lambda t: t + "strata: {clustres: 3}\n", "unknown key 'strata.clustres'"),
    ],
)
def test_misused_cold_start_is_a_one_line_error(tmp_path, edit, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as e:
        _job(tmp_path, edit(COLD))
    assert "\n" not in str(e.value)


def _pixels(n: int, rng: np.random.Generator) -> np.ndarray:
    """Two well separated kinds of pixel (bright bare / dense green) plus a few harvest-like ones."""
    X = rng.normal(0, 0.01, size=(n, len(FEATURE_NAMES))).astype(np.float32)
    nd = FEATURE_NAMES.index("ndvi_median")
    X[: n // 2, nd] += 0.15
    X[n // 2 :, nd] += 0.85
    X[:, FEATURE_NAMES.index("ndvi_p90")] = X[:, nd] + 0.05
    X[:, FEATURE_NAMES.index("ndvi_drop_rate")] = 0.0
    X[:, FEATURE_NAMES.index("ndvi_max_drop")] = 0.02
    h = slice(n - 20, n)
    X[h, FEATURE_NAMES.index("ndvi_drop_rate")] = 0.3
    X[h, FEATURE_NAMES.index("ndvi_max_drop")] = 0.4
    X[h, FEATURE_NAMES.index("ndvi_p90")] = 0.7  # green between harvests, less than canopy
    return X


def test_strata_are_clusters_ranked_by_ndvi_plus_the_harvest_rule():
    X = _pixels(2000, np.random.default_rng(0))
    s = fit_strata(X, 2, seed=0)
    assert s.classes_ == ("k1", "k2", HARVEST_STRATUM)
    got = s.predict(X)
    assert (got[:1000] == 0).all() and (got[1000:1980] == 1).all() and (got[1980:] == 2).all()
    p = s.predict_proba(X)
    assert p.dtype == np.float32 and np.array_equal(p.argmax(axis=1), got) and np.array_equal(p.sum(axis=1), np.ones(len(X)))
    assert harvest_like(X).sum() == 20
    canopy = X[h_rows := slice(1980, 2000)].copy()
    canopy[:, FEATURE_NAMES.index("ndvi_p90")] = 0.85  # as many drops, but closed canopy: not the rule
    assert not harvest_like(canopy).any() and harvest_like(X[h_rows]).all()
    # Seeded: the same subsample gives the same strata and identity.
    assert fit_strata(X, 2, seed=0).identity() == s.identity() != fit_strata(X, 2, seed=0, harvest_rule=False).identity()
    model = strata_model(s)
    assert model.model_id == "none" and model.classes == s.classes_ and model.target_class == HARVEST_STRATUM
    assert [d["stratum"] for d in model.card["strata"]] == list(s.classes_)


def test_without_the_rule_every_pixel_is_clustered():
    X = _pixels(600, np.random.default_rng(1))
    s = fit_strata(X, 3, seed=0, harvest_rule=False)
    assert s.classes_ == ("k1", "k2", "k3") and set(np.unique(s.predict(X))) <= {0, 1, 2}


def test_too_few_clear_pixels_is_refused():
    X = _pixels(60, np.random.default_rng(2))
    X[:, 0] = np.nan  # unobserved
    with pytest.raises(ValueError, match="clear pixels to fit"):
        fit_strata(X, 4)
