"""``python -m training labels add|list``: the label store from the command line."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from estimator.console import add_command
from estimator.errors import LabelFileError

__all__ = ["add_labels_parser"]

EPILOG_ADD = """examples:
  python -m training labels add plots_2024.geojson --store labels/ --period-from demo/train.yaml
  python -m training labels add campaign.gpkg --store labels/ --observed 2024-06-15 --source "DEVIDA field team"
  python -m training labels add new.geojson --store labels/ --new-class cacao --skip-invalid
  python -m training labels add world/labels.geojson --store labels/ --where batch=1 --observed 2024-03-01
  python -m training labels add sample.geojson --store labels/ --skip-invalid   # a labelled reference sample

Each feature needs a class, plot_id, observed (ISO date) and source (observed/source may be
given once for the file); interpreter is optional. Any invalid feature fails the whole file,
with its reason, unless --skip-invalid: then the rejected features are written to
rejected.geojson beside the batch and counted. A labelled reference sample (written by
`estimator sample`) adds its labelled units as points, marked so that a model trained on
them is never assessed on them (see docs/training.md).
"""


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _cmd_add(args: argparse.Namespace) -> int:
    from estimator.config import load_train
    from training.store import LabelStore

    period = load_train(args.period_from).period if args.period_from else None
    try:
        observed = dt.date.fromisoformat(args.observed) if args.observed else None
    except ValueError:
        raise LabelFileError(f"--observed {args.observed!r} is not an ISO date (YYYY-MM-DD)") from None
    store = LabelStore(args.store)
    batch = store.read(
        args.file, class_field=args.class_field, new_classes=args.new_class, period=period, observed=observed,
        source=args.source, layer=args.layer, where=dict(args.where), skip_invalid=args.skip_invalid,
    )
    batch_id = store.add(batch)
    c = batch.counts()
    print(f"added batch {batch_id} to {args.store}: {c['accepted']} of {c['read']} plots {c['classes']}")
    if c["not_selected"]:
        print(f"  {c['not_selected']} features not selected by --where")
    rejected_file = store.batches()[-1].rejected_file
    if rejected_file:
        print(f"  rejected {len(batch.rejected)} {c['rejected']}: see {args.store / rejected_file}")
    if c["without_interpreter"]:
        print(f"  {c['without_interpreter']} plots without an interpreter")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from training.store import LabelStore

    batches = LabelStore(args.store).batches()
    if not batches:
        print(f"{args.store}: no batches")
        return 0
    print(f"{'batch':>5}  {'added':<19}  {'plots':>5}  {'rejected':>8}  {'source file':<24}  classes")
    totals: dict[str, int] = {}
    for b in batches:
        for k, v in b.classes.items():
            totals[k] = totals.get(k, 0) + v
        print(f"{b.id:>5}  {b.added[:19]:<19}  {b.n_plots:>5}  {sum(b.counts['rejected'].values()):>8}  "
              f"{Path(b.source_file).name:<24}  {_classes(b.classes)}")
    print(f"{'all':>5}  {'':<19}  {sum(b.n_plots for b in batches):>5}  "
          f"{sum(sum(b.counts['rejected'].values()) for b in batches):>8}  {'':<24}  {_classes(dict(sorted(totals.items())))}")
    return 0


def _classes(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def add_labels_parser(sub: Any) -> None:
    """Register ``labels add`` and ``labels list`` on the ``training`` subparsers."""
    lab = add_command(
        sub, "labels", None, help="manage a label store (add batches, list them)",
        description="A label store accumulates validated batches of labeled plots with provenance.",
    )
    lsub = lab.add_subparsers(dest="labels_command", required=True, metavar="ACTION")
    a = add_command(
        lsub, "add", _cmd_add, help="validate a GeoJSON/GeoPackage of labeled plots and add it as a batch",
        epilog=EPILOG_ADD,
    )
    a.add_argument("file", type=Path, help="GeoJSON (lon/lat) or GeoPackage (with a CRS) of labeled plots")
    a.add_argument("--store", type=Path, required=True, help="label store directory (created if absent)")
    a.add_argument("--class-field", default="class", help="property holding the class name (default: class)")
    a.add_argument("--period-from", type=Path, metavar="TRAIN.yaml", help="reject plots observed outside this training period")
    a.add_argument("--observed", help="observation date (YYYY-MM-DD) for features without 'observed'")
    a.add_argument("--source", help="source for features without 'source'")
    a.add_argument("--new-class", action="append", default=[], metavar="NAME", help="accept this class although unknown (repeatable)")
    a.add_argument("--layer", help="GeoPackage layer (when the file has several)")
    a.add_argument("--where", action="append", default=[], type=_key_value, metavar="KEY=VALUE",
                   help="add only features whose property KEY equals VALUE (repeatable)")
    a.add_argument("--skip-invalid", action="store_true", help="add the valid features; write the rejected ones to rejected.geojson")
    ls = add_command(lsub, "list", _cmd_list, help="table of the store's batches with counts per class")
    ls.add_argument("--store", type=Path, required=True, help="label store directory")
