"""Command line: ``python -m training fit TRAIN.yaml --labels LABELS.geojson --out MODEL_DIR``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from estimator.cli import add_common_options, add_set_option, guarded

from .registry_cli import add_registry_commands

__all__ = ["main"]

EPILOG_FIT = """examples:
  python -m training fit configs/training/demo.yaml --labels plots.geojson --out models/demo
  python -m training fit train.yaml --labels plots.geojson --class-field clase --out models/v2

The labels file is a GeoJSON FeatureCollection (lon/lat) of polygons or points; the class
field holds class names as strings and the target class is `coca` unless the training
file sets target_class.
"""


def _cmd_fit(args: argparse.Namespace) -> int:
    from estimator.config import load_train
    from estimator.errors import ConfigError

    from .extract import read_labels
    from .fit import train
    from .registry import incoming_dir, register

    cfg = load_train(args.train, overrides=args.set)
    labels = read_labels(args.labels, args.class_field)
    if args.out is None and args.registry is None:
        raise ConfigError("say where the model goes: --out MODEL_DIR or --registry DIR")
    out = args.out.resolve() if args.out is not None else incoming_dir(args.registry)
    model = train(cfg, labels, out, progress=not args.quiet, scheduler=args.scheduler)
    if args.registry is not None:
        model = register(args.registry, out)
    m = model.card["metrics"]
    t = model.card["target_class"]
    f1 = m["per_class"].get(t, {}).get("f1", float("nan"))
    print(f"model {model.model_id} written to {model.path}")
    print(f"cross-validated ({m['cv']}): overall accuracy {m['overall_accuracy']:.3f}, {t} F1 {f1:.3f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="training", description="Train the coca classifier from labeled plots.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    f = sub.add_parser(
        "fit", help="extract features at labeled plots and fit a model", epilog=EPILOG_FIT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Search and load imagery over the labeled plots with the estimator's own code, "
        "cross-validate grouped by plot, fit, and save model.skops + card.json.",
    )
    f.add_argument("train", type=Path, help="training YAML (stac, period, grid, fit)")
    f.add_argument("--labels", type=Path, required=True, help="GeoJSON of labeled plots")
    f.add_argument("--out", type=Path, help="model directory to write")
    f.add_argument("--registry", type=Path, help="model registry to add the model to, as REGISTRY/<model_id>")
    f.add_argument("--class-field", default="class", help="property holding the class name (default: class)")
    f.add_argument("--scheduler", help="dask.distributed scheduler address (default: local threads)")
    add_set_option(f, "training")
    add_common_options(f)
    f.set_defaults(fn=_cmd_fit)
    add_registry_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return guarded(args.fn, args)
