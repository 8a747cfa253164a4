"""A forest of the size real data grows, for the cost benchmarks (issue 15 part 6).

The demo's forests are small because the demo worlds are easy or their training tables
small (the hard demo: 60 trees, depth 14, about 50,000 nodes from 40 pixels per plot).
This fits ``--trees`` trees of depth ``--depth`` with leaves of one pixel on up to
``--pixels-per-plot`` pixels of every labelled plot of a hard world made by
``python -m estimator demo --preset hard --seed N --out DIR`` (SYNTHETIC), through the
product's own ``training.fit.train`` (extraction from the served world, spatial CV,
calibration, cascade), and writes the model directory ``--out``. The benchmarks then use
it with ``--model``.

    python -m estimator demo --preset hard --seed 1 --out /tmp/hard-dev/seed-1
    python benchmarks/realistic_model.py --demo /tmp/hard-dev/seed-1 --out /tmp/realistic-model
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from estimator.config import load_train
from estimator.stages.model import forest_of, load_model
from estimator.testing.servers import serve_world
from training.extract import read_labels
from training.fit import train


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", type=Path, required=True, help="output folder of `estimator demo --preset hard`")
    ap.add_argument("--out", type=Path, required=True, help="model directory to write")
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--pixels-per-plot", type=int, default=400)
    a = ap.parse_args(argv)
    world = a.demo / "world"
    cfg = yaml.safe_load((a.demo / "train.yaml").read_text())
    cfg["fit"] |= {"n_estimators": a.trees, "max_depth": a.depth, "min_samples_leaf": 1,
                   "max_pixels_per_plot": a.pixels_per_plot}
    with tempfile.TemporaryDirectory() as tmp_s, serve_world(world, Path(tmp_s) / "serve") as served:
        cfg["stac"]["url"] = served.stac_url
        path = Path(tmp_s) / "train.yaml"
        path.write_text(yaml.safe_dump(cfg))
        t0 = time.perf_counter()
        train(load_train(path), read_labels(world / "labels.geojson"), a.out, progress=True,
              extra_card={"synthetic": True, "realistic_model_of": str(a.demo)})
        secs = time.perf_counter() - t0
    model = load_model(a.out)
    forest = forest_of(model.estimator)
    nodes = sum(t.tree_.node_count for t in forest.estimators_)
    print(f"{a.out}: {len(forest.estimators_)} trees, {nodes:,} nodes, fitted in {secs:.0f} s (SYNTHETIC hard world)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
