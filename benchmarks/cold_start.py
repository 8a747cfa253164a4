"""The cold start on the hard world, from zero labels (docs/cold_start.md).

Per seed: generate (or reuse) the hard demo world, run a `model: none` job (label-free
strata), then for n = 1,000 and 2,000 draw several samples (different seeds) from the strata,
label them with the SYNTHETIC oracle (the world's truth), and assess: the coca area interval
of each region, its half-width and whether it covers the truth. Then the first model: the
first n = 2,000 sample goes into a label store (`training labels add`), a model is fitted on
it (`training fit --store`), its card gives the spatial-CV coca F1, and a job with that model
gives the mapped coca area beside the truth.

Development seeds are 1-3, report seeds 101-103 (docs/hard_world.md). Everything is
SYNTHETIC.

    python benchmarks/cold_start.py --seeds 101 102 103 --draws 8 --out /tmp/cold-bench

The second round (``--second-round``, on the outputs of a first run of this script): from the
first model's map (`run-model`), samples drawn with `--design target-area` at each n, labelled
by the oracle and assessed. The sampler replaces units that fall on a pixel the first model
was trained on (which `assess` refuses) by the next ones drawn; their count is printed.

    python benchmarks/cold_start.py --seeds 101 102 103 --draws 6 --out /tmp/cold-bench --second-round
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from estimator.config import load_job, load_train
from estimator.demo.oracle import label_with_truth
from estimator.demo.runner import demo_job, demo_train
from estimator.demo.world import generate_world, preset_spec
from estimator.location import write_json
from estimator.run.pipeline import run
from estimator.run.rundir import open_run
from estimator.stats.assess import assess_run
from estimator.stats.sample import draw_sample
from estimator.testing.servers import serve_world
from training.fit import train
from training.labels import DEFAULT_CLASSES
from training.store import LabelStore

DEV_SEEDS = (1, 2, 3)
MIN_PER_STRATUM = 20


def cold_job(world: Any, stac_url: str, run_dir: Path) -> dict[str, Any]:
    job = demo_job(world, stac_url, Path("none"), run_dir)
    job["model"] = "none"
    job["classes"] = list(DEFAULT_CLASSES)
    return job


def one_seed(seed: int, out: Path, ns: list[int], draws: int) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    world = generate_world(out / "world", preset_spec("hard", seed=seed))
    truth_all = json.loads(world.truth_path.read_text())["regions"]
    truth = {rid: r["area_ha"] for rid, r in truth_all.items()}
    res: dict[str, Any] = {"seed": seed, "role": "development" if seed in DEV_SEEDS else "report", "draws": {}}
    with serve_world(world.root, out / "serve") as served, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (out / "job.yaml").write_text(yaml.safe_dump(cold_job(world, served.stac_url, out / "run")))
        t = time.perf_counter()
        run(load_job(out / "job.yaml"), progress=False)
        res["strata_run_s"] = round(time.perf_counter() - t, 1)
        strata_run = open_run(out / "run")
        first_sample = None
        for n in ns:
            rows = []
            for d in range(draws):
                sample = draw_sample(strata_run, n=n, seed=1000 * seed + d, min_per_stratum=MIN_PER_STRATUM)
                labeled = label_with_truth(sample, world, seed=d)
                path = out / f"sample-n{n}-d{d}.geojson"
                write_json(path, labeled)
                if first_sample is None and n == max(ns):
                    first_sample = path
                recs = assess_run(out / "run", path)["records"]
                for r in recs:
                    if r["class"] != "coca":
                        continue
                    tv = truth[r["region"]]["coca"]
                    rows.append({
                        "region": r["region"], "draw": d, "area_ha": r["area_ha"], "low": r["ci95_low_ha"],
                        "high": r["ci95_high_ha"], "truth_ha": tv, "covered": r["ci95_low_ha"] <= tv <= r["ci95_high_ha"],
                    })
            res["draws"][str(n)] = rows
        write_json(out / "coverage.json", res)
        try:
            res["first_model"] = first_model(world, served.stac_url, out, first_sample, truth)
        except Exception as e:
            res["first_model"] = {"error": f"{type(e).__name__}: {e}"}
    return res


def first_model(world: Any, stac_url: str, out: Path, first_sample: Path | None, truth: dict[str, Any]) -> dict[str, Any]:
    """The first model, from the first n = max(ns) sample's labelled units (label store, so
    its card lists them), its spatial-CV coca F1 and its mapped coca area per region."""
    if first_sample is None:
        raise ValueError("no sample")
    shutil.rmtree(out / "labels", ignore_errors=True)
    store = LabelStore(out / "labels")
    store.add(store.read(first_sample, observed=world.spec.end))
    (out / "train.yaml").write_text(yaml.safe_dump(demo_train(world, stac_url)))
    shutil.rmtree(out / "model", ignore_errors=True)
    t = time.perf_counter()
    model = train(load_train(out / "train.yaml"), store.load(), out / "model", progress=False)
    fit_s = time.perf_counter() - t
    m = model.card["metrics"]["per_class"]["coca"]
    res = {"id": model.model_id, "coca_f1_cv": m["f1"], "fit_s": round(fit_s, 1), "n_units": len(store.load().plot_ids)}
    (out / "job-model.yaml").write_text(yaml.safe_dump(demo_job(world, stac_url, out / "model", out / "run-model")))
    result = run(load_job(out / "job-model.yaml"), progress=False)
    res["mapped"] = [
        {"region": r["region"], "mapped_ha": r["mapped_area_ha"], "truth_ha": truth[r["region"]]["coca"]}
        for r in result.records if r["class"] == "coca"
    ]
    return res


def second_round(seed: int, out: Path, ns: list[int], draws: int) -> dict[str, Any]:
    """Target-area samples from the first model's map: coverage and half-width per n."""
    from estimator.stats.target_design import draw_target_sample

    world = generate_world(out / "world", preset_spec("hard", seed=seed))
    truth = {rid: r["area_ha"]["coca"] for rid, r in json.loads(world.truth_path.read_text())["regions"].items()}
    run_dir = out / "run-model"
    rd = open_run(run_dir)
    res: dict[str, Any] = {"seed": seed, "role": "development" if seed in DEV_SEEDS else "report", "draws": {}, "dropped": {}}
    for n in ns:
        rows, dropped = [], []
        for d in range(draws):
            fc = draw_target_sample(rd, n=n, seed=1000 + d)
            dropped.append(fc["sampling"]["excluded_trained"])
            path = out / f"round2-n{n}-d{d}.geojson"
            write_json(path, label_with_truth(fc, world, seed=d))
            for r in assess_run(run_dir, path)["records"]:
                if r["class"] == "coca":
                    t = truth[r["region"]]
                    rows.append({"region": r["region"], "low": r["ci95_low_ha"], "high": r["ci95_high_ha"],
                                 "estimate": r["area_ha"], "truth_ha": t, "covered": bool(r["ci95_low_ha"] <= t <= r["ci95_high_ha"])})
        res["draws"][str(n)] = rows
        res["dropped"][str(n)] = dropped
    return res


