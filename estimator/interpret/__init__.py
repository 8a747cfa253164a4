"""Photo-interpretation of a reference sample: a local web page (``estimator interpret``).

``answers`` keeps the sample file as the answer sheet (one locked, atomic write per answer);
``imagery`` reads each unit's chips and index series from the run's own scenes through the
estimator's planning and loading code; ``server`` serves the page on 127.0.0.1 with the
standard library.

Imports the foundation, ``regions``, ``stages``, ``run`` and ``stats`` (the sample format).
"""

from __future__ import annotations

from estimator.lazy import exports

__all__ = ["AnswerStore", "InterpretApp", "make_server", "open_app", "open_scenes"]

_WHERE = {
    "AnswerStore": "answers",
    "InterpretApp": "server",
    "make_server": "server",
    "open_app": "server",
    "open_scenes": "imagery",
}

__getattr__, __dir__ = exports(__name__, _WHERE)
