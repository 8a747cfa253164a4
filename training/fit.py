"""Fitting: a random forest with plot-grouped cross-validation, saved with skops + a card.

Pixels of one plot are near-copies of each other; a random pixel split would put the same
plot in train and test and overstate accuracy. Folds are therefore grouped by plot
(StratifiedGroupKFold) and metrics come from out-of-fold predictions.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from sklearn.model_selection import StratifiedGroupKFold

from estimator.classify import CASCADE_MIN_RECALL
from estimator.config import FitConfig, TrainConfig, config_hash
from estimator.errors import LabelFileError
from estimator.features import FEATURE_NAMES
from estimator.model import CARD_SCHEMA, Model, file_sha256, load_model
from estimator.outputs import atomic_path, write_json

from .extract import LabelSet, Samples, class_counts, extract_cached, extract_samples, labels_card

__all__ = ["cross_validate", "fit_cascade", "fit_model", "make_estimator", "recall_threshold", "save_model", "train"]

log = logging.getLogger(__name__)


def make_estimator(cfg: FitConfig, *, first_stage: bool = False) -> RandomForestClassifier:
    """The classifier, or (``first_stage``) the cascade's small forest, cheap enough to run
    on every pixel. Class imbalance (coca is rare) is handled by balanced class weights."""
    return RandomForestClassifier(
        n_estimators=cfg.cascade_trees if first_stage else cfg.n_estimators,
        max_depth=cfg.cascade_depth if first_stage else cfg.max_depth,
        min_samples_leaf=cfg.cascade_min_leaf if first_stage else cfg.min_samples_leaf,
        class_weight="balanced_subsample",
        n_jobs=-1,
        random_state=cfg.seed,
    )


def _folds(samples: Samples, cfg: FitConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """Plot-grouped, class-stratified folds (the same for the model and its first stage)."""
    classes = np.unique(samples.y)
    plots_per_class = {c: len(np.unique(samples.groups[samples.y == c])) for c in classes}
    k = min(cfg.cv_folds, min(plots_per_class.values()))
    if k < 2:
        raise LabelFileError(
            f"cross-validation needs >= 2 labeled plots per class; have {plots_per_class}; add plots"
        )
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=cfg.seed)
    return list(cv.split(samples.X, samples.y, samples.groups))


def cross_validate(samples: Samples, cfg: FitConfig, target_class: str) -> dict[str, Any]:
    """Plot-grouped, class-stratified k-fold CV; per-class metrics from out-of-fold predictions."""
    classes = np.unique(samples.y)
    splits = _folds(samples, cfg)
    k = len(splits)
    pred = np.empty_like(samples.y)
    folds = []
    for fold, (tr, te) in enumerate(splits):
        missing = sorted(set(classes) - set(np.unique(samples.y[te])))
        if missing:
            warnings.warn(f"CV fold {fold} has no test pixels of {missing}", UserWarning, stacklevel=2)
        est = make_estimator(cfg).fit(samples.X[tr], samples.y[tr])
        pred[te] = est.predict(samples.X[te])
        p, r, f, _ = precision_recall_fscore_support(samples.y[te], pred[te], labels=[target_class], zero_division=0)
        folds.append({"fold": fold, "n_test": len(te), f"{target_class}_f1": float(f[0]), "missing_classes": missing})
    p, r, f, n = precision_recall_fscore_support(samples.y, pred, labels=classes, zero_division=0)
    return {
        "cv": f"StratifiedGroupKFold(n_splits={k}) grouped by plot",
        "overall_accuracy": float((pred == samples.y).mean()),
        "per_class": {
            str(c): {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(n[i])}
            for i, c in enumerate(classes)
        },
        "confusion_matrix": {"labels": [str(c) for c in classes], "rows_true_cols_pred": confusion_matrix(samples.y, pred, labels=classes).tolist()},
        "folds": folds,
    }


def fit_model(samples: Samples, cfg: FitConfig) -> RandomForestClassifier:
    """Fit the final model on all samples."""
    return make_estimator(cfg).fit(samples.X, samples.y)


def recall_threshold(p: np.ndarray, recall: float) -> float:
    """Largest threshold ``t`` with ``mean(p >= t) >= recall`` for target-class probabilities ``p``."""
    if p.size == 0:
        return 0.0
    s = np.sort(p)
    return float(s[int(np.floor((1.0 - recall) * s.size))])


def fit_cascade(samples: Samples, cfg: FitConfig, target_class: str) -> tuple[RandomForestClassifier, dict[str, Any]]:
    """Fit the first stage and choose its threshold from out-of-fold predictions.

    The threshold keeps ``cfg.cascade_recall`` of the target pixels out of fold, times a
    safety margin (``cfg.cascade_margin``: plots unlike any other in the labels get low
    first-stage probabilities, and a new region has such plots). The recall
    reported is measured honestly: for each fold, the threshold is chosen from the other
    folds' out-of-fold predictions and applied to this fold (cross-fitted), so the number
    does not reuse the pixels that set it.
    """
    t = list(np.unique(samples.y)).index(target_class)
    splits = _folds(samples, cfg)
    p = np.empty(len(samples.y))
    fold_of = np.empty(len(samples.y), dtype=np.intp)
    for fold, (tr, te) in enumerate(splits):
        est = make_estimator(cfg, first_stage=True).fit(samples.X[tr], samples.y[tr])
        p[te] = est.predict_proba(samples.X[te])[:, t]
        fold_of[te] = fold
    is_t = samples.y == target_class
    kept = np.zeros(len(p), dtype=bool)
    for fold in range(len(splits)):
        tau = cfg.cascade_margin * recall_threshold(p[is_t & (fold_of != fold)], cfg.cascade_recall)
        kept[fold_of == fold] = p[fold_of == fold] >= tau
    threshold = cfg.cascade_margin * recall_threshold(p[is_t], cfg.cascade_recall)
    recall_cv = float(kept[is_t].mean())
    info: dict[str, Any] = {
        "trees": cfg.cascade_trees,
        "max_depth": cfg.cascade_depth,
        "min_samples_leaf": cfg.cascade_min_leaf,
        "target_recall": cfg.cascade_recall,
        "margin": cfg.cascade_margin,
        "threshold": threshold,
        "recall_cv": recall_cv,
        "pass_fraction_cv": float(kept.mean()),
        "pass_fraction_other_cv": float(kept[~is_t].mean()) if (~is_t).any() else None,
        "cv": f"cross-fitted thresholds over {len(splits)} plot-grouped folds",
    }
    if recall_cv < CASCADE_MIN_RECALL:
        log.warning(
            "the first stage keeps only %.2f%% of %s pixels out of fold (< %.1f%%): jobs will not use it; "
            "add labeled plots (%d here)", 100 * recall_cv, target_class, 100 * CASCADE_MIN_RECALL,
            len(np.unique(samples.groups[is_t])),
        )
    return make_estimator(cfg, first_stage=True).fit(samples.X, samples.y), info


def _code_version() -> str:
    try:
        return version("coca-estimator")
    except PackageNotFoundError:
        return "unknown"


def save_model(out: Path, estimator: Any, card: dict[str, Any], cascade: Any = None) -> Model:
    """Write ``model.skops`` (and ``cascade.skops``) then ``card.json`` atomically; return
    the loaded, checked model."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "model.skops") as tmp:
        sio.dump(estimator, tmp)
    if cascade is not None:
        with atomic_path(out / "cascade.skops") as tmp:
            sio.dump(cascade, tmp)
        card = {**card, "cascade": {**card["cascade"], "file": "cascade.skops", "sha256": file_sha256(out / "cascade.skops")}}
    else:
        card = {k: v for k, v in card.items() if k != "cascade"}
        (out / "cascade.skops").unlink(missing_ok=True)
    write_json(out / "card.json", card)
    return load_model(out)


