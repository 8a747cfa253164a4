"""Validation optimism, calibration and label noise on the demo world (SYNTHETIC).

Run:  python benchmarks/label_noise.py [--out /tmp/label-noise] [--size 1024] [--noise 0.05] [--seeds 5]

Generates (cached) the demo world of ``python -m estimator demo`` (seed 42), serves it,
extracts the labeled pixels once with the estimator's own code (cached as samples.npz) and
reports, all with the demo model's fit settings:

* coca F1 and overall accuracy of random-pixel 5-fold CV, plot-grouped CV and spatially
  blocked CV (the optimism of the first two);
* Brier score (coca one-vs-rest) and log loss of out-of-fold probabilities before and after
  each calibration method (cross-fitted, as in the model card);
* label noise: ``--noise`` of the plots get another class (uniformly among the others,
  seeded), the model is trained on the noisy labels and its out-of-fold predictions are
  scored against the CLEAN labels (and, for reference, against the noisy ones), spatial CV.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml
from sklearn.model_selection import StratifiedKFold

from estimator.config import FitConfig, load_train
from estimator.demo.runner import DEMO_FIT, demo_train
from estimator.demo.world import WorldSpec, generate_world
from estimator.testing.servers import serve_world
from training.extract import Samples, extract_samples, read_labels
from training.fit import calibration_report, cv_splits, fold_metrics, out_of_fold


def load_samples(out: Path, size: int) -> Samples:
    cache = out / "samples.npz"
    if cache.is_file():
        d = np.load(cache)
        return Samples(d["X"], d["y"], d["groups"], 0, 0, d["xy"])
    world = generate_world(out / "world", WorldSpec(seed=42, size_px=size, n_dates=18 if size >= 1024 else 12), progress=False)
    with serve_world(world.root, out / "serve") as served:
        (out / "train.yaml").write_text(yaml.safe_dump(demo_train(world, served.stac_url)))
        s = extract_samples(read_labels(world.labels_path), load_train(out / "train.yaml"), progress=False)
    np.savez(cache, X=s.X, y=s.y, groups=s.groups, xy=s.xy)
    return s


def flip_plots(s: Samples, fraction: float, seed: int) -> tuple[np.ndarray, int]:
    """Labels with ``fraction`` of the plots given another class (all their pixels)."""
    rng = np.random.default_rng(seed)
    classes = np.unique(s.y)
    plots = np.unique(s.groups)
    flipped = rng.choice(plots, int(round(fraction * len(plots))), replace=False)
    y = s.y.copy()
    for p in flipped:
        here = s.groups == p
        y[here] = rng.choice([c for c in classes if c != y[here][0]])
    return y, len(flipped)


def coca(m: dict) -> str:
    return f"coca F1 {m['per_class']['coca']['f1']:.3f}  overall accuracy {m['overall_accuracy']:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/label-noise"))
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--noise", type=float, default=0.05)
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    s = load_samples(args.out, args.size)
    cfg = FitConfig(**DEMO_FIT)
    print(f"SYNTHETIC demo world {args.size} px: {len(s.y)} pixels, {len(np.unique(s.groups))} plots")
    result: dict = {"pixels": len(s.y), "plots": len(np.unique(s.groups))}

    pixel_splits = list(StratifiedKFold(cfg.cv_folds, shuffle=True, random_state=cfg.seed).split(s.X, s.y))
    spatial, what = cv_splits(s, cfg, spatial=True)
    proba = {}
    for name, (splits, desc) in {
        "random_pixel": (pixel_splits, "random pixel StratifiedKFold"),
        "plot": cv_splits(s, cfg, spatial=False),
        "spatial": (spatial, what),
    }.items():
        t = time.perf_counter()
        proba[name] = out_of_fold(s, cfg, splits)
        m = fold_metrics(s.y, proba[name], splits, desc)
        result[name] = {"coca_f1": m["per_class"]["coca"]["f1"], "overall_accuracy": m["overall_accuracy"], "cv": desc}
        print(f"{desc:70s} {coca(m)}  ({time.perf_counter() - t:.0f} s)")

    for method in ("temperature", "isotonic", "sigmoid"):
        rep, _ = calibration_report(s.y, proba["spatial"], spatial, method, "coca")
        b, a = rep["before"], rep["after"]
        result[f"calibration_{method}"] = {k: [b[k], a[k]] for k in ("coca_brier", "log_loss")} | {
            "argmax_changed_fraction": rep["argmax_changed_fraction"]
        }
        print(
            f"calibration {method:11s}: coca Brier {b['coca_brier']:.4f} -> {a['coca_brier']:.4f}, "
            f"log loss {b['log_loss']:.3f} -> {a['log_loss']:.3f}, argmax changed {rep['argmax_changed_fraction']:.3%}"
        )

    clean = result["spatial"]["coca_f1"]
    noisy = []
    for seed in range(args.seeds):
        y, n = flip_plots(s, args.noise, seed)
        noisy_s = replace(s, y=y)
        p = out_of_fold(noisy_s, cfg, spatial)  # same folds as the clean run
        vs_clean = fold_metrics(s.y, p, spatial, what)["per_class"]["coca"]["f1"]
        vs_noisy = fold_metrics(y, p, spatial, what)["per_class"]["coca"]["f1"]
        noisy.append({"seed": seed, "plots_flipped": n, "coca_f1_vs_clean_labels": vs_clean, "coca_f1_vs_noisy_labels": vs_noisy})
        print(f"{args.noise:.0%} plots flipped (seed {seed}, {n} plots): coca F1 {vs_clean:.3f} against clean labels, {vs_noisy:.3f} against noisy ones")
    f1s = np.array([r["coca_f1_vs_clean_labels"] for r in noisy])
    result["label_noise"] = {"fraction": args.noise, "clean_coca_f1": clean, "runs": noisy,
                             "noisy_coca_f1_mean": float(f1s.mean()), "noisy_coca_f1_sd": float(f1s.std(ddof=1)) if len(f1s) > 1 else 0.0}
    print(f"spatial CV coca F1: clean {clean:.3f}; {args.noise:.0%} wrong plot labels {f1s.mean():.3f} +- {f1s.std(ddof=1) if len(f1s) > 1 else 0:.3f} "
          f"(mean +- sd over {len(f1s)} seeds; {clean - f1s.mean():+.3f} drop)")
    (args.out / "label_noise.json").write_text(json.dumps(result, indent=1))
    print(f"written {args.out / 'label_noise.json'}")


if __name__ == "__main__":
    main()
