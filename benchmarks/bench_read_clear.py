"""Read only what can be used: bytes and time of today's read (every band of every date)
vs the new one (SCL first; reflectance only for the chunk-dates that hold a pixel clear by
SCL inside a region; chunks outside every region not at all), side by side in one run, on
a SYNTHETIC cloudy world.

Run:  python benchmarks/bench_read_clear.py --out /tmp/cloudy [--size 512] [--dates 70] [--chunk 128] [--repeats 3]

The world is the demo generator's with Loreto-like skies: 5 % nearly clear, 85 % overcast
(55-80 % cloud, clustered by smoothed noise at 150 m and 600 m) and 10 % broken dates, 70
dates in 2023: a mean SCL-derived scene cloud cover near 70 %. COGs are served over HTTP
through the counting proxy of ``estimator.testing.faults`` (no fault injected), which logs
the body bytes of every response: bytes are counted, not estimated, and do not depend on
the machine's load. GDAL's HTTP cache is cleared before every read. Times are medians,
the two paths alternating in one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import dask
import numpy as np

from estimator.config import PeriodConfig, StacConfig
from estimator.demo.world import WorldSpec, generate_world
from estimator.regions.geometry import load_regions
from estimator.run.tiles import usable_blocks
from estimator.stages.load import clear_http_cache, configure_gdal, load_tile
from estimator.stages.plan import make_plan
from estimator.stages.search import search_items
from estimator.testing.faults import FaultPlan, serve_world_with_faults

CLEAR = (4, 5, 6, 7, 11)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="work directory (never the repository)")
    ap.add_argument("--size", type=int, default=512, help="world size in px (default 512)")
    ap.add_argument("--dates", type=int, default=70, help="dates in the year (default 70)")
    ap.add_argument("--chunk", type=int, default=128, help="chunk size in px (default 128)")
    ap.add_argument("--repeats", type=int, default=3, help="reads per path (default 3)")
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()

    spec = WorldSpec(
        seed=args.seed, size_px=args.size, n_dates=args.dates, start="2023-01-01", end="2023-12-31",
        clear_share=0.05, overcast_share=0.85,
    )
    world = generate_world(args.out / "world", spec)
    regions = load_regions(world.regions_path, "region_id")
    served, proxy = serve_world_with_faults(world.root, args.out / "serve", FaultPlan())
    with served:
        found = search_items(
            StacConfig(url=served.stac_url, max_cloud_cover=100), (-180, -90, 180, 90),
            PeriodConfig(start=spec.start, end=spec.end), progress=False,
        )
        items = {i.id: i for i in found.items}
        clouds = [float(i.properties["eo:cloud_cover"]) for i in found.items]
        plan = make_plan([i.to_dict() for i in found.items], regions, resolution=10, tile_size=8192, chunk_size=args.chunk)
        tile = plan.tiles[0]
        configure_gdal()

        def read_all() -> None:
            stack = load_tile(tile, plan, items)
            assert stack is not None
            dask.compute(stack.dn.data, stack.scl.data)

        keeps: list[np.ndarray] = []

        def read_clear() -> None:
            keep = usable_blocks(tile, plan, items, regions, CLEAR)
            assert keep is not None
            keeps.append(keep)
            stack = load_tile(tile, plan, items, keep=keep)
            assert stack is not None
            dask.compute(stack.dn.data, stack.scl.data)

        results: dict[str, dict[str, list[float]]] = {"all": {"s": [], "bytes": [], "requests": []}, "clear": {"s": [], "bytes": [], "requests": []}}
        with dask.config.set(scheduler="threads", num_workers=2):
            for _ in range(args.repeats):
                for name, fn in (("all", read_all), ("clear", read_clear)):
                    clear_http_cache()
                    before = len(proxy.requests())
                    start = time.perf_counter()
                    fn()
                    results[name]["s"].append(time.perf_counter() - start)
                    time.sleep(0.2)  # let the proxy flush its log
                    new = proxy.requests()[before:]
                    results[name]["bytes"].append(sum(int(r.get("bytes") or 0) for r in new))
                    results[name]["requests"].append(len(new))
    keep = keeps[0]
    summary = {
        "world": {"size_px": args.size, "dates": args.dates, "chunk": args.chunk, "mean_scene_cloud_pct": statistics.mean(clouds), "synthetic": True},
        "blocks_read_share": float(keep.mean()),
        **{
            name: {"median_s": statistics.median(r["s"]), "bytes": statistics.median(r["bytes"]), "requests": statistics.median(r["requests"]), "runs_s": r["s"]}
            for name, r in results.items()
        },
    }
    summary["bytes_ratio"] = summary["all"]["bytes"] / max(summary["clear"]["bytes"], 1)
    summary["time_ratio"] = summary["all"]["median_s"] / summary["clear"]["median_s"]
    (args.out / "bench_read_clear.json").write_text(json.dumps(summary, indent=2))
    print(f"SYNTHETIC cloudy world: {args.size} px, {len(items)} dates, mean scene cloud {summary['world']['mean_scene_cloud_pct']:.1f} %")
    print(f"chunk-dates whose reflectance is read: {100 * keep.mean():.1f} %")
    for name in ("all", "clear"):
        r = summary[name]
        print(f"{name:>5}: {r['bytes'] / 2**20:8.1f} MiB in {r['requests']:.0f} requests, median {r['median_s']:.2f} s ({', '.join(f'{s:.2f}' for s in results[name]['s'])})")
    print(f"ratio all / clear: bytes {summary['bytes_ratio']:.2f}x, time {summary['time_ratio']:.2f}x")


if __name__ == "__main__":
    main()
