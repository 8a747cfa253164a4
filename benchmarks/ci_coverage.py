"""How often does the 95 % interval cover the true area? (issue 3 acceptance)

Run:  python benchmarks/ci_coverage.py --demo demo --n 3000 --seeds 20
      python benchmarks/ci_coverage.py --demo demo --n 1500 --seeds 20 --strata class --min-true-ha 10

Needs a finished demo (``python -m estimator demo --out DIR``). For each seed, draws a
stratified sample from the demo run, labels it with the world's truth (the oracle; SYNTHETIC),
assesses it in a scratch copy of the run and checks whether each region's interval covers the
true coca area. Prints counts per region and both variance options side by side: the
default (zero-cell adjusted variance for region x class strata; the Jeffreys interval at the
effective sample size for regions as domains of class-only strata) and the textbook one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from estimator.demo.oracle import label_with_truth
from estimator.demo.world import load_world
from estimator.location import write_json
from estimator.run.rundir import open_run
from estimator.stats.assess import assess_run
from estimator.stats.sample import draw_sample


def coverage(
    demo: Path, n: int, seeds: int, target: str = "coca", min_true_ha: float = 50.0, by_region: bool = True
) -> dict[str, dict[str, int]]:
    world = load_world(demo / "world")
    truth = {rid: r["area_ha"][target] for rid, r in json.loads(world.truth_path.read_text())["regions"].items()}
    out: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "run"
        shutil.copytree(demo / "run", scratch, ignore=shutil.ignore_patterns("tiles"))
        run = open_run(scratch)
        for seed in range(seeds):
            sample = label_with_truth(draw_sample(run, n=n, seed=seed, by_region=by_region), world, seed=seed)
            path = Path(tmp) / f"s{seed}.geojson"
            write_json(path, sample)
            for adjust in (True, False):
                res = assess_run(scratch, path, adjust_zero_cells=adjust)
                for r in res["records"]:
                    if r["class"] != target or truth[r["region"]] < min_true_ha:
                        continue
                    key = f"{r['region']} ({'default' if adjust else 'textbook'})"
                    hit = r["ci95_low_ha"] <= truth[r["region"]] <= r["ci95_high_ha"]
                    c = out.setdefault(key, {"covered": 0, "runs": 0, "mean_halfwidth_x100": 0})
                    c["covered"] += int(hit)
                    c["runs"] += 1
                    c["mean_halfwidth_x100"] += round(100 * (r["ci95_high_ha"] - r["area_ha"]) / seeds)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", type=Path, default=Path("demo"))
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--strata", choices=["region-class", "class"], default="region-class")
    ap.add_argument("--min-true-ha", type=float, default=50.0, help="regions with at least this much true coca")
    args = ap.parse_args()
    print(
        f"SYNTHETIC demo world; n = {args.n}; {args.seeds} sample seeds; strata {args.strata}; "
        f"regions with >= {args.min_true_ha:g} ha of coca"
    )
    for key, c in coverage(args.demo, args.n, args.seeds, min_true_ha=args.min_true_ha, by_region=args.strata == "region-class").items():
        print(f"{key:<28} covered {c['covered']:>2}/{c['runs']}  mean CI half-width {c['mean_halfwidth_x100'] / 100:.1f} ha")


if __name__ == "__main__":
    main()
