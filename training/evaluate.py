"""Evaluation on held-out labels: one model (``evaluate``) or two side by side (``compare``).

Held-out plots go through the very extraction of training (the estimator's own
search/load/mask/features) and the model through the estimator's own
:class:`~estimator.stages.classify.Predictor` (cascade and calibration included), so the numbers
describe what a job would map.
"""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from estimator.config import TrainConfig
from estimator.errors import ConfigError, LabelFileError
from estimator.location import atomic_path, write_json, write_text
from estimator.report.figures import pyplot, stamp_synthetic, to_png
from estimator.stages.classify import make_predictor
from estimator.stages.model import Model
from training.extract import LabelSet, Samples, extract_samples

__all__ = [
    "compare_models", "evaluate_model", "format_comparison", "heldout_samples", "overlap", "refuse_reference_overlap", "score",
    "write_evaluation",
]

#: A held-out plot within this distance (degrees, about 5 m) of a trained reference unit's
#: pixel centre covers that pixel.
_NEAR_DEG = 5e-5


def refuse_reference_overlap(labels: LabelSet, model: Model) -> None:
    """Raise when held-out ``labels`` cover reference-sample units the model was trained on
    (``card["reference_units"]``): its errors there are training errors, never an assessment.

    Ordinary training plots that reappear only make the metrics optimistic and are warned
    about (:func:`overlap`); reference units were marked to be kept out, so they are refused.
    """
    import shapely

    units = [u for r in model.card.get("reference_units") or [] for u in r.get("units") or []]
    if not units:
        return
    ids = {str(u[0]) for u in units}
    tree = shapely.STRtree(shapely.points([(float(u[1]), float(u[2])) for u in units]))
    hits = [pid for pid, g in zip(labels.plot_ids, labels.geometries, strict=True)
            if pid in ids or len(tree.query(g.buffer(_NEAR_DEG), predicate="intersects"))]
    if hits:
        raise LabelFileError(
            f"{labels.path}: {len(hits)} plot(s) (e.g. {hits[0]}) lie on reference-sample units model {model.model_id} "
            "was trained on (card: reference_units); evaluate it on other labels"
        )


def heldout_samples(labels: LabelSet, model: Model, cfg: TrainConfig | None = None, *, progress: bool = True) -> Samples:
    """Features of the held-out labels, computed with ``cfg`` or the model's own training config."""
    refuse_reference_overlap(labels, model)
    if cfg is None:
        raw = model.card.get("train_config")
        if raw is None:
            raise ConfigError(f"model {model.model_id} has no train_config in its card; pass --config TRAIN.yaml")
        cfg = TrainConfig.model_validate(raw)
    return extract_samples(labels, cfg, progress=progress)


def overlap(labels: LabelSet, model: Model) -> list[str]:
    """Held-out plot ids (or the whole file, by sha256) that the model was trained on."""
    card_labels = model.card.get("labels", {})
    hashes = {card_labels.get("sha256")} | {b.get("sha256") for b in card_labels.get("batches", [])}
    if labels.sha256 in hashes:
        return [f"the whole file {labels.path.name}"]
    return sorted(set(labels.plot_ids) & set(model.card.get("training_plots", [])))


def score(model: Model, samples: Samples) -> dict[str, Any]:
    """Per-class precision/recall/F1, overall accuracy and confusion matrix of ``model``'s
    predictions (argmax of the predictor's probabilities) at ``samples``."""
    proba = make_predictor(model).predict_proba(samples.X)
    pred = np.asarray(model.classes)[np.argmax(proba, axis=1)]
    labels = sorted(set(model.classes) | set(np.unique(samples.y).tolist()))
    p, r, f, n = precision_recall_fscore_support(samples.y, pred, labels=labels, zero_division=0)
    return {
        "model_id": model.model_id,
        "n_pixels": int(len(samples.y)),
        "n_plots": int(len(np.unique(samples.groups))),
        "overall_accuracy": float((pred == samples.y).mean()),
        "per_class": {
            c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(n[i])}
            for i, c in enumerate(labels)
        },
        "confusion_matrix": {"labels": labels, "rows_true_cols_pred": confusion_matrix(samples.y, pred, labels=labels).tolist()},
        "unknown_classes": sorted(set(np.unique(samples.y).tolist()) - set(model.classes)),
    }


