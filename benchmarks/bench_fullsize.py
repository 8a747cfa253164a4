"""Full-size tile benchmark: the I/O limit, the job, its stages, the naive baseline, memory
per worker and 1 vs 2 workers, side by side in one run.

Run:  python benchmarks/bench_fullsize.py [--out /tmp/fullsize] [--size 10980] [--dates 6]
                                          [--tile-size 2048] [--repeat 1]

Makes (once, cached) the SYNTHETIC full-size world of ``fullsize_world.py`` and a model
trained on its labels with the project's training code (100 trees, depth 20 unless told;
``--model DIR`` uses a given model instead, such as the forest ``realistic_model.py`` fits on
the hard world), serves the world on loopback (STAC API + Range-capable COG server), then measures:

1. read-only: every tile of the job's plan loaded through ``estimator.stages.load.load_tile``
   (all reflectance bands + SCL, all dates, same grid and chunks) and reduced with a sum,
   local threaded scheduler, one tile at a time like the job: the I/O limit;
2. the full job (``pipeline.run``), local threads, fresh run directory; the manifest's
   ``timings_s`` give the job's own stages;
3. stages inside a tile (load+mask, features, classify) on ``--stage-tiles`` tiles, and the
   naive baseline: the same features, then plain scikit-learn ``predict_proba`` (all cores)
   on every pixel, timed on a random sample of ``--sample-mpix`` Mpix and extrapolated
   linearly to the tile (said so in the table);
4. the job on a LocalCluster of 1 worker x 1 thread and of 2 workers x 1 thread (one core
   per worker, so the second worker adds a core), each worker process's RSS sampled with
   psutil every 0.2 s (peak, and peak per quarter of the tiles finished: memory must not
   grow with the number of tiles);
5. the 1 vs 2 workers wall-time ratio, and the speedup over the naive baseline next to its
   ceiling (naive / read-only: no job can be faster than reading its bands).

Prints progress, then a markdown table. Everything measured is SYNTHETIC data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import numpy as np
import psutil
import yaml
from bench_workers import _timed
from distributed import Client, LocalCluster
from fullsize_world import FullsizeSpec, FullsizeWorld, make_fullsize_world

from estimator.config import FitConfig, load_job, load_train
from estimator.demo.runner import demo_stac
from estimator.regions.geometry import regions_bbox
from estimator.regions.job import job_regions
from estimator.report.plan_summary import summarize
from estimator.stages.classify import classify_dask, make_predictor
from estimator.stages.costs import job_classify_cost
from estimator.stages.features import features_dask
from estimator.stages.load import configure_gdal, load_tile, measure_read
from estimator.stages.mask import mask_observations
from estimator.stages.model import forest_of, load_model
from estimator.stages.plan import make_plan
from estimator.stages.search import search_items
from estimator.testing.servers import serve_world

GiB = 2**30


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- memory sampling


@dataclass
class RssMonitor:
    """Samples the RSS of some processes every ``interval`` s, with the number of tiles the
    run has finished (checkpoint files) at that moment."""

    pids: dict[str, int]
    tiles_dir: Path
    interval: float = 0.2
    samples: list[tuple[float, int, dict[str, int]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _loop(self) -> None:
        procs = {name: psutil.Process(pid) for name, pid in self.pids.items()}
        t0 = time.perf_counter()
        while not self._stop.is_set():
            rss = {}
            for name, p in procs.items():
                try:
                    rss[name] = p.memory_info().rss
                except psutil.Error:
                    rss[name] = 0
            done = len(list(self.tiles_dir.glob("*/*.json"))) if self.tiles_dir.is_dir() else 0
            self.samples.append((time.perf_counter() - t0, done, rss))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssMonitor:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def peak(self, name: str) -> int:
        return max((s[2].get(name, 0) for s in self.samples), default=0)

    def by_quarter(self, name: str, n_tiles: int) -> list[float]:
        """Peak RSS (GiB) while the 1st, 2nd, 3rd, 4th quarter of the tiles were in work."""
        out = []
        for q in range(4):
            lo, hi = q * n_tiles / 4, (q + 1) * n_tiles / 4
            vals = [s[2].get(name, 0) for s in self.samples if lo <= s[1] < hi or (q == 3 and s[1] >= hi)]
            out.append(max(vals, default=0) / GiB)
        return out


# --------------------------------------------------------------------------- setup


def _git_state() -> str:
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--short", "--", "estimator", "training"], capture_output=True, text=True
        ).stdout.split("\n")
    except OSError:
        return "unknown"
    import estimator

    changed = [line[3:] for line in dirty if line.strip()]
    where = Path(estimator.__file__).resolve().parent.parent
    if where != repo:
        # e.g. PYTHONPATH=/tmp/fs-head holding `git archive <commit> estimator training`
        marker = where / ".commit"
        head = marker.read_text().strip() if marker.is_file() else "unknown"
    note = f" (estimator imported from {where})" if where != repo else ""
    return f"{head}" + (f" + uncommitted changes in {', '.join(changed)}" if changed and not note else "") + note


def _train_yaml(world: FullsizeWorld, stac_url: str, fit: dict[str, Any]) -> dict[str, Any]:
    s = world.base_spec
    return {
        "stac": demo_stac(stac_url),
        "period": {"start": s.start, "end": s.end},
        "grid": {"resolution": 10, "crs": f"EPSG:{s.epsg}", "tile_size": 512, "chunk_size": 512},
        "fit": fit,
        "target_class": "coca",
    }


def _job_yaml(world: FullsizeWorld, stac_url: str, model_dir: Path, tile_size: int, chunk_size: int) -> dict[str, Any]:
    s = world.base_spec
    return {
        "stac": demo_stac(stac_url),
        "period": {"start": s.start, "end": s.end},
        "regions": {"file": str(world.regions_path), "id_field": "region_id"},
        "grid": {"resolution": 10, "crs": f"EPSG:{s.epsg}", "tile_size": tile_size, "chunk_size": chunk_size},
        "model": str(model_dir),
        "output": "/nonexistent",  # replaced per run
        "target_class": "coca",
    }


def _ensure_model(world: FullsizeWorld, stac_url: str, out: Path, fit: dict[str, Any], tmp: Path) -> Path:
    from training.extract import read_labels
    from training.fit import train

    key = "-".join(f"{k}{v}" for k, v in sorted(fit.items()))
    model_dir = out / f"model-{key}"
    world_key = json.dumps({"world": str(world.root), "spec": world.spec.__dict__, "fit": fit}, sort_keys=True)
    try:
        if load_model(model_dir).card.get("fullsize_world") == world_key:
            say(f"reusing model {model_dir}")
            return model_dir
    except Exception:
        pass
    path = tmp / "train.yaml"
    path.write_text(yaml.safe_dump(_train_yaml(world, stac_url, fit)))
    t0 = time.perf_counter()
    say(f"training {fit} on {world.labels_path} ...")
    train(
        load_train(path),
        read_labels(world.labels_path),
        model_dir,
        progress=False,
        extra_card={"fullsize_world": world_key, "synthetic": True},
    )
    say(f"trained in {time.perf_counter() - t0:.0f} s")
    return model_dir


def _model_nodes(est: Any) -> tuple[int, int]:
    trees = getattr(est, "estimators_", [est])
    return len(trees), int(sum(t.tree_.node_count for t in trees))


# --------------------------------------------------------------------------- measurements


def _plan(job: Any) -> tuple[Any, dict[str, Any]]:
    regions = job_regions(job.regions)
    found = search_items(job.stac, regions_bbox(regions), job.period, progress=False)
    plan = make_plan(
        [i.to_dict() for i in found.items], regions,
        resolution=job.grid.resolution, crs=job.grid.crs, tile_size=job.grid.tile_size, chunk_size=job.grid.chunk_size,
        provider=job.stac.provider,
    )  # fmt: skip
    return plan, {i.id: i for i in found.items}


def read_only(plan: Any, items: dict[str, Any]) -> float:
    """Every tile's bands and SCL through the load stage, summed; local threads, tile by tile."""
    configure_gdal()
    t0 = time.perf_counter()
    with dask.config.set(scheduler="threads"):
        for tile in plan.tiles:
            stack = load_tile(tile, plan, items)
            if stack is not None:
                dask.compute(stack.reflectance.data.sum(), stack.scl.data.sum(dtype=np.int64))
    return time.perf_counter() - t0


