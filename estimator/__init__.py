"""Coca cultivation estimates from Sentinel-2 L2A imagery, with coverage, per region.

Stages (one module each): search -> plan -> load -> mask -> features -> classify ->
aggregate -> estimate; ``pipeline.run`` chains them. See DESIGN.md for the data flow.
"""

from .config import JobConfig, TrainConfig, load_job, load_train
from .errors import EstimatorError
from .pipeline import RunResult, run

__all__ = ["EstimatorError", "JobConfig", "RunResult", "TrainConfig", "load_job", "load_train", "run"]
