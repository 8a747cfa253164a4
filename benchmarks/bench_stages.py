"""Per-stage throughput on this machine: features kernel and classification, in Mpix/s.

Run:  python benchmarks/bench_stages.py [--model DEMO/model] [--world DEMO/world] [--repeat 5]

Reports the median of --repeat runs for each variant, all measured side by side in one
process (these machines are noisy; compare ratios, not absolute numbers across runs):

* features: the vectorised numpy reference (tests/features_reference.py) against the
  compiled kernel (estimator.stages.features), 1 thread; and the kernel on dask threads;
* classification: scikit-learn ``predict_proba`` (n_jobs=1) against
  ``estimator.stages.treeeval.PackedForest.predict_proba``, 1 thread, on the block's observed
  pixels, for the --model and for a "realistic" forest (100 trees, depth 20) fitted here.

With --world (a demo world directory), the block is the world's top-left corner read from
its COGs and masked by SCL, and the realistic forest learns the world's true classes; without
it, reflectance, labels and (without --model) the model are random.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window
from sklearn.ensemble import RandomForestClassifier

from estimator.bands import REFLECTANCE_BANDS, SCL_CLEAR_DEFAULT
from estimator.stages.features import FEATURE_NAMES, compute_features, features_dask
from estimator.stages.mask import clear_mask
from estimator.stages.treeeval import pack_forest

# The numpy features kernel now lives with the tests, as the compiled kernel's reference.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.features_reference import reference_features


def _median_time(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _read(path: Path, n: int, resampling: Resampling) -> np.ndarray:
    """The top-left ``n`` x ``n`` block of the 10 m grid from a COG at 10 or 20 m."""
    with rasterio.open(path) as ds:
        w = round(n * 10 / ds.res[0])
        return ds.read(1, window=Window(0, 0, w, w), out_shape=(n, n), resampling=resampling)


def _world_block(world: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Masked reflectance ``(band, time, n, n)`` of a demo world, and its true class codes."""
    items = [json.loads(line) for line in (world / "stac" / "items.ndjson").read_text().splitlines() if line]
    items.sort(key=lambda it: it["properties"]["datetime"])
    refl = np.empty((len(REFLECTANCE_BANDS), len(items), n, n), dtype=np.float32)
    scl = np.empty((len(items), n, n), dtype=np.uint8)
    for t, item in enumerate(items):
        for b, band in enumerate(REFLECTANCE_BANDS):
            asset = item["assets"][band]
            dn = _read(world / asset["href"], n, Resampling.bilinear).astype(np.float32)
            rb = asset["raster:bands"][0]
            refl[b, t] = np.where(dn != 0, dn * rb["scale"] + rb["offset"], np.nan)
        scl[t] = _read(world / item["assets"]["scl"]["href"], n, Resampling.nearest)
    refl[:, ~clear_mask(scl, refl, SCL_CLEAR_DEFAULT)] = np.nan
    return refl, _read(world / "truth_class.tif", n, Resampling.nearest)


def _classify(label: str, est: Any, X: np.ndarray, repeat: int) -> None:
    est.n_jobs = 1
    t0 = time.perf_counter()
    packed = pack_forest(est)
    t_pack = time.perf_counter() - t0
    packed.predict_proba(X[:10])  # compile or load the cached kernel outside the timing
    diff = np.abs(packed.predict_proba(X) - est.predict_proba(X)).max()
    t_sk = _median_time(lambda: est.predict_proba(X), repeat)
    t_pf = _median_time(lambda: packed.predict_proba(X), repeat)
    mpix = X.shape[0] / 1e6
    print(f"classify, {label}; {X.shape[0]} observed px; packing {t_pack:.2f} s; max |diff| {diff:.1e}")
    print(f"  sklearn predict_proba, 1 thread : {mpix / t_sk:7.3f} Mpix/s")
    print(f"  PackedForest, 1 thread          : {mpix / t_pf:7.3f} Mpix/s  ({t_sk / t_pf:.1f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="model directory (default: a demo-sized forest on random data)")
    ap.add_argument("--world", type=Path, help="demo world directory: benchmark on its pixels (default: random)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--size", type=int, default=512, help="block edge in pixels")
    ap.add_argument("--dates", type=int, default=18, help="dates of the random block")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    n = args.size
    if args.world:
        refl, truth = _world_block(args.world, n)
        source = f"world {args.world}"
    else:
        refl = rng.uniform(0.01, 0.5, size=(len(REFLECTANCE_BANDS), args.dates, n, n)).astype(np.float32)
        refl[:, rng.random((args.dates, n, n)) < 0.35] = np.nan  # about a third cloudy
        truth = rng.integers(1, 7, size=(n, n))
        source = "random reflectance"
    mpix = n * n / 1e6
    cloudy = np.isnan(refl[0]).mean()

    compute_features(refl[:, :, :8, :8])  # compile or load the cached kernel outside the timing
    t_ref = _median_time(lambda: reference_features(refl), args.repeat)
    t_feat = _median_time(lambda: compute_features(refl), args.repeat)
    big = da.from_array(np.concatenate([refl, refl], axis=3), chunks=(-1, -1, n // 2, n // 2))
    with dask.config.set(scheduler="threads"):
        t_feat_dask = _median_time(lambda: features_dask(big).compute(), args.repeat)
    feats = compute_features(refl)

    print(f"block {n}x{n} px, {refl.shape[1]} dates ({cloudy:.0%} not clear), {source}; median of {args.repeat}")
    print(f"features, numpy reference, 1 thread : {mpix / t_ref:7.2f} Mpix/s")
    print(f"features, numba kernel, 1 thread    : {mpix / t_feat:7.2f} Mpix/s  ({t_ref / t_feat:.1f}x)")
    print(f"features, numba, dask threads, 2 blocks: {2 * mpix / t_feat_dask:7.2f} Mpix/s")

    flat = feats.reshape(len(FEATURE_NAMES), -1).T
    ok = np.isfinite(flat).all(axis=1)
    X = np.ascontiguousarray(flat[ok])
    if args.model:
        from estimator.stages.model import load_model

        est = load_model(args.model).estimator
        _classify(f"model {args.model} ({est.n_estimators} trees, depth {est.max_depth})", est, X, args.repeat)
    else:
        from estimator.demo.runner import DEMO_FIT

        demo = RandomForestClassifier(
            n_estimators=DEMO_FIT["n_estimators"], max_depth=DEMO_FIT["max_depth"], n_jobs=-1, random_state=0
        ).fit(X[:20000], truth.reshape(-1)[ok][:20000])
        _classify(
            f"demo-sized forest ({DEMO_FIT['n_estimators']} trees, depth {DEMO_FIT['max_depth']})", demo, X, args.repeat
        )
    fit_rows = rng.choice(X.shape[0], size=min(20000, X.shape[0]), replace=False)
    big_forest = RandomForestClassifier(
        n_estimators=100, max_depth=20, class_weight="balanced_subsample", n_jobs=-1, random_state=0
    ).fit(X[fit_rows], truth.reshape(-1)[ok][fit_rows])
    depth = max(t.tree_.max_depth for t in big_forest.estimators_)
    nodes = sum(t.tree_.node_count for t in big_forest.estimators_)
    _classify(f"realistic forest (100 trees, depth {depth}, {nodes} nodes), {source}", big_forest, X, args.repeat)


if __name__ == "__main__":
    main()
