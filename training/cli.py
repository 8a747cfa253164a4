"""Command line: ``python -m training fit TRAIN.yaml --labels LABELS.geojson --out MODEL_DIR``,
``python -m training suggest RUN_DIR --n N --out TO_LABEL.geojson``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from estimator.console import add_command, add_set_option, guarded
from training.labels_cli import add_labels_parser
from training.registry_cli import add_registry_commands

__all__ = ["main"]

EPILOG_FIT = """examples:
  python -m training fit demo/train.yaml --labels demo/world/labels.geojson --out models/demo
  python -m training fit train.yaml --labels plots.geojson --class-field clase --new-class cacao --out models/v2
  python -m training fit train.yaml --store labels/ --batches 1,2 --out models/v3

The labels file is a GeoJSON FeatureCollection (lon/lat) of polygons or points; the class
field holds class names as strings and the target class is `coca` unless the training
file sets target_class.
"""


def _cmd_fit(args: argparse.Namespace) -> int:
    from estimator.config import load_train
    from training.fit import fit
    from training.store import LabelStore

    labels = LabelStore(args.store) if args.store is not None else args.labels
    model = fit(
        load_train(args.train, overrides=args.set), labels, args.out, registry=args.registry,
        batches=args.batches.split(",") if args.batches else None, class_field=args.class_field,
        new_classes=args.new_class, progress=not args.quiet, scheduler=args.scheduler,
    )
    m = model.card["metrics"]
    t = model.card["target_class"]
    f1 = m["per_class"].get(t, {}).get("f1", float("nan"))
    print(f"model {model.model_id} written to {model.path}")
    print(f"cross-validated ({m['cv']}): overall accuracy {m['overall_accuracy']:.3f}, {t} F1 {f1:.3f}")
    return 0


EPILOG_SUGGEST = """examples:
  python -m training suggest runs/vraem --n 200 --out to_label.geojson
  python -m training suggest runs/vraem --n 500 --min-distance-m 500 --per-region --seed 3 --out to_label.geojson

Points (lon/lat) at the most uncertain pixels of the coca probability (1 - |2p - 1|), split
across regions by expected mislabelled hectares (+ se_area_ha once assessed), no two closer
than --min-distance-m. Fill in class, observed and interpreter, then `training labels add`.
"""


def _cmd_suggest(args: argparse.Namespace) -> int:
    from estimator.location import write_json
    from estimator.run.rundir import open_run
    from training.suggest import suggest

    run = open_run(args.run_dir)
    fc = suggest(
        run, args.n, min_distance_m=args.min_distance_m, per_region=args.per_region,
        min_per_region=args.min_per_region, seed=args.seed, progress=not args.quiet,
    )
    write_json(args.out, fc)
    meta, target = fc["suggest"], fc["suggest"]["target_class"]
    print(f"{'region':<16} {'weight':>10} {'allocated':>9} {'suggested':>9} {'mean_p':>7} {'mean_u':>7} {'u_observed':>10}")
    for reg in meta["regions"]:
        mine = [f["properties"] for f in fc["features"] if f["properties"]["region"] == reg["region"]]
        mp = sum(m[f"{target}_probability"] for m in mine) / len(mine) if mine else float("nan")
        mu = sum(m["uncertainty"] for m in mine) / len(mine) if mine else float("nan")
        uo = reg["mean_uncertainty_observed"]
        print(f"{reg['region']:<16} {reg['weight']:>10.2f} {reg['allocated']:>9} {reg['suggested']:>9} {mp:>7.3f} {mu:>7.3f} "
              f"{uo if uo is not None else float('nan'):>10.4f}")
    print(f"{meta['n']} of {args.n} suggestions, at least {args.min_distance_m:g} m apart, written to {args.out}")
    if run.synthetic:
        print("SYNTHETIC demo run: the suggested points lie in a generated world")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="training", description="Train the coca classifier from labeled plots.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    f = add_command(
        sub, "fit", _cmd_fit, help="extract features at labeled plots and fit a model", epilog=EPILOG_FIT,
        description="Search and load imagery over the labeled plots with the estimator's own code, "
        "cross-validate grouped by plot, fit, and save model.skops + card.json.",
    )
    f.add_argument("train", type=Path, help="training YAML (stac, period, grid, fit)")
    src = f.add_mutually_exclusive_group(required=True)
    src.add_argument("--labels", type=Path, help="GeoJSON of labeled plots")
    src.add_argument("--store", type=Path, help="label store directory (see `training labels add`)")
    f.add_argument("--batches", help="with --store: comma-separated batch ids (default: all)")
    f.add_argument("--out", type=Path, help="model directory to write")
    f.add_argument("--registry", type=Path, help="model registry to add the model to, as REGISTRY/<model_id>")
    f.add_argument("--class-field", default="class", help="property holding the class name (default: class)")
    f.add_argument(
        "--new-class", action="append", default=[], metavar="NAME",
        help="with --labels: accept this class although unknown (repeatable), as `labels add` does",
    )
    f.add_argument("--scheduler", help="dask.distributed scheduler address (default: local threads)")
    add_set_option(f, "training")
    add_labels_parser(sub)
    add_registry_commands(sub)

    s = add_command(
        sub, "suggest", _cmd_suggest, help="propose where to label next (active learning)", epilog=EPILOG_SUGGEST,
        description="Rank a run's observed pixels by the uncertainty of the target probability, allocate "
        "them across regions and keep them spread out; write a GeoJSON to label.",
    )
    s.add_argument("run_dir", type=Path, help="run directory written by `estimator run`")
    s.add_argument("--n", type=int, required=True, help="number of points to suggest")
    s.add_argument("--out", type=Path, required=True, help="GeoJSON file to write")
    s.add_argument("--min-distance-m", type=float, default=200.0, help="minimum ground distance between points (default 200)")
    s.add_argument("--min-per-region", type=int, default=10, help="minimum points per region when --n allows (default 10)")
    s.add_argument("--per-region", action="store_true", help="split --n equally across regions")
    s.add_argument("--seed", type=int, default=0, help="seed for tie-breaks (default 0)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return guarded(args.fn, args)
