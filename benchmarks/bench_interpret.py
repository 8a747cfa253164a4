"""How long an interpreter waits: the interpretation page's costs on a SYNTHETIC demo world.

Run:  python benchmarks/bench_interpret.py [--out /tmp/bench-interpret] [--size 512] [--dates 12] [--units 30]

Generates (cached) a demo world, serves it, trains a small model and runs the job (cached),
draws a 1,500-unit sample, then measures with the tool's own code:

* opening a session (``open_app``: sample and class-map checks, STAC search, plan);
* one unit's imagery, cold (``Scenes.unit``: load through ``stages.load``, mask, render
  every chip): median and 90th percentile over ``--units`` units, one at a time;
* one answer written to the 1,500-unit file (``AnswerStore.answer``: lock, read, change,
  write, fsync, rename): median over 200 answers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import yaml

from estimator.config import load_job, load_train
from estimator.demo.runner import demo_job, demo_train
from estimator.demo.world import WorldSpec, generate_world
from estimator.interpret.server import open_app
from estimator.location import write_json
from estimator.run.pipeline import run
from estimator.run.rundir import open_run
from estimator.stats.sample import draw_sample
from estimator.testing.servers import serve_world
from training.extract import read_labels
from training.fit import train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench-interpret"))
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--dates", type=int, default=12)
    ap.add_argument("--units", type=int, default=30)
    args = ap.parse_args()
    out = args.out
    world = generate_world(out / "world", WorldSpec(seed=7, size_px=args.size, n_dates=args.dates), progress=False)
    with serve_world(world.root, out / "serve") as served:
        (out / "train.yaml").write_text(yaml.safe_dump(demo_train(world, served.stac_url, tile_size=256)))
        if not (out / "model" / "card.json").is_file():
            train(load_train(out / "train.yaml"), read_labels(world.labels_path), out / "model", progress=False)
        (out / "job.yaml").write_text(yaml.safe_dump(demo_job(world, served.stac_url, out / "model", out / "run", tile_size=256)))
        run(load_job(out / "job.yaml"), progress=False)
        sample = out / "sample.geojson"
        write_json(sample, draw_sample(open_run(out / "run"), n=1500, min_per_stratum=20, seed=1))

        t0 = time.perf_counter()
        app = open_app(sample, out / "run", interpreter="bench")
        t_open = time.perf_counter() - t0
        feats = json.loads(sample.read_text())["features"]
        picks = np.random.default_rng(0).choice(len(feats), args.units, replace=False)
        unit_s = []
        chips = []
        for i in picks:
            p = feats[int(i)]["properties"]
            t0 = time.perf_counter()
            img = app.scenes._load(int(p["row"]), int(p["col"]))  # cold: bypasses the cache
            unit_s.append(time.perf_counter() - t0)
            chips.append(len(img.chip_dates))
        answer_s = []
        classes = app.store.classes
        for k in range(200):
            sid = feats[k]["properties"]["sample_id"]
            t0 = time.perf_counter()
            app.store.answer(sid, "interpreter_1", classes[k % len(classes)], name="bench", confidence="high")
            answer_s.append(time.perf_counter() - t0)
    result = {
        "world": {"size_px": args.size, "dates": args.dates, "synthetic": True},
        "sample_units": len(feats), "sample_file_bytes": sample.stat().st_size,
        "open_s": round(t_open, 2),
        "unit_cold_s": {"median": round(statistics.median(unit_s), 3), "p90": round(float(np.percentile(unit_s, 90)), 3), "n": len(unit_s)},
        "chip_dates_per_unit_median": statistics.median(chips),
        "answer_write_ms": {"median": round(1000 * statistics.median(answer_s), 2), "p90": round(1000 * float(np.percentile(answer_s, 90)), 2), "n": len(answer_s)},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
