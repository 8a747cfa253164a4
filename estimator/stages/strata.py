"""Label-free strata for a cold start (a job with ``model: none``).

In a new region there is no labelled plot, so no model and no class map to stratify a
reference sample by. What a sample design needs is only a partition of the pixels into
strata that are internally alike, so that the variance within each stratum is small, and
a way to put more units where the rare class probably is. Both come from the very temporal
features the classifier uses (:mod:`estimator.stages.features`):

- **clusters**: scikit-learn's ``MiniBatchKMeans`` on the standardised features of a seeded
  subsample of clear pixels. Pixels of one cluster look alike over the whole period (forest,
  water, bare soil, fields), which is what makes a stratified estimator better than a simple
  random sample of the same size. Clusters are numbered by their centre's median NDVI
  (``k1`` the least green), so that their names do not depend on k-means' internal order.
- **harvest** (``harvest_rule``): pixels whose NDVI drops sharply and often between clear
  observations (:data:`HARVEST_RATE_MIN` of consecutive pairs, at least
  :data:`HARVEST_DROP_MIN` deep) while being green between drops, though less than closed
  canopy (:data:`GREEN_P90_MIN`, :data:`GREEN_P90_MAX`): the dynamics of a small crop stripped
  several times a year, such as coca. (A "near forest" condition would need each pixel's
  neighbourhood across chunk edges, an overlap the per-block kernel does not have; the
  clusters already separate forest.) Such pixels are few
  and scattered among large clusters; as a stratum of their own they get the minimum
  number of sample units per stratum instead of a share proportional to their tiny area,
  which is where a sample for a rare class gains most. The rule is a design choice, not a
  classifier: coca outside it is still counted, through the clusters' sample units.

Only the design's efficiency depends on these choices; the estimate stays unbiased whatever
the strata (Stehman 2014), because every pixel lies in exactly one stratum of known size.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.cluster import MiniBatchKMeans
from sklearn.preprocessing import StandardScaler

from estimator.stages.features import FEATURE_NAMES
from estimator.stages.model import Model

__all__ = [
    "GREEN_P90_MAX",
    "GREEN_P90_MIN",
    "HARVEST_DROP_MIN",
    "HARVEST_RATE_MIN",
    "HARVEST_STRATUM",
    "StrataClassifier",
    "fit_strata",
    "harvest_like",
    "strata_model",
]

#: Name of the rule stratum.
HARVEST_STRATUM = "harvest"
# The rule's thresholds were chosen on development seed 1 of the SYNTHETIC hard world
# (docs/cold_start.md), where undetected haze and cloud edges give closed forest as many
# "drops" as coca: what sets coca apart there is a canopy that never gets as green as forest.
# On real imagery they are a starting point; the design stays valid whatever they are.
#: Share of consecutive clear observations with a harvest-like NDVI drop (``ndvi_drop_rate``).
HARVEST_RATE_MIN = 0.10
#: Deepest NDVI drop between consecutive clear observations (``ndvi_max_drop``).
HARVEST_DROP_MIN = 0.15
#: 90th percentile of NDVI: green between harvests (bare soil and water drop too, but never green) ...
GREEN_P90_MIN = 0.55
#: ... but less green than closed canopy (forest's 90th percentile of NDVI is above it).
GREEN_P90_MAX = 0.79

_RATE = FEATURE_NAMES.index("ndvi_drop_rate")
_DROP = FEATURE_NAMES.index("ndvi_max_drop")
_P90 = FEATURE_NAMES.index("ndvi_p90")
_NDVI = FEATURE_NAMES.index("ndvi_median")


def harvest_like(X: np.ndarray) -> np.ndarray:
    """Rows of ``X`` (pixels x :data:`FEATURE_NAMES`) whose NDVI shows repeated harvest-like drops."""
    p90 = X[:, _P90]
    return (X[:, _RATE] >= HARVEST_RATE_MIN) & (X[:, _DROP] >= HARVEST_DROP_MIN) & (p90 >= GREEN_P90_MIN) & (p90 < GREEN_P90_MAX)


@dataclass
class StrataClassifier:
    """Assigns pixels to strata; ``predict_proba`` returns one-hot rows so that the
    classifier's per-block machinery (:mod:`estimator.stages.classify`) writes strata."""

    scaler: StandardScaler
    kmeans: MiniBatchKMeans
    order: np.ndarray
    """Cluster index of k-means -> stratum index (clusters ranked by median NDVI)."""
    harvest_rule: bool
    classes_: tuple[str, ...]

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        out = self.order[self.kmeans.predict(self.scaler.transform(X).astype(np.float32))]
        if self.harvest_rule:
            out = np.where(harvest_like(X), len(self.classes_) - 1, out)
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        idx = self.predict(X)
        out = np.zeros((len(idx), len(self.classes_)), dtype=np.float32)
        out[np.arange(len(idx)), idx] = 1.0
        return out

    def describe(self) -> list[dict[str, Any]]:
        """Per stratum: how it was made and its centre's NDVI figures (for the manifest and report)."""
        centres = self.scaler.inverse_transform(self.kmeans.cluster_centers_)
        rows = []
        for k, name in enumerate(self.classes_[: len(self.order)]):
            c = centres[int(np.flatnonzero(self.order == k)[0])]
            rows.append({
                "stratum": name, "made_by": "k-means cluster of the temporal features",
                "centre_ndvi_median": round(float(c[_NDVI]), 3) + 0.0, "centre_ndvi_drop_rate": round(float(c[_RATE]), 3) + 0.0,
            })
        if self.harvest_rule:
            rows.append({
                "stratum": HARVEST_STRATUM,
                "made_by": f"rule: ndvi_drop_rate at least {HARVEST_RATE_MIN}, ndvi_max_drop at least {HARVEST_DROP_MIN}, "
                f"ndvi_p90 from {GREEN_P90_MIN} to below {GREEN_P90_MAX}",
            })
        return rows

    def identity(self) -> str:
        """sha256 of what decides a pixel's stratum (centres, scaling, rule)."""
        blob = json.dumps([
            np.round(self.kmeans.cluster_centers_, 6).tolist(), np.round(self.scaler.mean_, 6).tolist(),
            np.round(self.scaler.scale_, 6).tolist(), self.order.tolist(), self.harvest_rule,
            [HARVEST_RATE_MIN, HARVEST_DROP_MIN, GREEN_P90_MIN, GREEN_P90_MAX], list(FEATURE_NAMES),
        ]).encode()
        return hashlib.sha256(blob).hexdigest()