@dataclass
class Stages:
    mpix: float = 0.0
    load_mask: float = 0.0
    features: float = 0.0
    classify: float = 0.0
    naive_mpix: float = 0.0
    naive_predict: float = 0.0
    coca_fast: int = 0
    """Target-class pixels of the project path (cascade + compiled trees) on the stage tiles."""
    coca_full: int = 0
    """Target-class pixels of scikit-learn's predict_proba on the same observed pixels."""
    agree: float = 0.0
    """Share of observed pixels with the same class both ways."""


def stages_and_naive(
    plan: Any, items: dict[str, Any], model_dir: Path, job: Any, n_tiles: int, sample_mpix: float, seed: int
) -> Stages:
    """Stage times on the largest tiles (local threads), then plain predict_proba on a sample."""
    configure_gdal()
    model = load_model(model_dir)
    tiles = sorted(plan.tiles, key=lambda t: -int(np.prod(t.geobox.shape.yx)))[:n_tiles]
    st = Stages()
    pools = []
    predictor = make_predictor(model, cascade=job.classify.cascade)  # what the job runs per block
    forest_of(model.estimator).n_jobs = -1  # the reference prediction below: all cores
    target = model.classes.index(model.target_class)
    n_obs = 0
    with dask.config.set(scheduler="threads"):
        for tile in tiles:
            ny, nx = tile.geobox.shape.yx
            st.mpix += ny * nx / 1e6
            t0 = time.perf_counter()
            stack = load_tile(tile, plan, items)
            (m,) = dask.persist(mask_observations(stack, job.mask.clear_scl).masked.data)
            t1 = time.perf_counter()
            (f,) = dask.persist(features_dask(m))
            t2 = time.perf_counter()
            probs = classify_dask(f, predictor, len(model.classes), model.model_id).compute()
            t3 = time.perf_counter()
            st.load_mask += t1 - t0
            st.features += t2 - t1
            st.classify += t3 - t2
            feats = f.compute()
            flat = feats.reshape(feats.shape[0], -1).T
            pools.append(flat)
            # Same answer? The fast path against scikit-learn's full model on every observed pixel.
            ok = np.isfinite(flat).all(axis=1)
            fast = np.argmax(probs.reshape(len(model.classes), -1).T[ok], axis=1)
            full = np.argmax(model.estimator.predict_proba(flat[ok]), axis=1)
            st.coca_fast += int((fast == target).sum())
            st.coca_full += int((full == target).sum())
            st.agree += float((fast == full).sum())
            n_obs += int(ok.sum())
            del m, f, feats, probs
            say(
                f"  stages on tile {tile.id} ({ny}x{nx}): load+mask {t1 - t0:.1f} s, features {t2 - t1:.1f} s, classify {t3 - t2:.1f} s"
            )
    st.agree /= max(n_obs, 1)
    say(f"  coca pixels fast path {st.coca_fast}, scikit-learn {st.coca_full}; class agreement {st.agree:.4%}")
    X = np.concatenate(pools)
    del pools
    rng = np.random.default_rng(seed)
    n = min(len(X), int(sample_mpix * 1e6))
    X = np.nan_to_num(X[rng.choice(len(X), n, replace=False)], nan=0.0)
    naive = load_model(model_dir).estimator
    naive.n_jobs = -1  # plain scikit-learn as a user would call it: all cores
    t0 = time.perf_counter()
    naive.predict_proba(X)
    st.naive_predict = time.perf_counter() - t0
    st.naive_mpix = n / 1e6
    say(f"  naive predict_proba on {n / 1e6:.2f} Mpix: {st.naive_predict:.1f} s")
    return st


