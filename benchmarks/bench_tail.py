"""The serial tail after the last tile: today's (maps mosaicked and plots vectorised after the
last tile) against the new one (maps staged and plots made as each tile is finished),
side by side in one run.

Run:  python benchmarks/bench_tail.py [--out /tmp/fullsize-tail] [--size 4096] [--tile-size 1024]
                                      [--repeat 3]

Makes (once, cached) the SYNTHETIC full-size world of ``fullsize_world.py`` at ``--size``
px and a model trained on its labels (``--trees``/``--depth``, small by default: the tail
does not depend on the model), serves it on loopback, runs the job once (local threads) and
records its own stage timings. Then, on that job's tile checkpoints, ``--repeat`` times in
turn:

- today: the three COGs mosaicked from the checkpoints and written on one thread
  (``outputs.write_map_cog``, as the job did), the quicklook, then every tile vectorised
  and joined (``plots.make_plots`` over ``checkpoints.plot_layers``) and the plot files;
- new: the tail only, as the job runs it (``MapStage.finish``: staged maps to COGs on all
  cores and the quicklook, in a thread beside ``make_plots`` joining the per-tile plots kept
  in the checkpoints and writing the plot files); and,
  timed apart, the per-tile work that moved into the tiles phase, where it overlaps the
  other tiles' pixels: writing each tile's blocks into the staged maps
  (``MapStage.add``) and vectorising each tile (``plots.tile_patches``).

It also counts the pixels whose class the minimum mapping unit sets differently when each
tile is sieved alone (today) and with its neighbours' edges (new), from the raw codes kept
in the checkpoints. Prints a markdown table; medians over the repeats.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import yaml
from bench_fullsize import _ensure_model, _git_state, _job_yaml, say
from fullsize_world import FullsizeSpec, make_fullsize_world

from estimator.config import load_job
from estimator.location import RunLocation
from estimator.regions.geometry import to_crs
from estimator.regions.job import job_regions
from estimator.run.checkpoints import TileStore, plot_layers, plot_pieces
from estimator.run.outputs import MapLayer, MapStage, write_map_cog, write_quicklook
from estimator.run.pipeline import run
from estimator.run.rundir import read_manifest
from estimator.run.tiles import min_unit_px
from estimator.stages.classify import sieve_codes
from estimator.stages.model import load_model
from estimator.stages.plan import make_plan
from estimator.stages.plots import make_plots, tile_patches, write_plots
from estimator.stages.search import search_items


def _today(store: TileStore, plan: Any, regions: Any, classes: list[str], target: str, outlines: Any, dst: Path) -> dict[str, float]:
    maps = dst / "maps"
    maps.mkdir(parents=True)
    t0 = time.perf_counter()
    tiles = [(t.id, t.geobox) for t in plan.tiles]
    for filename, key, dtype, nodata in (
        ("class.tif", "class", "uint8", 0),
        (f"{target}_probability.tif", "prob", "float32", float("nan")),
        ("valid_obs_count.tif", "n_clear", "int16", -1),
    ):
        layer = MapLayer(filename, dtype, nodata, lambda tid, k=key: store.array(tid, k))
        write_map_cog(maps / filename, plan.grid, tiles, layer)
    write_quicklook(dst / "quicklook.png", maps / "class.tif", classes, outlines, title="bench", synthetic=True)
    t1 = time.perf_counter()
    code = classes.index(target) + 1
    plots = make_plots(
        plot_layers(store, plan, regions, code), grid_affine=plan.grid.affine, crs=str(plan.grid.crs),
        region_ids=[r.id for r in regions], synthetic=True,
    )
    write_plots(dst, plots.frame)
    t2 = time.perf_counter()
    return {"maps": t1 - t0, "plots": t2 - t1, "n_plots": float(len(plots.frame))}


def _new(store: TileStore, plan: Any, regions: Any, classes: list[str], target: str, outlines: Any, dst: Path) -> dict[str, float]:
    code = classes.index(target) + 1
    with tempfile.TemporaryDirectory(dir=dst.parent) as stage_dir:
        stage = MapStage(plan.grid, target, Path(stage_dir))
        add = 0.0
        for t in plan.tiles:
            arrays = store.arrays(t.id, "class", "prob", "n_clear")
            t0 = time.perf_counter()
            stage.add(t.geobox, arrays)
            add += time.perf_counter() - t0
        vec = 0.0
        for layers in plot_layers(store, plan, regions, code):
            t0 = time.perf_counter()
            tile_patches(layers)
            vec += time.perf_counter() - t0
        # As the job does: the COGs written while the plots are joined and written.
        t0 = time.perf_counter()

        def cogs() -> float:
            stage.finish(dst, classes, outlines=outlines, title="bench", synthetic=True)
            return time.perf_counter() - t0

        with ThreadPoolExecutor(1) as pool:
            maps = pool.submit(cogs)
            plots = make_plots(
                plot_pieces(store, plan), grid_affine=plan.grid.affine, crs=str(plan.grid.crs),
                region_ids=[r.id for r in regions], synthetic=True,
            )
            write_plots(dst, plots.frame)
            t_plots = time.perf_counter() - t0
            t_maps = maps.result()
        wall = time.perf_counter() - t0
    return {
        "maps": t_maps, "plots": t_plots, "tail": wall, "moved_add": add, "moved_vectorise": vec,
        "n_plots": float(len(plots.frame)),
    }


def _unit_difference(store: TileStore, plan: Any, job: Any) -> tuple[int, int, int]:
    """Pixels the minimum mapping unit changes: each tile alone (today), and how many of
    the classes differ between that and the job's (judged with the neighbours' edges)."""
    alone = changed = differ = 0
    for t in plan.tiles:
        z = store.arrays(t.id, "codes_raw", "class")
        sieved, n = sieve_codes(z["codes_raw"], min_unit_px(job, t))
        alone += n
        changed += int((z["class"] != z["codes_raw"]).sum())
        differ += int((sieved != z["class"]).sum())
    return alone, changed, differ


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/fullsize-tail"), help="world, model and runs")
    ap.add_argument("--size", type=int, default=4096, help="world edge in 10 m px (default 4096)")
    ap.add_argument("--base", type=int, default=2048, help="demo world edge that is tiled; divides --size")
    ap.add_argument("--dates", type=int, default=6)
    ap.add_argument("--tile-size", type=int, default=1024, help="job grid.tile_size (default 1024: 16 tiles)")
    ap.add_argument("--chunk-size", type=int, default=1024)
    ap.add_argument("--trees", type=int, default=30)
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=3, help="repeats of the tail comparison (0: only --scaling)")
    ap.add_argument(
        "--scaling", type=int, default=0, metavar="N",
        help="also run the job N times on a LocalCluster of 1 and of 2 workers x 1 thread, the items' "
        "assets as local file paths (no COG server process), and print the speed-up (default 0: not run)",
    )
    args = ap.parse_args()

    code = _git_state()
    say(f"code: {code}")
    world = make_fullsize_world(args.out, FullsizeSpec(args.size, args.dates, min(args.base, args.size), 7))
    fit = {"n_estimators": args.trees, "max_depth": args.depth, "seed": 0}
    runs = args.out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    from estimator.testing.servers import serve_world

    with tempfile.TemporaryDirectory(dir=runs) as tmp_s, serve_world(world.root, Path(tmp_s) / "serve") as served:
        tmp = Path(tmp_s)
        model_dir = _ensure_model(world, served.stac_url, args.out, fit, tmp)
        job_path = tmp / "job.yaml"
        job_path.write_text(yaml.safe_dump(_job_yaml(world, served.stac_url, model_dir, args.tile_size, args.chunk_size)))
        if args.repeat == 0:  # only the scaling runs
            scaling = _scaling(world.root, job_path, tmp, args.scaling)
            _print_scaling(scaling, args.scaling, code)
            return
        job = load_job(job_path).model_copy(update={"output": tmp / "job"})
        say("the job, local threads ...")
        t0 = time.perf_counter()
        result = run(job, progress=False)
        wall = time.perf_counter() - t0
        timings = read_manifest(result.run_dir)["timings_s"]
        say(f"  {wall:.1f} s; {timings}")
        regions = job_regions(job.regions)
        key = next(p.name for p in (tmp / "job" / "tiles").iterdir() if p.is_dir())
        store = TileStore(RunLocation(tmp / "job"), key)
        model = load_model(model_dir)
        plan = _job_plan(job, regions)
        outlines = [(r.id, to_crs(r.geometry, str(plan.grid.crs))) for r in regions]
        rows: dict[str, list[dict[str, float]]] = {"today": [], "new": []}
        for i in range(args.repeat):
            for name, fn in (("today", _today), ("new", _new)):
                dst = tmp / f"{name}-{i}"
                dst.mkdir()
                rows[name].append(fn(store, plan, regions, list(model.classes), model.target_class, outlines, dst))
                say(f"  {name} {i + 1}/{args.repeat}: {rows[name][-1]}")
        alone, changed, differ = _unit_difference(store, plan, job)
        scaling = _scaling(world.root, job_path, tmp, args.scaling) if args.scaling else {}

    med = statistics.median

    def m(name: str, key: str) -> float:
        return med([r[key] for r in rows[name]])

    today_tail = m("today", "maps") + m("today", "plots")
    new_tail = m("new", "tail")
    mpix = sum(int(np.prod(t.geobox.shape.yx)) for t in plan.tiles) / 1e6
    print()
    print(f"SYNTHETIC full-size world {args.size} px, {args.dates} dates; job {len(plan.tiles)} tiles of {args.tile_size} px "
          f"({mpix:.1f} Mpix); model {args.trees} trees depth {args.depth}; code {code}; medians of {args.repeat}")
    print(f"the job itself (new code, local threads): {wall:.1f} s; timings_s {json.dumps(timings)}")
    print()
    print("| after the last tile | today | new |")
    print("|---|---:|---:|")
    print(f"| maps: COGs + quicklook | {m('today', 'maps'):.2f} s | {m('new', 'maps'):.2f} s (beside the plots) |")
    print(f"| plots: (today: vectorise +) join + files | {m('today', 'plots'):.2f} s | {m('new', 'plots'):.2f} s |")
    print(f"| **serial tail** | **{today_tail:.2f} s** | **{new_tail:.2f} s** ({today_tail / new_tail:.1f}x less) |")
    print(f"| moved into the tiles phase: staging map blocks (all tiles) | | {m('new', 'moved_add'):.2f} s |")
    print(f"| moved into the tiles phase: vectorising tiles (all tiles) | | {m('new', 'moved_vectorise'):.2f} s |")
    print(f"| plots + below-MMU patches | {m('today', 'n_plots'):.0f} | {m('new', 'n_plots'):.0f} |")
    print()
    if scaling:
        _print_scaling(scaling, args.scaling, code)
    print(f"minimum mapping unit: {alone} px changed with each tile sieved alone (today), {changed} px with the "
          f"neighbours' edges (new); {differ} px classed differently ({differ / (mpix * 1e6):.2e} of the pixels)")


def _print_scaling(scaling: dict[int, list[dict[str, float]]], n: int, code: str) -> None:
    med = statistics.median
    print()
    print(f"LocalCluster, workers x 1 thread, items as local files (no COG server); code {code}; medians of {n}")
    print()
    print("| workers | wall | tiles stage | after the tiles (wall time) |")
    print("|---|---:|---:|---:|")
    for w, runs_ in scaling.items():
        print(f"| {w} | {med([r['wall'] for r in runs_]):.1f} s | {med([r['tiles'] for r in runs_]):.1f} s | "
              f"{med([r['tail'] for r in runs_]):.1f} s |")
    w1, w2 = med([r["wall"] for r in scaling[1]]), med([r["wall"] for r in scaling[2]])
    t1, t2 = med([r["tiles"] for r in scaling[1]]), med([r["tiles"] for r in scaling[2]])
    print(f"\n2 workers vs 1: {w1 / w2:.2f}x (tiles stage alone {t1 / t2:.2f}x); runs {json.dumps(scaling)}")
    if "workers_cpu" in scaling[1][0]:
        # On 2 cores, the best 2 workers can do is to share all CPU work of the run evenly; with
        # 1 worker the client's work runs beside it on the other core for free.
        for w, runs_ in scaling.items():
            wc, cc = med([r["workers_cpu"] for r in runs_]), med([r["client_cpu"] for r in runs_])
            print(f"{w} worker(s): CPU s workers {wc:.1f}, client process {cc:.1f}; "
                  f"(workers + client) / 2 cores = {(wc + cc) / 2:.1f} s")
        wc1, cc1 = med([r["workers_cpu"] for r in scaling[1]]), med([r["client_cpu"] for r in scaling[1]])
        print(f"2-core bound on 2 vs 1 from the 1-worker run's CPU: {w1 / ((wc1 + cc1) / 2):.2f}x")


def _scaling(world_root: Path, job_path: Path, tmp: Path, n: int) -> dict[int, list[dict[str, float]]]:
    """The job on 1 and 2 single-thread workers, its items' assets as local file paths: the
    STAC API (``rustac``) answers the search and then idles, and no server process serves
    pixels on the cores the workers need."""
    from distributed import LocalCluster

    from estimator.testing.servers import read_world_stac, relocate, start_stac_server

    collection, items = read_world_stac(world_root / "stac")
    # file:// URLs: a bare path would be resolved against the API's address by pystac;
    # rasterio opens file:// URLs as local files.
    base = world_root.resolve().as_uri()
    stac = start_stac_server(relocate(collection, base), (relocate(i, base) for i in items), tmp / "stac-local")
    out: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    try:
        data = yaml.safe_load(job_path.read_text())
        data["stac"]["url"] = stac.url
        local_job = load_job_data(data, tmp / "job-local.yaml")
        for i in range(n):
            for workers in (1, 2):
                with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as cluster:
                    job = local_job.model_copy(update={"output": tmp / f"scaling-{workers}-{i}"})
                    me = psutil.Process()
                    kids0 = _cpu_s(me.children(recursive=True))
                    own0 = _cpu_s([me])
                    t0 = time.perf_counter()
                    res = run(job, scheduler=cluster.scheduler_address, progress=False)
                    wall = time.perf_counter() - t0
                    # CPU seconds of the worker processes (and nannies) and of this process (the
                    # client, the scheduler's thread and the per-tile finishing), during the run.
                    workers_cpu = _cpu_s(me.children(recursive=True)) - kids0
                    client_cpu = _cpu_s([me]) - own0
                tm = read_manifest(res.run_dir)["timings_s"]
                # The COGs and the plots overlap: what follows the tiles is the wall time left.
                tail = wall - sum(float(tm.get(k, 0.0)) for k in ("prepare", "search", "plan", "tiles"))
                out[workers].append({"wall": wall, "tiles": float(tm["tiles"]), "tail": tail,
                                     "workers_cpu": workers_cpu, "client_cpu": client_cpu})
                say(f"  {workers} worker(s) {i + 1}/{n}: {out[workers][-1]}")
    finally:
        stac.stop()
    return out


def _cpu_s(procs: list[Any]) -> float:
    """User + system CPU seconds of processes (gone ones count 0)."""
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def load_job_data(data: dict[str, Any], path: Path) -> Any:
    path.write_text(yaml.safe_dump(data))
    return load_job(path)


def _job_plan(job: Any, regions: Any) -> Any:
    from estimator.regions.geometry import regions_bbox

    found = search_items(job.stac, regions_bbox(regions), job.period, progress=False)
    return make_plan(
        [i.to_dict() for i in found.items], regions, resolution=job.grid.resolution, crs=job.grid.crs,
        tile_size=job.grid.tile_size, chunk_size=job.grid.chunk_size, provider=job.stac.provider,
    )


if __name__ == "__main__":
    main()