def fit_strata(X: np.ndarray, clusters: int, *, seed: int = 0, harvest_rule: bool = True) -> StrataClassifier:
    """Fit the strata on a subsample ``X`` (pixels x :data:`FEATURE_NAMES`) of clear pixels.

    Pixels the harvest rule takes are left out of the clustering (they form their own stratum).
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != len(FEATURE_NAMES):
        raise ValueError(f"expected (pixels, {len(FEATURE_NAMES)}) features, got {X.shape}")
    X = X[np.isfinite(X).all(axis=1)]
    rest = X[~harvest_like(X)] if harvest_rule else X
    if len(rest) < clusters * 10:
        raise ValueError(
            f"only {len(rest)} clear pixels to fit {clusters} clusters on; the regions hold too few clear observations "
            "(lower strata.clusters or widen the period)"
        )
    scaler = StandardScaler().fit(rest)
    km = MiniBatchKMeans(n_clusters=clusters, random_state=seed, n_init=3, batch_size=4096).fit(scaler.transform(rest))
    ndvi = scaler.inverse_transform(km.cluster_centers_)[:, _NDVI]
    order = np.empty(clusters, dtype=np.int64)
    order[np.argsort(ndvi, kind="stable")] = np.arange(clusters)
    names = tuple(f"k{i + 1}" for i in range(clusters)) + ((HARVEST_STRATUM,) if harvest_rule else ())
    return StrataClassifier(scaler, km, order, harvest_rule, names)


def strata_model(strata: StrataClassifier) -> Model:
    """The strata in the shape of a :class:`Model`, so that tiles are computed, checkpointed
    and summed by the same code as a classified job. Its "target" is the rule stratum (the
    last cluster without one): the map of where a sample should look hardest."""
    digest = strata.identity()
    card = {"strata": strata.describe(), "target_class": strata.classes_[-1]}
    return Model(strata, strata.classes_, strata.classes_[-1], card, "none", digest, Path("none"))
