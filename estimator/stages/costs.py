"""Measured cost figures used to forecast a job (``estimator plan``), per core.

Sources: BENCHMARKS.md (``benchmarks/bench_stages.py``, demo model) and the measurements
quoted in DESIGN.md / the scale issue for reading COG stacks over HTTP. They are medians on
a 2-core development machine; a forecast is an order of magnitude, not a promise.
"""

from __future__ import annotations

__all__ = [
    "BYTES_PER_PX_SLICE",
    "CLASSIFY_MPIX_PER_S",
    "FEATURES_MPIX_PER_S_18",
    "READ_MPIX_PER_S",
    "WORKER_BASE_BYTES",
]

#: Reading a 10-band uint16 COG stack (one date), megapixels per second per core.
READ_MPIX_PER_S = 10.0
#: Temporal features over 18 dates, megapixels per second per core (scales ~1/dates).
FEATURES_MPIX_PER_S_18 = 0.31
#: predict_proba of the demo model (60 trees, depth 14), megapixels per second per core.
CLASSIFY_MPIX_PER_S = 0.9
#: Bytes per pixel and date while one chunk is read, masked, turned into features and
#: classified (see plan.auto_chunk_size): a 1024 px chunk of 6 dates peaked at 760 MiB of
#: traced allocations, 127 B per pixel and date (full-size benchmark world).
BYTES_PER_PX_SLICE = 10 * 4 * 3 + 2
#: Resident memory of a worker process before any chunk (Python, numpy, numba kernels,
#: GDAL, the model): 0.44 GiB measured on LocalCluster workers in bench_fullsize's 512 px
#: smoke run (BENCHMARKS.md), where chunks are tiny.
WORKER_BASE_BYTES = int(0.45 * 2**30)
