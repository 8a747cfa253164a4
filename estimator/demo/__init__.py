"""The embedded default: a generated SYNTHETIC world, served on loopback like a real catalog.

``estimator demo`` runs everything (:func:`run_demo`); :func:`example` builds a small world
with a model, a finished run and claims, to try the API on; the rest composes a world step by
step (generate, serve, write a job or a training file for it). Everything it makes is
labeled SYNTHETIC.

The one place that composes the estimator and training. World presets other than the easy one
register their writers with :data:`estimator.demo.world.PRESET_WRITERS` when imported here.
"""

from __future__ import annotations

from estimator.demo import hard_files as _hard_files
from estimator.demo.world import PRESET_WRITERS as _PRESET_WRITERS
from estimator.lazy import exports

_PRESET_WRITERS.setdefault("hard", _hard_files.write_hard_world)

__all__ = [
    "Example",
    "World",
    "WorldSpec",
    "demo_job",
    "demo_train",
    "example",
    "generate_world",
    "label_sample",
    "preset_spec",
    "run_demo",
    "serve_world",
]

_WHERE = {
    "Example": "examples",
    "World": "world",
    "WorldSpec": "world",
    "demo_job": "runner",
    "demo_train": "runner",
    "example": "examples",
    "generate_world": "world",
    "label_sample": "examples",
    "preset_spec": "world",
    "run_demo": "runner",
    "serve_world": "runner",
}

__getattr__, __dir__ = exports(__name__, _WHERE)
