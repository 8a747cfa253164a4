"""Coca cultivation estimates from Sentinel-2 L2A imagery, with coverage, per region.

Stages (one module each, in ``estimator.stages``): search -> plan -> load -> mask ->
features -> classify -> aggregate -> estimate; ``estimator.run.pipeline.run`` chains them.
docs/architecture.md maps the packages and the direction of their imports.

Names are imported lazily so that light entry points (``python -m estimator.testing.servers``)
start in a tenth of a second instead of importing dask and scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["EstimatorError", "JobConfig", "RunResult", "TrainConfig", "load_job", "load_train", "run"]

_WHERE = {
    "JobConfig": "config", "TrainConfig": "config", "load_job": "config", "load_train": "config",
    "EstimatorError": "errors", "RunResult": "run.pipeline", "run": "run.pipeline",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'estimator' has no attribute {name!r}")
