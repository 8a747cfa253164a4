"""Design-based statistics on a finished run: stratified samples for reference labelling
(``sample``), error-adjusted areas with confidence intervals (``area``: Olofsson et al. 2014,
Stehman 2014) and their application to a run (``assess``).

Imports the foundation, ``regions``, ``stages``, ``report`` and ``run`` (the run directory).
"""

from __future__ import annotations

from estimator.lazy import exports

__all__ = [
    "LABEL_FIELDS",
    "SAMPLE_SCHEMA",
    "AreaSampleError",
    "OlofssonResult",
    "ReferenceLike",
    "ReferenceSample",
    "StehmanResult",
    "Stratum",
    "allocate",
    "assess_reference",
    "assess_run",
    "draw_sample",
    "olofsson",
    "read_reference",
    "sample_frame",
    "sample_run",
    "sample_size",
    "stehman",
    "stratum_id",
    "stratum_table",
]

_WHERE = {
    "AreaSampleError": "area",
    "LABEL_FIELDS": "sample",
    "OlofssonResult": "area",
    "ReferenceLike": "assess",
    "ReferenceSample": "assess",
    "SAMPLE_SCHEMA": "sample",
    "StehmanResult": "area",
    "Stratum": "sample",
    "allocate": "area",
    "assess_reference": "assess",
    "assess_run": "assess",
    "draw_sample": "sample",
    "olofsson": "area",
    "read_reference": "assess",
    "sample_frame": "sample",
    "sample_run": "sample",
    "sample_size": "area",
    "stehman": "area",
    "stratum_id": "sample",
    "stratum_table": "sample",
}

__getattr__, __dir__ = exports(__name__, _WHERE)
