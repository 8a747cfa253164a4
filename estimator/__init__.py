"""Coca cultivation estimates from Sentinel-2 L2A imagery, with coverage, per region.

The Python API an analyst uses in a notebook; every command of ``estimator`` has its
function here, and they share one implementation:

- :func:`load_job` and :func:`run`: run a job (``estimator run``) and get its :class:`Run`;
- :func:`open_run`: any finished run directory, local or an fsspec URL, as a :class:`Run`
  whose ``estimates`` are a pandas DataFrame, ``maps`` an xarray Dataset and ``plots`` a
  GeoDataFrame;
- :func:`sample`, :func:`assess` and :func:`compare`: the reference sample, error-adjusted
  areas and claims verdicts (``estimator sample|assess|compare``).

Stages (one module each, in ``estimator.stages``): search -> plan -> load -> mask ->
features -> classify -> aggregate -> estimate; ``estimator.run.pipeline.run`` chains them.
docs/architecture.md maps the packages and the direction of their imports.

Names are imported lazily so that light entry points (``python -m estimator.testing.servers``)
start in a tenth of a second instead of importing dask and scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from estimator.claims.compare import compare_claims as compare
    from estimator.config import JobConfig, TrainConfig, load_job, load_train
    from estimator.errors import EstimatorError
    from estimator.run.pipeline import RunResult
    from estimator.run.pipeline import run as run
    from estimator.run.rundir import Assessment, Comparison, Manifest, Run
    from estimator.run.rundir import read_run as open_run
    from estimator.stats.assess import assess_reference as assess
    from estimator.stats.designs import sample as sample

__all__ = [
    "Assessment",
    "Comparison",
    "EstimatorError",
    "JobConfig",
    "Manifest",
    "Run",
    "RunResult",
    "TrainConfig",
    "assess",
    "compare",
    "load_job",
    "load_train",
    "open_run",
    "run",
    "sample",
]

#: Public name -> "module" (same name there) or "module:name".
_WHERE = {
    "JobConfig": "config", "TrainConfig": "config", "load_job": "config", "load_train": "config",
    "EstimatorError": "errors",
    "RunResult": "run.pipeline", "run": "run.pipeline",
    "Run": "run.rundir", "Manifest": "run.rundir", "Assessment": "run.rundir", "Comparison": "run.rundir",
    "open_run": "run.rundir:read_run",
    "sample": "stats.designs:sample",
    "assess": "stats.assess:assess_reference",
    "compare": "claims.compare:compare_claims",
}

# The subpackage ``estimator.run`` shares its name with the function ``run``. Importing a
# package binds it on its parent once, when first loaded: load the (light, lazy) subpackage
# now and drop that binding, so that ``estimator.run`` resolves to the function below.
importlib.import_module(f"{__name__}.run")
del globals()["run"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        module, _, attr = _WHERE[name].partition(":")
        value = getattr(importlib.import_module(f".{module}", __name__), attr or name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'estimator' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