def train(
    cfg: TrainConfig,
    labels: LabelSet,
    out: Path,
    *,
    progress: bool = True,
    scheduler: str | None = None,
    extra_card: dict[str, Any] | None = None,
) -> Model:
    """Extract, cross-validate, fit and save. Returns the saved model.

    ``labels`` from a label store (``LabelStore.load``) are extracted per batch through the
    store's cache (only new batches are read); ``card["labels"]`` records the batches and
    which of them were extracted or cached.
    """
    extraction = extract_cached(labels, cfg, progress=progress, scheduler=scheduler) if labels.batches else None
    samples = extraction.samples if extraction else extract_samples(labels, cfg, progress=progress, scheduler=scheduler)
    counts = class_counts(samples.y)
    if cfg.target_class not in counts:
        raise LabelFileError(
            f"{labels.path}: no usable pixel of target class '{cfg.target_class}' (classes: {sorted(counts)})"
        )
    log.info("training on %d pixels from %d plots: %s", len(samples.y), len(np.unique(samples.groups)), counts)
    metrics = cross_validate(samples, cfg.fit, cfg.target_class)
    estimator = fit_model(samples, cfg.fit)
    cascade, cascade_info = fit_cascade(samples, cfg.fit, cfg.target_class) if cfg.fit.cascade_trees else (None, None)
    card = {
        "card_schema": CARD_SCHEMA,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "code_version": _code_version(),
        "estimator": type(estimator).__name__,
        "params": {k: v for k, v in estimator.get_params().items() if isinstance(v, (int, float, str, type(None)))},
        "features": list(FEATURE_NAMES),
        "classes": [str(c) for c in estimator.classes_],
        "target_class": cfg.target_class,
        "training_data_sha256": samples.sha256(),
        "labels": labels_card(labels, extraction),
        "samples": {
            "pixels_per_class": counts,
            "unobserved_label_pixels": samples.n_unobserved,
            "plots_without_pixels": samples.n_plots_without_pixels,
        },
        "train_config_hash": config_hash(cfg),
        "train_config": json.loads(cfg.model_dump_json()),
        "metrics": metrics,
        "cascade": cascade_info,
        **(extra_card or {}),
    }
    return save_model(out, estimator, card, cascade)
