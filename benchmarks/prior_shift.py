"""Issue 13, the next lever after "Levers": is the overestimate in the held-out regions a
shift of class proportions (prior shift), and can the regions' own pixels, or a small
labelled sample from them, correct it? SYNTHETIC hard worlds (docs/hard_world.md).

Development seeds only (1-3), on the tables ``benchmarks/levers.py`` caches (the strip's
training pixels and a uniform random sample of 250,000 observed pixels of the four regions,
with the 33 product features). Per seed, the demo's forest is fitted on the strip and its
out-of-fold probabilities are calibrated as ``training fit`` does; then, on the region
pixels:

- ``strip``: the card's rule (threshold where commission = omission on the strip's OOF);
- ``em``: no labels. The class proportions of the regions are estimated by EM
  (Saerens, Latinne & Decaestecker 2002, Neural Computation 14:21-41) from the calibrated
  probabilities, the probabilities re-weighted to them, and the coca threshold set so
  that as many pixels are mapped as the re-weighted probabilities expect
  (commission = omission in expectation); EM runs per region;
- ``sample-N``: N region pixels drawn at random and labelled by the oracle; the threshold
  is re-chosen on them (commission = omission on the sample); evaluated on the other pixels;
  ``--draws`` draws each;
- ``ceiling SET:CLASSIFIER``: a classifier trained on dense labels (30,000 pixels) from
  three regions and tested on the fourth (each in turn), argmax rule: what the features
  can do with labels from the area itself (``--ceilings``; sets and classifiers of
  ``levers.py``).

Prints per seed and lever the coca F1 in the regions and mapped / true per region.

    python benchmarks/prior_shift.py --cache /tmp/levers-cache --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from levers import CLASSIFIERS, _f1, feature_sets, make_rf, warn_report_seeds

from estimator.config import FitConfig
from estimator.demo.world import DEMO_CLASSES
from estimator.stages.features import FEATURE_NAMES

COCA = DEMO_CLASSES.index("coca") + 1


def em_priors(proba: np.ndarray, train_priors: np.ndarray, iters: int = 200, tol: float = 1e-7) -> tuple[np.ndarray, np.ndarray]:
    """Saerens et al. (2002): class proportions of new data from posteriors made under
    ``train_priors``; returns (priors, re-weighted posteriors)."""
    prior = train_priors.copy()
    post = proba
    for _ in range(iters):
        w = proba * (prior / train_priors)
        post = w / w.sum(1, keepdims=True)
        new = post.mean(0)
        if np.abs(new - prior).max() < tol:
            prior = new
            break
        prior = new
    return prior, post


def expected_count_threshold(p: np.ndarray) -> float:
    """The threshold that maps as many pixels as the probabilities expect (sum of p)."""
    n = int(round(float(p.sum())))
    if n <= 0:
        return 1.0
    return float(np.sort(p)[::-1][min(n, len(p)) - 1])


def score(truth: np.ndarray, mapped: np.ndarray, region: np.ndarray, ids: list[str], keep: np.ndarray | None = None) -> dict[str, Any]:
    if keep is not None:
        truth, mapped, region = truth[keep], mapped[keep], region[keep]
    f1, p, r = _f1(truth, mapped)
    ratios = {rid: float(mapped[region == k + 1].sum() / max(truth[region == k + 1].sum(), 1)) for k, rid in enumerate(ids)}
    return {"f1": f1, "precision": p, "recall": r, "ratio": ratios}


def run_seed(tab: dict[str, Any], seed: int, ns: list[int], draws: int, ceilings: list[str]) -> list[dict[str, Any]]:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    from estimator.stages.classify import ProbabilityPassthrough
    from training.extract import Samples
    from training.fit import area_threshold, calibration_report, cv_splits

    names = list(tab["names"])
    cols = [names.index(c) for c in FEATURE_NAMES]
    X = np.nan_to_num(tab["X_train"][:, cols], nan=-9.0)
    y = tab["y_train"]
    classes = np.unique(y)
    ci = int(np.searchsorted(classes, "coca"))
    splits, what = cv_splits(Samples(X, y, tab["g_train"], 0, 0, tab["xy_train"]), FitConfig(), spatial=True)
    oof = np.zeros((len(y), len(classes)))
    for tr, te in splits:
        est = make_rf().fit(X[tr], y[tr])
        oof[np.ix_(te, np.searchsorted(classes, est.classes_))] = est.predict_proba(X[te])
    _, calibrated = calibration_report(y, oof, splits, "temperature", "coca")
    thr = area_threshold(y, calibrated, classes, "coca", what)["threshold"]
    train_priors = calibrated.mean(0)
    est = make_rf().fit(X, y)
    cal = CalibratedClassifierCV(FrozenEstimator(ProbabilityPassthrough(classes).fit()), method="temperature").fit(oof, y)
    Xr = np.nan_to_num(tab["X_region"][:, cols], nan=-9.0)
    pr = cal.predict_proba(est.predict_proba(Xr))
    truth = tab["truth_region"] == COCA
    region = tab["region_region"]
    ids = [str(r) for r in tab["region_ids"]]
    out: list[dict[str, Any]] = []

    def add(lever: str, mapped: np.ndarray, keep: np.ndarray | None = None, **extra: Any) -> None:
        r = score(truth, mapped, region, ids, keep) | {"seed": seed, "lever": lever} | extra
        out.append(r)
        ratios = " ".join(f"{v:.2f}" for v in r["ratio"].values())
        print(f"seed {seed} {lever:22s} F1 {r['f1']:.3f} (P {r['precision']:.2f} R {r['recall']:.2f}) mapped/true {ratios}"
              + "".join(f" {k} {v}" for k, v in extra.items() if not isinstance(v, (list, dict))), flush=True)

    add("strip", pr[:, ci] >= thr, threshold=round(thr, 3))
    add("strip argmax", pr.argmax(1) == ci)
    # EM per region: each region its own class proportions.
    em_map = np.zeros(len(pr), bool)
    em_argmax = np.zeros(len(pr), bool)
    em_model = {}
    for k, rid in enumerate(ids):
        m = region == k + 1
        prior, post = em_priors(pr[m], train_priors)
        t = expected_count_threshold(post[:, ci])
        em_map[m] = post[:, ci] >= t
        em_argmax[m] = post.argmax(1) == ci
        em_model[rid] = {"coca_prior": float(prior[ci]), "true_share": float(truth[m].mean()), "threshold": t,
                         "model_ratio": float(post[:, ci].sum() / max(truth[m].sum(), 1))}
    add("em", em_map, em=em_model)
    add("em argmax", em_argmax)
    print("   em per region: " + "; ".join(f"{k} prior {v['coca_prior']:.4f} true {v['true_share']:.4f} "
                                           f"model/true {v['model_ratio']:.2f} thr {v['threshold']:.2f}" for k, v in em_model.items()))
    # A labelled random sample from the regions re-chooses the threshold.
    rng = np.random.default_rng(seed)
    for n in ns:
        for d in range(draws):
            idx = rng.choice(len(pr), n, replace=False)
            keep = np.ones(len(pr), bool)
            keep[idx] = False
            ps, ts = pr[idx, ci], truth[idx]
            k_true = int(ts.sum())
            t = float(np.sort(ps)[::-1][k_true - 1]) if k_true else 1.0
            add(f"sample-{n} draw {d}", pr[:, ci] >= t, keep, threshold=round(t, 3), sample_coca=k_true)
    # Ceiling: dense labels from three regions, tested on the fourth.
    lab = np.array(DEMO_CLASSES)[tab["truth_region"] - 1]
    sets = feature_sets(names)
    for spec in ceilings:
        set_name, clf = spec.split(":")
        Xc = np.nan_to_num(tab["X_region"][:, [names.index(c) for c in sets[set_name]]], nan=-9.0)
        ceil = np.zeros(len(pr), bool)
        for k in range(len(ids)):
            te = region == k + 1
            tr_idx = np.flatnonzero(~te)
            tr_idx = np.random.default_rng(k).choice(tr_idx, min(30_000, len(tr_idx)), replace=False)
            m = CLASSIFIERS[clf]().fit(Xc[tr_idx], lab[tr_idx])
            ceil[te] = m.predict(Xc[te]) == "coca"
        add(f"ceiling {spec}", ceil)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/levers-cache"), help="levers.py's cache (seed-N/tables.npz)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--n", type=int, nargs="+", default=[500, 1000])
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--ceilings", nargs="+", default=["base:rf", "all:rf", "base:hgb", "all:hgb"],
                    help="SET:CLASSIFIER trained on dense labels from three regions, tested on the fourth (levers.py's sets)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    warn_report_seeds(a.seeds)
    results: list[dict[str, Any]] = []
    for seed in a.seeds:
        with np.load(a.cache / f"seed-{seed}" / "tables.npz", allow_pickle=False) as z:
            tab = {k: z[k] for k in z.files}
        results += run_seed(tab, seed, a.n, a.draws, a.ceilings)
        if a.json:
            a.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