def job_threads(job_path: Path, out: Path) -> tuple[float, dict[str, float], float]:
    """Wall time, manifest timings and peak RSS (GiB) of the job on local threads."""
    with RssMonitor({"main": os.getpid()}, out / "tiles") as mon:
        wall = _timed(job_path, out, None)
    timings = json.loads((out / "manifest.json").read_text())["timings_s"]
    return wall, timings, mon.peak("main") / GiB


def job_cluster(job_path: Path, out: Path, cluster: LocalCluster, n_tiles: int) -> tuple[float, dict[str, Any]]:
    with Client(cluster) as c:
        pids = {f"w{i}": pid for i, pid in enumerate(c.run(os.getpid).values())}
    pids["client"] = os.getpid()
    with RssMonitor(pids, out / "tiles") as mon:
        wall = _timed(job_path, out, cluster.scheduler_address)
    mem = {name: {"peak": mon.peak(name) / GiB, "quarters": mon.by_quarter(name, n_tiles)} for name in pids}
    return wall, mem


# --------------------------------------------------------------------------- report


def _fmt_q(q: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in q)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--out", type=Path, default=Path("/tmp/fullsize"), help="world, model and runs (default /tmp/fullsize)"
    )
    ap.add_argument("--size", type=int, default=10980, help="tile edge in 10 m px (default 10980)")
    ap.add_argument("--dates", type=int, default=6, help="acquisitions (default 6)")
    ap.add_argument("--base", type=int, default=2196, help="demo world edge that is tiled; divides --size")
    ap.add_argument("--tile-size", type=int, default=2048, help="job grid.tile_size (default 2048, the job default)")
    ap.add_argument("--chunk-size", type=int, default=1024, help="job grid.chunk_size (default 1024, the job default)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each timed configuration (median reported)")
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument(
        "--cascade-trees", type=int, default=None, help="fit.cascade_trees when the training code has it (0: none)"
    )
    ap.add_argument("--stage-tiles", type=int, default=2, help="tiles timed stage by stage (default 2)")
    ap.add_argument(
        "--sample-mpix", type=float, default=2.0, help="pixels for the naive predict_proba (default 2 Mpix)"
    )
    ap.add_argument(
        "--model", type=Path, default=None,
        help="use this model directory instead of training one on the world's labels (e.g. benchmarks/realistic_model.py's)",
    )
    ap.add_argument(
        "--forecast-only", action="store_true", help="print `estimator plan`'s forecast for the job and stop (nothing timed)"
    )
    ap.add_argument("--skip-cluster", action="store_true", help="no LocalCluster runs (memory, 1 vs 2 workers)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    t_start = time.perf_counter()
    say(f"code: {_git_state()}")
    world = make_fullsize_world(args.out, FullsizeSpec(args.size, args.dates, min(args.base, args.size), args.seed))
    rec = json.loads((world.root / "fullsize.json").read_text())
    fit: dict[str, Any] = {"n_estimators": args.trees, "max_depth": args.depth, "seed": 0}
    if args.cascade_trees is not None and "cascade_trees" in FitConfig.model_fields:
        fit["cascade_trees"] = args.cascade_trees

    runs = args.out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=runs) as tmp_s, serve_world(world.root, Path(tmp_s) / "serve") as served:
        tmp = Path(tmp_s)
        model_dir = args.model or _ensure_model(world, served.stac_url, args.out, fit, tmp)
        model = load_model(model_dir)
        n_trees, n_nodes = _model_nodes(forest_of(model.estimator))
        cascade = getattr(model, "cascade", None)
        job_path = tmp / "job.yaml"
        job_path.write_text(
            yaml.safe_dump(_job_yaml(world, served.stac_url, model_dir, args.tile_size, args.chunk_size))
        )
        job = load_job(job_path)
        plan, items = _plan(job)
        n_tiles = len(plan.tiles)
        mpix = sum(int(np.prod(t.geobox.shape.yx)) for t in plan.tiles) / 1e6
        say(f"plan: {len(items)} items, {n_tiles} tiles of {args.tile_size} px, {mpix:.1f} Mpix")
        # What `estimator plan` forecasts for this job on this machine (local threads: one
        # "worker" with every core), with the job's own model timed while planning.
        forecast = summarize(plan, job_regions(job.regions), workers=1, threads_per_worker=os.cpu_count() or 1,
                             classify_cost=job_classify_cost(model_dir, cascade=job.classify.cascade),
                             read_cost=measure_read(plan, items))
        say(f"plan forecast: {forecast['forecast_seconds']} s, {forecast['forecast_core_hours']['total']:.3f} core-hours")
        if args.forecast_only:
            print(f"forecast: {json.dumps(forecast['forecast_seconds'])} s; cost figures "
                  f"{json.dumps({k: v for k, v in forecast['cost_figures'].items()})}")
            return

        ro, jt, timings, rss_t = [], [], [], []
        for i in range(args.repeat):
            say(f"read-only {i + 1}/{args.repeat} ...")
            ro.append(read_only(plan, items))
            say(f"  read-only {ro[-1]:.1f} s")
            say(f"full job, local threads {i + 1}/{args.repeat} ...")
            w, tm, rss = job_threads(job_path, tmp / f"threads-{i}")
            jt.append(w)
            timings.append(tm)
            rss_t.append(rss)
            say(f"  job {w:.1f} s; manifest timings {tm}; peak RSS {rss:.2f} GiB")
        say("stages and naive baseline ...")
        st = stages_and_naive(plan, items, model_dir, job, args.stage_tiles, args.sample_mpix, args.seed)

        one_t: list[float] = []
        two_t: list[float] = []
        mem1: dict[str, Any] = {}
        mem2: dict[str, Any] = {}
        if not args.skip_cluster:
            for i in range(args.repeat):
                with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as one:
                    say(f"LocalCluster 1 worker x 1 thread {i + 1}/{args.repeat} ...")
                    w, mem1 = job_cluster(job_path, tmp / f"one-{i}", one, n_tiles)
                    one_t.append(w)
                    say(f"  {w:.1f} s; RSS {json.dumps(mem1)}")
                with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as two:
                    say(f"LocalCluster 2 workers x 1 thread {i + 1}/{args.repeat} ...")
                    w, mem2 = job_cluster(job_path, tmp / f"two-{i}", two, n_tiles)
                    two_t.append(w)
                    say(f"  {w:.1f} s; RSS {json.dumps(mem2)}")

    med = statistics.median
    ro_m, jt_m = med(ro), med(jt)
    tm_m = {k: med([t.get(k, 0.0) for t in timings]) for k in timings[0]}
    scale = mpix / st.mpix
    naive_feat = (st.load_mask + st.features) * scale
    naive_pred = st.naive_predict * mpix / st.naive_mpix
    naive = naive_feat + naive_pred
    cpu = platform.processor() or platform.machine()
    lines = [
        "",
        f"### Results {dt.date.today().isoformat()} (SYNTHETIC full-size world; code {_git_state()})",
        "",
        f"World {args.size} x {args.size} px ({mpix:.1f} Mpix in the job), {args.dates} dates, "
        f"{len(items)} items; tiles {args.tile_size} px ({n_tiles}), chunks {args.chunk_size} px; "
        f"model {n_trees} trees, depth <= {forest_of(model.estimator).max_depth}, {n_nodes:,} nodes"
        + (f" ({model_dir})" if args.model else "")
        + (f" (+ first stage {_model_nodes(cascade)[1]:,} nodes)" if cascade is not None else "")
        + f"; {os.cpu_count()} cores ({cpu}), median of {args.repeat}; world made in "
        f"{rec['seconds']['base_world'] + rec['seconds']['tiling']:.0f} s, {rec['disk_bytes'] / GiB:.1f} GiB.",
        "",
        "| measurement | time | rate | note |",
        "|---|---:|---:|---|",
        f"| read-only (load stage, all bands + SCL, sum) | {ro_m:.1f} s | {mpix / ro_m:.2f} Mpix/s | the I/O limit, local threads |",
        f"| full job, local threads | {jt_m:.1f} s | {mpix / jt_m:.2f} Mpix/s | {jt_m / ro_m:.2f}x read-only (target <= 2x); peak RSS {med(rss_t):.2f} GiB (one process) |",
        f"| `estimator plan`'s forecast for that job | {forecast['forecast_seconds']['total']:.0f} s | | "
        f"read {forecast['forecast_seconds']['read']} s + features {forecast['forecast_seconds']['features']} s + classify "
        f"{forecast['forecast_seconds']['classify']} s on {os.cpu_count()} cores (classify "
        f"{forecast['cost_figures']['classify_mpix_per_s_per_core']:.3g} Mpix/s per core, timed while planning); "
        f"measured / forecast {jt_m / max(forecast['forecast_seconds']['total'], 1):.2f} (target within 1.5x either way) |",
    ]
    for k, v in tm_m.items():
        lines.append(f"| &nbsp; job stage `{k}` (manifest) | {v:.1f} s | | |")
    lines += [
        f"| &nbsp; in a tile: load + mask | {st.load_mask * scale:.1f} s | {st.mpix / st.load_mask:.2f} Mpix/s | measured on {args.stage_tiles} tiles ({st.mpix:.1f} Mpix), scaled to the job |",
        f"| &nbsp; in a tile: features | {st.features * scale:.1f} s | {st.mpix / st.features:.2f} Mpix/s | same tiles |",
        f"| &nbsp; in a tile: classify (project path) | {st.classify * scale:.1f} s | {st.mpix / st.classify:.2f} Mpix/s | same tiles |",
        f"| coca area, fast path vs scikit-learn full model | {100 * (st.coca_fast - st.coca_full) / max(st.coca_full, 1):+.2f} % | | {st.coca_fast:,} vs {st.coca_full:,} px on the stage tiles (before the minimum mapping unit); class agreement {st.agree:.3%} (target: area within 0.5 %) |",
        f"| naive baseline: load + features + plain `predict_proba` on every pixel | {naive:.0f} s | {mpix / naive:.3f} Mpix/s | EXTRAPOLATED: predict_proba timed on {st.naive_mpix:.1f} Mpix sampled ({st.naive_predict:.1f} s, all cores) -> {naive_pred:.0f} s, plus load+features {naive_feat:.0f} s; job is {naive / jt_m:.1f}x faster (target >= 20x) |",
        f"| &nbsp; ceiling of that speedup | {naive / ro_m:.1f}x | | naive / read-only: a job cannot beat reading its bands |",
        f"| &nbsp; classification alone: project path vs plain `predict_proba` | {(st.naive_predict / st.naive_mpix) / (st.classify / st.mpix):.1f}x | | {st.mpix / st.classify:.2f} vs {st.naive_mpix / st.naive_predict:.2f} Mpix/s, both on all cores |",
    ]
    if one_t:
        o, t = med(one_t), med(two_t)
        lines += [
            f"| job, LocalCluster 1 worker x 1 thread | {o:.1f} s | {mpix / o:.2f} Mpix/s | peak RSS worker {mem1['w0']['peak']:.2f} GiB; per quarter of tiles {_fmt_q(mem1['w0']['quarters'])} GiB; client {mem1['client']['peak']:.2f} GiB |",
            f"| job, LocalCluster 2 workers x 1 thread | {t:.1f} s | {mpix / t:.2f} Mpix/s | peak RSS workers {mem2['w0']['peak']:.2f} / {mem2['w1']['peak']:.2f} GiB; per quarter {_fmt_q(mem2['w0']['quarters'])} and {_fmt_q(mem2['w1']['quarters'])} GiB; client {mem2['client']['peak']:.2f} GiB |",
            f"| 2 workers vs 1 worker | {o / t:.2f}x | | target >= 1.8x |",
        ]
    lines.append("")
    lines.append(
        f"Total benchmark wall time {time.perf_counter() - t_start:.0f} s. Runs: read-only {ro}, job {jt}"
        + (f", 1 worker {one_t}, 2 workers {two_t}" if one_t else "")
        + "."
    )
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