def summarise(results: list[dict[str, Any]], ns: list[int]) -> str:
    """Markdown tables: coverage and half-width of the coca intervals per seed and n (and over
    all seeds of a role), then the first model per seed."""
    lines = [
        "| seeds | n | intervals | cover the truth | median half-width (ha) | median relative half-width | median true coca (ha) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    groups = [([r], f"{r['seed']} ({r['role']})") for r in results]
    for role in ("development", "report"):
        rs = [r for r in results if r["role"] == role]
        if len(rs) > 1:
            groups.append((rs, f"all {role} seeds"))
    for rs, label in groups:
        for n in ns:
            rows = [x for r in rs for x in r["draws"][str(n)]]
            cov = np.mean([x["covered"] for x in rows])
            hw = [(x["high"] - x["low"]) / 2 for x in rows]
            rel = [h / x["truth_ha"] for h, x in zip(hw, rows, strict=True) if x["truth_ha"] > 0]
            lines.append(
                f"| {label} | {n:,} | {len(rows)} | {100 * cov:.1f} % | {np.median(hw):.1f} | {100 * np.median(rel):.0f} % | "
                f"{np.median([x['truth_ha'] for x in rows]):.1f} |"
            )
    lines += [
        "",
        "| seed | first model (units) | spatial-CV coca F1 | mapped coca - truth per region (ha) | median relative error |",
        "|---|---|---:|---|---:|",
    ]
    for r in results:
        fm = r.get("first_model") or {}
        if "error" in fm or not fm:
            lines.append(f"| {r['seed']} ({r['role']}) | failed: {fm.get('error', 'not run')} | | | |")
            continue
        err = ", ".join(f"{m['region']} {m['mapped_ha'] - m['truth_ha']:+.1f}" for m in fm["mapped"])
        rel = np.median([(m["mapped_ha"] - m["truth_ha"]) / m["truth_ha"] for m in fm["mapped"] if m["truth_ha"] > 0])
        lines.append(f"| {r['seed']} ({r['role']}) | {fm['id']} ({fm['n_units']}) | {fm['coca_f1_cv']:.3f} | {err} | {100 * rel:+.0f} % |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103])
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 2000])
    ap.add_argument("--draws", type=int, default=8, help="samples drawn per seed and n")
    ap.add_argument("--out", type=Path, default=Path("/tmp/cold-bench"))
    ap.add_argument("--summarise", action="store_true", help="only print the tables of OUT/results.json")
    ap.add_argument("--second-round", action="store_true", help="target-area samples from the first model's map (OUT/seedN/run-model)")
    args = ap.parse_args()
    if args.second_round:
        rounds = []
        for seed in args.seeds:
            t = time.perf_counter()
            rounds.append(second_round(seed, args.out / f"seed{seed}", args.n, args.draws))
            print(f"seed {seed}: {time.perf_counter() - t:.0f} s, drawn units replaced (trained on): {rounds[-1]['dropped']}", flush=True)
            write_json(args.out / "round2.json", rounds)
        print("SYNTHETIC hard world, second round: target-area samples from the first model's map (oracle labels)")
        print(summarise([{**r, "first_model": None} for r in rounds], args.n).split("\n\n")[0])
        return
    if args.summarise:
        print(summarise(json.loads((args.out / "results.json").read_text()), args.n))
        return
    results = []
    for seed in args.seeds:
        t = time.perf_counter()
        results.append(one_seed(seed, args.out / f"seed{seed}", args.n, args.draws))
        print(f"seed {seed}: {time.perf_counter() - t:.0f} s", flush=True)
        write_json(args.out / "results.json", results)
    print("SYNTHETIC hard world, cold start from zero labels (oracle labels)")
    print(summarise(results, args.n))


if __name__ == "__main__":
    main()
