"""Measured cost figures used to forecast a job (``estimator plan``), per core.

Sources: BENCHMARKS.md (``benchmarks/bench_stages.py``, demo model) and the measurements
quoted in DESIGN.md / the scale issue for reading COG stacks over HTTP. They are medians on
a 2-core development machine; a forecast is an order of magnitude, not a promise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BYTES_PER_PX_SLICE",
    "CLASSIFY_MPIX_PER_S",
    "FEATURES_MPIX_PER_S_18",
    "READ_MPIX_PER_S",
    "WORKER_BASE_BYTES",
    "ClassifyCost",
    "ReadCost",
    "constant_read_cost",
    "demo_classify_cost",
    "measure_classify",
    "synthetic_rows",
]

#: Reading a 10-band uint16 COG stack (one date), megapixels per second per core, when the
#: plan cannot time a read itself (:func:`estimator.stages.load.measure_read`). On the 2-core development machine
#: the load stage read 1.5 (6 dates) and 0.44 (18 dates, under CPU steal) Mpix x dates per
#: second per core from a loopback COG server (BENCHMARKS.md, full-size tile): the 10 of the
#: earliest estimate overstated it by 7-23x and made the forecast 2.6x short.
READ_MPIX_PER_S = 1.0
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


@dataclass(frozen=True)
class ClassifyCost:
    """The classification throughput a forecast rests on, and where it came from."""

    mpix_per_s: float
    """Pixels classified per second per core, in millions."""
    source: str
    """Where the figure came from, in words a user can check."""
    measured: bool = False
    """True when timed on the job's own model while planning."""


def demo_classify_cost(reason: str) -> ClassifyCost:
    """The constant :data:`CLASSIFY_MPIX_PER_S`, with ``reason`` saying why it stands in."""
    return ClassifyCost(
        CLASSIFY_MPIX_PER_S,
        f"{reason}: the demo model's figure from BENCHMARKS.md ({CLASSIFY_MPIX_PER_S:g} Mpix/s per core); "
        "a forest fitted on real data is often ten times slower",
    )


def synthetic_rows(forest: Any, n_rows: int, n_features: int, seed: int = 0) -> np.ndarray:
    """``(n_rows, n_features)`` float32 feature rows for timing ``forest``.

    The time a tree ensemble takes depends on how deep rows travel, which depends on where
    the rows lie relative to its split thresholds. A forest splits where its training data
    were dense, so each feature is drawn from the thresholds the trees split it at (midpoints
    between training values), independently per feature; rows drawn from a normal
    distribution instead would leave most trees after a few splits. A feature no tree splits
    on (or a model without ``estimators_``/``tree_``) is drawn from a standard normal.
    """
    rng = np.random.default_rng(seed)
    trees = [e.tree_ for e in getattr(forest, "estimators_", [])] or (
        [forest.tree_] if hasattr(forest, "tree_") else []
    )
    thresholds: list[list[np.ndarray]] = [[] for _ in range(n_features)]
    for t in trees:
        split = t.feature >= 0
        for f, thr in zip(t.feature[split], t.threshold[split], strict=True):
            if f < n_features:
                thresholds[f].append(thr)
    out = rng.standard_normal((n_rows, n_features)).astype(np.float32)
    for f, values in enumerate(thresholds):
        if values:
            out[:, f] = rng.choice(np.asarray(values, dtype=np.float64), size=n_rows)
    return out


def measure_classify(predictor: Any, forest: Any, n_features: int, *, seconds: float = 1.0, seed: int = 0) -> ClassifyCost:
    """Time ``predictor.predict_proba`` on :func:`synthetic_rows` in this thread (one core).

    A first call warms caches and compiled code; then batches sized to take about a fifth of
    ``seconds`` each are timed and the median rate is kept. Time is this thread's CPU time:
    the cost per core, which other processes on a shared machine do not inflate.
    """
    rows = synthetic_rows(forest, 4096, n_features, seed)
    predictor.predict_proba(rows[:512])
    start = time.thread_time()
    predictor.predict_proba(rows)
    first = max(time.thread_time() - start, 1e-6)
    n = int(np.clip(4096 * (seconds / 5) / first, 1024, 2_000_000))
    batch = synthetic_rows(forest, n, n_features, seed + 1)
    rates = []
    for _ in range(3):
        start = time.thread_time()
        predictor.predict_proba(batch)
        rates.append(n / max(time.thread_time() - start, 1e-9))
    rate = float(np.median(rates)) / 1e6
    return ClassifyCost(
        rate,
        f"timed while planning: the job's model on {n:,} synthetic feature rows (drawn from its split "
        f"thresholds), median of 3, CPU time of one core, {rate:.3g} Mpix/s",
        measured=True,
    )


def job_classify_cost(model_dir: Any, *, cascade: bool = True, seconds: float = 1.0) -> ClassifyCost:
    """The classification cost of the model a job names: timed (:func:`measure_classify`)
    with the predictor the job would build, or the demo figure when the directory holds no
    model yet (a plan is often made before the model is trained)."""
    from pathlib import Path

    # Imported here: the plan summary imports this module, and a plan without a model must
    # not pay for scikit-learn and dask.
    from estimator.stages.classify import cascade_usable, make_predictor
    from estimator.stages.features import FEATURE_NAMES
    from estimator.stages.model import forest_of, load_model

    path = Path(model_dir)
    if not (path / "model.skops").is_file():
        return demo_classify_cost(f"no model at {path} yet")
    model = load_model(path)
    predictor = make_predictor(model, cascade=cascade)
    cost = measure_classify(predictor, forest_of(model.estimator), len(FEATURE_NAMES), seconds=seconds)
    staged = "with its first stage" if cascade and cascade_usable(model) is None else "full model only"
    return ClassifyCost(cost.mpix_per_s, f"model {model.model_id} ({staged}) {cost.source}", measured=True)


@dataclass(frozen=True)
class ReadCost:
    """The read throughput a forecast rests on, and where it came from."""

    mpix_per_s: float
    """Pixel x date reads per second per core (all bands and SCL of a pixel on one date), in
    millions."""
    source: str
    measured: bool = False
    """True when timed on the job's own scenes while planning."""


def constant_read_cost(reason: str) -> ReadCost:
    """The constant :data:`READ_MPIX_PER_S`, with ``reason`` saying why it stands in."""
    return ReadCost(READ_MPIX_PER_S, f"{reason}: the development machine's figure from BENCHMARKS.md "
                    f"({READ_MPIX_PER_S:g} Mpix x dates/s per core, from a COG server on the same machine); "
                    "a read of the job's own scenes can differ either way")
