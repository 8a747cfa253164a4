"""The embedded default: a generated SYNTHETIC world, served on loopback like a real catalog.

``estimator demo`` runs everything (:func:`run_demo`); :func:`example` builds a small world
with a model, a finished run and claims, to try the API on; the rest composes a world step by
step (generate, serve, write a job or a training file for it). Everything it makes is
labeled SYNTHETIC.
"""

from __future__ import annotations

from estimator.lazy import exports

__all__ = [
    "Example",
    "World",
    "WorldSpec",
    "demo_job",
    "demo_train",
    "example",
    "generate_world",
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
    "run_demo": "runner",
    "serve_world": "runner",
}

__getattr__, __dir__ = exports(__name__, _WHERE)
