"""The demo: a generated, Sentinel-2-L2A-like world with known truth, and the runner that
generates, serves, trains, runs, samples, assesses and compares on it.

The one place that composes the estimator and training. World presets other than the easy one
register their writers with :data:`estimator.demo.world.PRESET_WRITERS` when imported here.
"""

from estimator.demo import hard_files as _hard_files
from estimator.demo.world import PRESET_WRITERS as _PRESET_WRITERS

_PRESET_WRITERS.setdefault("hard", _hard_files.write_hard_world)

__all__: list[str] = []
