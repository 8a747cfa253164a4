"""The demo world's truth as interpreters: labels a reference sample from ``truth_class.tif``.

Interpreter 1 reads the truth at each sample point; interpreter 2 does too but, like a
hurried human, picks another class for a small share of points; the consensus (the
adjudicator) is the truth wherever they disagree. Everything it labels is SYNTHETIC.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import rasterio
from pyproj import Transformer

from estimator.demo.world import DEMO_CLASSES, World

__all__ = ["label_with_truth"]


def label_with_truth(sample: dict[str, Any], world: World, *, disagreement: float = 0.03, seed: int = 0) -> dict[str, Any]:
    """Return a copy of ``sample`` with interpreter and consensus labels from the truth."""
    out = copy.deepcopy(sample)
    rng = np.random.default_rng(seed)
    feats = out["features"]
    lon = np.array([f["geometry"]["coordinates"][0] for f in feats])
    lat = np.array([f["geometry"]["coordinates"][1] for f in feats])
    with rasterio.open(world.truth_class_path) as src:
        x, y = Transformer.from_crs("EPSG:4326", src.crs, always_xy=True).transform(lon, lat)
        codes = np.array([v[0] for v in src.sample(zip(x, y, strict=True))])
    for f, code in zip(feats, codes, strict=True):
        truth = DEMO_CLASSES[int(code) - 1]
        second = truth
        if rng.random() < disagreement:
            second = str(rng.choice([c for c in DEMO_CLASSES if c != truth]))
        f["properties"].update(
            interpreter_1=truth, interpreter_2=second, consensus=truth if second != truth else None
        )
    out["sampling"]["labeled_by"] = "SYNTHETIC oracle: demo-world truth (interpreter 2 errs on purpose)"
    return out
