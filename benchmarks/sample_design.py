"""Target-area vs map-class strata at equal n: the coca interval's half-width and coverage
(issue 14 part 1).

Run:  python benchmarks/sample_design.py DEMO_DIR [DEMO_DIR ...] --n 500 1000 2000 --draws 20

Each DEMO_DIR is a finished hard-world demo (``python -m estimator demo --preset hard --seed S
--out DIR``). One world per seed is reused for every n and every sample draw (building a world
takes minutes), and the target-area strata are counted once per world (they do not depend on
n or the draw). For each n and draw seed, both designs are drawn from the same run:
``--strata class`` (map-class strata, Stehman domain estimator per region) and
``--design target-area`` (probability bins + buffer per region, see
estimator/stats/target_design.py), labelled with the world's truth (the oracle; SYNTHETIC) and
assessed in a scratch copy of the run, with ``assess``'s default (zero-cell adjusted) variance
and with the textbook one. Prints, per variance, design and n, the median 95 % half-width of
each region's coca area, how many intervals cover the true area, and the ratio of median
half-widths; then the adjusted figures per world.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from estimator.demo.oracle import label_with_truth
from estimator.demo.world import load_world
from estimator.location import write_json
from estimator.run.rundir import open_run
from estimator.stats.assess import assess_run
from estimator.stats.sample import draw_sample
from estimator.stats.target_design import draw_target_sample, target_strata

DESIGNS = ("class", "target-area")


def measure(demo: Path, ns: list[int], draws: int, target: str = "coca") -> list[dict[str, Any]]:
    world = load_world(demo / "world")
    truth = {rid: r["area_ha"][target] for rid, r in json.loads(world.truth_path.read_text())["regions"].items()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "run"
        shutil.copytree(demo / "run", scratch, ignore=shutil.ignore_patterns("tiles"))
        run = open_run(scratch)
        layout = target_strata(run, min_pixels=10)
        for n in ns:
            for seed in range(draws):
                for design in DESIGNS:
                    if design == "class":
                        fc = draw_sample(run, n=n, by_region=False, seed=seed)
                    else:
                        fc = draw_target_sample(run, n=n, seed=seed, layout=layout)
                    ref = Path(tmp) / "labeled.geojson"
                    write_json(ref, label_with_truth(fc, world, seed=seed))
                    for variance, adjust in (("adjusted", True), ("textbook", False)):
                        for r in assess_run(scratch, ref, adjust_zero_cells=adjust)["records"]:
                            if r["class"] != target:
                                continue
                            t = truth[r["region"]]
                            rows.append({
                                "world": demo.name, "design": design, "variance": variance, "n": n, "draw": seed,
                                "region": r["region"], "area_ha": r["area_ha"],
                                "half_width_ha": (r["ci95_high_ha"] - r["ci95_low_ha"]) / 2,
                                "truth_ha": t, "covered": r["ci95_low_ha"] <= t <= r["ci95_high_ha"],
                            })
    return rows


def table(rows: list[dict[str, Any]], ns: list[int], variance: str = "adjusted") -> list[str]:
    rows = [r for r in rows if r["variance"] == variance]
    out = ["| n | design | median 95 % half-width (ha) | coverage | half-width ratio class / target-area |", "|---|---|---|---|---|"]
    for n in ns:
        med = {}
        for design in DESIGNS:
            sel = [r for r in rows if r["n"] == n and r["design"] == design]
            if not sel:
                continue
            med[design] = statistics.median(r["half_width_ha"] for r in sel)
            cov = sum(r["covered"] for r in sel)
            ratio = f"{med['class'] / med['target-area']:.2f}x" if design == "target-area" and "class" in med else ""
            out.append(f"| {n} | {design} | {med[design]:.1f} | {cov}/{len(sel)} ({100 * cov / len(sel):.0f} %) | {ratio} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("demos", type=Path, nargs="+")
    ap.add_argument("--n", type=int, nargs="+", default=[500, 1000, 2000])
    ap.add_argument("--draws", type=int, default=20, help="sample seeds per world and n")
    ap.add_argument("--json", type=Path, help="also write every interval here")
    ap.add_argument("--tables", action="store_true", help="DEMO_DIRs are --json files of earlier runs: print their tables together")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for d in args.demos:
        rows += json.loads(d.read_text()) if args.tables else measure(d, args.n, args.draws)
        if args.json and not args.tables:  # as it goes: a long run keeps what it measured
            args.json.write_text(json.dumps(rows, indent=1))
    names = sorted({r["world"] for r in rows})
    print("SYNTHETIC hard world(s), oracle labels:", ", ".join(names), f"({time.perf_counter() - t0:.0f} s)")
    for variance in ("adjusted", "textbook"):
        print(f"\nvariance: {variance} ({'the default of assess' if variance == 'adjusted' else '--no-zero-cell-adjustment'})")
        print("\n".join(table(rows, args.n, variance)))
    if len(names) > 1:
        for name in names:
            print(f"\n{name} (adjusted variance):")
            print("\n".join(table([r for r in rows if r["world"] == name], args.n)))


if __name__ == "__main__":
    main()
