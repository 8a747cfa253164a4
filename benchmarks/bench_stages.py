"""Per-stage throughput on this machine: features kernel and classification, in Mpix/s.

Run:  python benchmarks/bench_stages.py [--model demo/model] [--repeat 5]

Reports the median of --repeat runs for each stage, measured side by side in one process
(these machines are noisy; compare ratios, not absolute numbers across runs). Without
--model, a random forest with the demo settings is fitted on random features.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np

from estimator.bands import REFLECTANCE_BANDS
from estimator.classify import predict_block
from estimator.features import FEATURE_NAMES, compute_features, features_dask


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="model directory (default: a demo-sized forest on random data)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--size", type=int, default=512, help="block edge in pixels")
    ap.add_argument("--dates", type=int, default=18)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    n = args.size
    refl = rng.uniform(0.01, 0.5, size=(len(REFLECTANCE_BANDS), args.dates, n, n)).astype(np.float32)
    refl[:, rng.random((args.dates, n, n)) < 0.35] = np.nan  # about a third cloudy
    mpix = n * n / 1e6

    t_feat = _median_time(lambda: compute_features(refl), args.repeat)
    big = da.from_array(np.concatenate([refl, refl], axis=3), chunks=(-1, -1, n // 2, n // 2))
    with dask.config.set(scheduler="threads"):
        t_feat_dask = _median_time(lambda: features_dask(big).compute(), args.repeat)
    feats = compute_features(refl)

    if args.model:
        from estimator.model import load_model

        est = load_model(args.model).estimator
        label = f"model {args.model}"
    else:
        from sklearn.ensemble import RandomForestClassifier

        from estimator.demo.runner import DEMO_FIT

        X = rng.normal(size=(20000, len(FEATURE_NAMES))).astype(np.float32)
        y = rng.integers(0, 8, size=20000)
        est = RandomForestClassifier(
            n_estimators=DEMO_FIT["n_estimators"], max_depth=DEMO_FIT["max_depth"], n_jobs=1, random_state=0
        ).fit(X, y)
        label = f"random forest {DEMO_FIT['n_estimators']} trees, depth {DEMO_FIT['max_depth']}, random data"
    t_cls = _median_time(lambda: predict_block(feats, est, len(est.classes_)), args.repeat)

    print(f"block {n}x{n} px, {args.dates} dates, {len(FEATURE_NAMES)} features; median of {args.repeat}")
    print(f"features, numpy, 1 thread        : {mpix / t_feat:7.2f} Mpix/s")
    print(f"features, dask threads, 2x block : {2 * mpix / t_feat_dask:7.2f} Mpix/s")
    print(f"classify ({label}), 1 thread: {mpix / t_cls:7.3f} Mpix/s")
    print(f"ratio features/classify (1 thread): {t_cls / t_feat:.1f}x")


if __name__ == "__main__":
    main()
