"""Command line of the model registry and of held-out evaluation:
``python -m training promote|compare|evaluate``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_registry_commands"]

EPILOG_PROMOTE = """examples:
  python -m training promote 3f2a9c01b7de                  # an id in ./models
  python -m training promote models/3f2a9c01b7de --registry models
  python -m training promote /tmp/new-model --registry /srv/models   # registers a copy first

A job whose `model:` is `promoted` then uses it (registry: $ESTIMATOR_MODELS, else `models/`
beside the job file); the run's manifest.json names the model id.
"""

EPILOG_COMPARE = """examples:
  python -m training compare promoted 3f2a9c01b7de --labels batch3.geojson
  python -m training compare models/a models/b --labels heldout.geojson --config train.yaml --out cmp

Features of the held-out plots are computed with --config (default: model A's training
config from its card; pass --config when the STAC address changed). Writes compare.json.
"""

EPILOG_EVALUATE = """examples:
  python -m training evaluate models/3f2a9c01b7de --labels heldout.geojson --out eval
  python -m training evaluate promoted --labels heldout.geojson --config train.yaml

Writes evaluation.json, per_class.csv, confusion.csv and confusion.png to --out
(default: evaluation-<model_id>).
"""


def _model(ref: str, registry: Path) -> Any:
    from estimator.stages.model import load_model
    from training.registry import resolve

    return load_model(resolve(registry, ref))


def _heldout(args: argparse.Namespace, model: Any) -> tuple[Any, Any]:
    from estimator.config import load_train
    from training.evaluate import heldout_samples
    from training.extract import read_labels

    labels = read_labels(args.labels, args.class_field)
    cfg = load_train(args.config, overrides=args.set) if args.config is not None else None
    return labels, heldout_samples(labels, model, cfg, progress=not args.quiet)


def _cmd_promote(args: argparse.Namespace) -> int:
    from training.registry import promote

    model = promote(args.registry, args.model)
    print(f"promoted model {model.model_id} in {args.registry} (jobs with `model: promoted` now use {model.path})")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from estimator.location import write_json
    from training.evaluate import compare_models, format_comparison

    a, b = _model(args.model_a, args.registry), _model(args.model_b, args.registry)
    labels, samples = _heldout(args, a)
    result = compare_models(a, b, labels, samples)
    print(f"held-out labels {labels.path.name}: {result['models'][0]['n_plots']} plots, {len(samples.y)} pixels")
    print(format_comparison(result))
    for m in result["models"]:
        if m["overlap"]:
            print(f"note: model {m['model_id']} was trained on {len(m['overlap'])} of these held-out plots; its metrics are optimistic")
    out = args.out / "compare.json"
    write_json(out, result)
    print(f"written {out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import evaluate_model, write_evaluation

    model = _model(args.model, args.registry)
    labels, samples = _heldout(args, model)
    result = evaluate_model(model, labels, samples)
    out = args.out if args.out is not None else Path(f"evaluation-{model.model_id}")
    write_evaluation(out, result, synthetic=bool(model.card.get("synthetic")))
    t = model.target_class
    f1 = result["per_class"].get(t, {}).get("f1", float("nan"))
    print(f"model {model.model_id} on {labels.path.name}: overall accuracy {result['overall_accuracy']:.3f}, {t} F1 {f1:.3f}")
    print(f"written {out}/evaluation.json, per_class.csv, confusion.csv, confusion.png")
    return 0


def add_registry_commands(sub: Any) -> None:
    """Add ``promote``, ``compare`` and ``evaluate`` to the ``training`` subparsers."""
    from estimator.console import add_command, add_set_option
    from training.registry import DEFAULT_REGISTRY

    def common(p: argparse.ArgumentParser, heldout: bool) -> None:
        p.add_argument("--registry", type=Path, default=DEFAULT_REGISTRY, help="model registry (default: models)")
        if heldout:
            p.add_argument("--labels", type=Path, required=True, help="GeoJSON of held-out labeled plots")
            p.add_argument("--config", type=Path, help="training YAML for feature extraction (default: model A's)")
            p.add_argument("--class-field", default="class", help="property holding the class name (default: class)")
            add_set_option(p, "training")

    p = add_command(sub, "promote", _cmd_promote, help="make a model the one jobs with `model: promoted` use", epilog=EPILOG_PROMOTE)
    p.add_argument("model", help="model id in the registry, or a model directory")
    common(p, heldout=False)

    p = add_command(sub, "compare", _cmd_compare, help="score two models on the same held-out labels", epilog=EPILOG_COMPARE)
    p.add_argument("model_a", help="model id, `promoted`, or model directory")
    p.add_argument("model_b", help="model id, `promoted`, or model directory")
    p.add_argument("--out", type=Path, default=Path("."), help="directory for compare.json (default: .)")
    common(p, heldout=True)

    p = add_command(sub, "evaluate", _cmd_evaluate, help="confusion matrix and per-class metrics on labels", epilog=EPILOG_EVALUATE)
    p.add_argument("model", help="model id, `promoted`, or model directory")
    p.add_argument("--out", type=Path, help="output directory (default: evaluation-<model_id>)")
    common(p, heldout=True)