def _overlap_warning(labels: LabelSet, model: Model) -> list[str]:
    refuse_reference_overlap(labels, model)
    both = overlap(labels, model)
    if both:
        warnings.warn(
            f"held-out labels overlap model {model.model_id}'s training labels ({len(both)}: {', '.join(both[:3])}); "
            "its metrics are optimistic",
            UserWarning,
            stacklevel=3,
        )
    return both


def evaluate_model(model: Model, labels: LabelSet, samples: Samples) -> dict[str, Any]:
    result = score(model, samples)
    return {"labels": {"path": str(labels.path), "sha256": labels.sha256}, "overlap": _overlap_warning(labels, model), **result}


def compare_models(a: Model, b: Model, labels: LabelSet, samples: Samples) -> dict[str, Any]:
    """Both models scored on the same held-out pixels."""
    return {
        "labels": {"path": str(labels.path), "sha256": labels.sha256, "n_plots": len(labels.plot_ids)},
        "models": [{**score(m, samples), "overlap": _overlap_warning(labels, m), "path": str(m.path)} for m in (a, b)],
    }


def format_comparison(result: dict[str, Any]) -> str:
    """A plain-text table: per class, P/R/F1 of model A beside model B."""
    a, b = result["models"]
    head = f"{'class':12s} {'n':>6s} | {'A ' + a['model_id']:>27s} | {'B ' + b['model_id']:>27s}"
    sub = f"{'':12s} {'':>6s} | {'P':>8s} {'R':>8s} {'F1':>8s} | {'P':>8s} {'R':>8s} {'F1':>8s}"
    rows = [head, sub]
    for c, ma in a["per_class"].items():
        mb = b["per_class"][c]
        rows.append(
            f"{c:12s} {ma['support']:6d} | {ma['precision']:8.3f} {ma['recall']:8.3f} {ma['f1']:8.3f} "
            f"| {mb['precision']:8.3f} {mb['recall']:8.3f} {mb['f1']:8.3f}"
        )
    rows.append(f"{'overall acc.':12s} {a['n_pixels']:6d} | {a['overall_accuracy']:26.3f} | {b['overall_accuracy']:26.3f}")
    return "\n".join(rows)


def _confusion_png(result: dict[str, Any], synthetic: bool) -> bytes:
    plt = pyplot()
    labels = result["confusion_matrix"]["labels"]
    cm = np.array(result["confusion_matrix"]["rows_true_cols_pred"], dtype=float)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.5 + 0.7 * len(labels), 1.2 + 0.6 * len(labels)), layout="constrained")
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7, color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("labeled")
    ax.set_title(f"model {result['model_id']}: accuracy {result['overall_accuracy']:.3f}", fontsize=9)
    if synthetic:
        stamp_synthetic(fig)
    return to_png(fig)


def write_evaluation(out: Path, result: dict[str, Any], *, synthetic: bool = False) -> list[Path]:
    """``evaluation.json``, ``per_class.csv``, ``confusion.csv`` and ``confusion.png`` in ``out``,
    each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "evaluation.json", result)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["class", "precision", "recall", "f1", "support"])
    for c, m in result["per_class"].items():
        w.writerow([c, f"{m['precision']:.4f}", f"{m['recall']:.4f}", f"{m['f1']:.4f}", m["support"]])
    write_text(out / "per_class.csv", buf.getvalue())
    labels = result["confusion_matrix"]["labels"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["labeled \\ predicted", *labels])
    for c, row in zip(labels, result["confusion_matrix"]["rows_true_cols_pred"], strict=True):
        w.writerow([c, *row])
    write_text(out / "confusion.csv", buf.getvalue())
    with atomic_path(out / "confusion.png") as tmp:
        tmp.write_bytes(_confusion_png(result, synthetic))
    return [out / n for n in ("evaluation.json", "per_class.csv", "confusion.csv", "confusion.png")]
