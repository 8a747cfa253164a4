"""Fitting: a random forest with spatially blocked cross-validation and calibrated
probabilities, saved with skops + a card.

Pixels of one plot are near-copies of each other, and neighbouring plots share soil, weather
and management; a random pixel split (or even a plot split) puts near-copies in train and
test and overstates accuracy. The headline folds are therefore spatial blocks
(``fit.block_km``), each plot wholly in the block of its centre and each block wholly in one
fold (StratifiedGroupKFold over block ids). Blocking can leave a class out of a fold's test
set (a known problem of WorldCereal's spatial CV): such folds are reported per class, listed
in the card and warned about (:class:`MissingClassInFoldWarning`), never silently averaged.
The plot-grouped CV is reported beside it, to show the optimism it carries.

Probabilities are calibrated with scikit-learn's ``CalibratedClassifierCV(ensemble=False)``
on the same folds: the calibrator is fitted on out-of-fold forest probabilities and applied
to one forest fitted on all pixels, so prediction still runs a single (compiled) forest plus
a cheap calibrator. Its effect is measured out of fold (cross-fitted) and written to the card.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import warnings
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import skops.io as sio
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from sklearn.model_selection import StratifiedGroupKFold

from estimator.config import FitConfig, TrainConfig, config_hash
from estimator.errors import LabelFileError
from estimator.location import atomic_path, write_json
from estimator.stages.classify import CASCADE_MIN_RECALL, ProbabilityPassthrough
from estimator.stages.features import FEATURE_NAMES
from estimator.stages.model import CARD_SCHEMA, Model, file_sha256, forest_of, load_model
from estimator.warnings import MissingClassInFoldWarning
from training.extract import (
    LabelSet,
    Samples,
    class_counts,
    extract_cached,
    extract_samples,
    labels_card,
    read_labels,
    reference_units,
)

if TYPE_CHECKING:
    from training.store import LabelStore

__all__ = [
    "area_threshold",
    "calibration_report",
    "cross_validate",
    "cv_splits",
    "evaluate_cv",
    "fit",
    "fit_cascade",
    "fit_model",
    "make_estimator",
    "out_of_fold",
    "recall_threshold",
    "save_model",
    "spatial_blocks",
    "train",
]

log = logging.getLogger(__name__)

Splits = list[tuple[np.ndarray, np.ndarray]]


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


def spatial_blocks(samples: Samples, block_km: float) -> np.ndarray:
    """Block id per pixel: the ``block_km`` square holding the centre of the pixel's plot
    (so a plot is never split between blocks)."""
    if samples.xy is None:
        raise ValueError("samples carry no pixel coordinates (Samples.xy); re-extract them or use fit.cv: plot")
    _, plot = np.unique(samples.groups, return_inverse=True)
    n = np.bincount(plot)
    centre = np.column_stack([np.bincount(plot, weights=samples.xy[:, i]) / n for i in (0, 1)])
    cell = np.floor(centre / (1000.0 * block_km)).astype(np.int64)
    _, block = np.unique(cell, axis=0, return_inverse=True)
    return np.asarray(block).ravel()[plot]


def cv_splits(samples: Samples, cfg: FitConfig, *, spatial: bool) -> tuple[Splits, str]:
    """Class-stratified folds grouped by spatial block (``spatial``) or by plot, and their
    description for the card."""
    classes = np.unique(samples.y)
    plots_per_class = {str(c): len(np.unique(samples.groups[samples.y == c])) for c in classes}
    if min(plots_per_class.values()) < 2:
        raise LabelFileError(
            f"cross-validation needs >= 2 labeled plots per class; have {plots_per_class}; add plots"
        )
    if spatial:
        groups = spatial_blocks(samples, cfg.block_km)
        n_groups = len(np.unique(groups))
        k = min(cfg.cv_folds, n_groups)
        if k < 2:
            raise LabelFileError(
                f"the labeled plots lie in {n_groups} spatial block of {cfg.block_km} km; "
                "lower fit.block_km or use fit.cv: plot"
            )
        what = f"{n_groups} spatial blocks of {cfg.block_km:g} km, grouped by plot"
    else:
        groups = samples.groups
        k = min(cfg.cv_folds, min(plots_per_class.values()))
        what = "plot"
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=cfg.seed)
    return list(cv.split(samples.X, samples.y, groups)), f"StratifiedGroupKFold(n_splits={k}) grouped by {what}"


def _folds(samples: Samples, cfg: FitConfig) -> Splits:
    """Plot-grouped folds (the cascade's first stage is tuned on these)."""
    return cv_splits(samples, cfg, spatial=False)[0]


def out_of_fold(samples: Samples, cfg: FitConfig, splits: Splits) -> np.ndarray:
    """Out-of-fold forest probabilities, columns in sorted class order."""
    classes = np.unique(samples.y)
    proba = np.zeros((len(samples.y), len(classes)))
    for tr, te in splits:
        est = make_estimator(cfg).fit(samples.X[tr], samples.y[tr])
        proba[np.ix_(te, np.searchsorted(classes, est.classes_))] = est.predict_proba(samples.X[te])
    return proba


def _per_class(y: np.ndarray, pred: np.ndarray, classes: np.ndarray) -> dict[str, dict[str, float | int]]:
    p, r, f, n = precision_recall_fscore_support(y, pred, labels=classes, zero_division=0)
    return {
        str(c): {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(n[i])}
        for i, c in enumerate(classes)
    }


def fold_metrics(y: np.ndarray, proba: np.ndarray, splits: Splits, description: str) -> dict[str, Any]:
    """Pooled and per-fold per-class metrics of out-of-fold probabilities; warns (and lists
    in each fold's ``missing_classes``) when a class has no test pixel in a fold."""
    classes = np.unique(y)
    pred = classes[np.argmax(proba, axis=1)]
    folds = []
    for fold, (_, te) in enumerate(splits):
        missing = sorted(str(c) for c in set(classes) - set(np.unique(y[te])))
        if missing:
            warnings.warn(
                f"{description}: fold {fold} has no test pixel of {missing}; their metrics come from the other folds",
                MissingClassInFoldWarning, stacklevel=3,
            )
        per_class = {c: m for c, m in _per_class(y[te], pred[te], classes).items() if c not in missing}
        folds.append({"fold": fold, "n_test": len(te), "per_class": per_class, "missing_classes": missing})
    return {
        "cv": description,
        "overall_accuracy": float((pred == y).mean()),
        "per_class": _per_class(y, pred, classes),
        "confusion_matrix": {"labels": [str(c) for c in classes], "rows_true_cols_pred": confusion_matrix(y, pred, labels=classes).tolist()},
        "folds": folds,
        "folds_missing_a_class": sum(bool(f["missing_classes"]) for f in folds),
    }


def cross_validate(samples: Samples, cfg: FitConfig, target_class: str, *, spatial: bool | None = None) -> dict[str, Any]:
    """Cross-validated metrics of the forest (spatial blocks unless ``cfg.cv`` or ``spatial``
    says plots); per class pooled out of fold and per fold."""
    splits, what = cv_splits(samples, cfg, spatial=cfg.cv == "spatial" if spatial is None else spatial)
    return fold_metrics(samples.y, out_of_fold(samples, cfg, splits), splits, what)


def _calibrator(method: str, classes: np.ndarray) -> CalibratedClassifierCV:
    return CalibratedClassifierCV(FrozenEstimator(ProbabilityPassthrough(classes).fit()), method=method)


def calibration_report(
    y: np.ndarray, proba: np.ndarray, splits: Splits, method: str, target_class: str, bins: int = 10
) -> tuple[dict[str, Any], np.ndarray]:
    """Cross-fitted effect of calibrating out-of-fold probabilities ``proba``: for each fold,
    a calibrator fitted on the other folds' probabilities is applied to this fold's. Returns
    Brier scores (target class one-vs-rest, and multiclass), log loss and a reliability table
    of the target class, before and after, and the calibrated probabilities."""
    classes = np.unique(y)
    after = proba.copy()
    skipped = []
    if method != "none":
        for fold, (tr, te) in enumerate(splits):
            if len(np.unique(y[tr])) < len(classes):
                # All plots of a class fell in this fold's test part (spatial folds on few
                # plots): no calibrator can be fitted without it; the fold stays uncalibrated.
                skipped.append(fold)
                continue
            after[te] = _calibrator(method, classes).fit(proba[tr], y[tr]).predict_proba(proba[te])
    t = int(np.searchsorted(classes, target_class))
    is_t = (y == target_class).astype(float)
    onehot = (y[:, None] == classes[None, :]).astype(float)
    truth = np.searchsorted(classes, y)
    edges = np.linspace(0.0, 1.0, bins + 1)

    def summary(p: np.ndarray) -> dict[str, Any]:
        b = np.clip(np.digitize(p[:, t], edges[1:-1]), 0, bins - 1)
        table = [
            {"bin": [float(edges[i]), float(edges[i + 1])], "n": int((b == i).sum()),
             "mean_predicted": float(p[b == i, t].mean()), "observed_fraction": float(is_t[b == i].mean())}
            for i in range(bins) if (b == i).any()
        ]
        return {
            f"{target_class}_brier": float(np.mean((p[:, t] - is_t) ** 2)),
            "brier_multiclass": float(np.mean(np.sum((p - onehot) ** 2, axis=1))),
            "log_loss": float(-np.mean(np.log(np.clip(p[np.arange(len(y)), truth], 1e-15, None)))),
            f"{target_class}_reliability": table,
        }

    report = {
        "method": method,
        "fitted_on": "out-of-fold forest probabilities of the headline folds (CalibratedClassifierCV, ensemble=False)",
        "measured": "cross-fitted out of fold: each fold calibrated by a calibrator fitted on the other folds",
        "before": summary(proba),
        "after": summary(after),
        "argmax_changed_fraction": float((np.argmax(after, axis=1) != np.argmax(proba, axis=1)).mean()),
        "folds_not_calibrated": skipped,
    }
    return report, after


def fit_model(samples: Samples, cfg: FitConfig, splits: Splits | None = None) -> Any:
    """Fit the final model on all samples: the forest, wrapped (unless ``cfg.calibration`` is
    ``none``) in a calibrator fitted on out-of-fold probabilities of ``splits``."""
    forest = make_estimator(cfg)
    if cfg.calibration == "none":
        return forest.fit(samples.X, samples.y)
    if splits is None:
        splits = cv_splits(samples, cfg, spatial=cfg.cv == "spatial")[0]
    model = CalibratedClassifierCV(forest, method=cfg.calibration, cv=splits, ensemble=False)
    return model.fit(samples.X, samples.y)


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


def area_threshold(y: np.ndarray, proba: np.ndarray, classes: np.ndarray, target_class: str, cv: str) -> dict[str, Any]:
    """The decision rule: the target-class probability at or above which a pixel is mapped
    as the target, chosen on out-of-fold calibrated probabilities ``proba`` so that
    commission equals omission (as many pixels mapped as the target as there are target
    pixels: the mapped area is unbiased on these pixels), with the argmax rule's errors
    beside it.

    The threshold is the n-th largest target probability (n = target pixels), so exactly n
    pixels are mapped as the target (ties at the threshold can add a few).
    """
    t = int(np.searchsorted(classes, target_class))
    p = proba[:, t]
    is_t = y == target_class
    n_true = int(is_t.sum())
    threshold = float(np.sort(p)[::-1][n_true - 1]) if n_true else 1.0

    def errors(mapped: np.ndarray) -> dict[str, Any]:
        fp, fn = int((mapped & ~is_t).sum()), int((~mapped & is_t).sum())
        return {
            "commission_pixels": fp,
            "omission_pixels": fn,
            "commission": fp / max(int(mapped.sum()), 1),
            "omission": fn / max(n_true, 1),
            "mapped_over_true": float(mapped.sum() / max(n_true, 1)),
        }

    return {
        "rule": "target_threshold",
        "description": f"a pixel is {target_class} when p({target_class}) >= threshold, else the most probable other class",
        "threshold": threshold,
        "chosen_on": f"out-of-fold calibrated probabilities ({cv}), commission pixels = omission pixels",
        "oof_at_threshold": errors(p >= threshold),
        "oof_argmax": errors(np.argmax(proba, axis=1) == t),
    }


def evaluate_cv(
    samples: Samples, cfg: FitConfig, target_class: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None, Splits, dict[str, Any]]:
    """Headline metrics, the calibration report, the plot-grouped CV's metrics beside
    spatial ones (None when the headline is plot-grouped), the headline splits and the
    decision rule (:func:`area_threshold` on the cross-fitted calibrated probabilities)."""
    spatial = cfg.cv == "spatial"
    splits, what = cv_splits(samples, cfg, spatial=spatial)
    proba = out_of_fold(samples, cfg, splits)
    metrics = fold_metrics(samples.y, proba, splits, what)
    calibration, calibrated = calibration_report(samples.y, proba, splits, cfg.calibration, target_class)
    decision = area_threshold(samples.y, calibrated, np.unique(samples.y), target_class, what)
    other = cross_validate(samples, cfg, target_class, spatial=False) if spatial else None
    return metrics, calibration, other, splits, decision


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
    card = {**card, "model_file_sha256": file_sha256(out / "model.skops")}
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
    if len(set(labels.classes)) < 2:
        raise LabelFileError(
            f"{labels.path}: only one class ({', '.join(sorted(set(labels.classes))) or 'none'}); a classifier needs "
            "at least two: add plots of other classes (or other batches)"
        )
    extraction = extract_cached(labels, cfg, progress=progress, scheduler=scheduler) if labels.batches else None
    samples = extraction.samples if extraction else extract_samples(labels, cfg, progress=progress, scheduler=scheduler)
    counts = class_counts(samples.y)
    if cfg.target_class not in counts:
        raise LabelFileError(
            f"{labels.path}: no usable pixel of target class '{cfg.target_class}' (classes: {sorted(counts)})"
        )
    log.info("training on %d pixels from %d plots: %s", len(samples.y), len(np.unique(samples.groups)), counts)
    metrics, calibration, plot_metrics, splits, decision = evaluate_cv(samples, cfg.fit, cfg.target_class)
    estimator = fit_model(samples, cfg.fit, splits)
    cascade, cascade_info = fit_cascade(samples, cfg.fit, cfg.target_class) if cfg.fit.cascade_trees else (None, None)
    card = {
        "card_schema": CARD_SCHEMA,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "code_version": _code_version(),
        "estimator": type(estimator).__name__,
        "params": {k: v for k, v in forest_of(estimator).get_params().items() if isinstance(v, (int, float, str, type(None)))},
        "features": list(FEATURE_NAMES),
        "classes": [str(c) for c in estimator.classes_],
        "target_class": cfg.target_class,
        "training_data_sha256": samples.sha256(),
        "training_plots": sorted({str(g) for g in samples.groups}),
        "labels": labels_card(labels, extraction),
        # Reference-sample units trained on: runs of this model copy them into their
        # manifest, and `estimator assess` refuses a sample that falls on them.
        "reference_units": reference_units(labels),
        "samples": {
            "pixels_per_class": counts,
            "unobserved_label_pixels": samples.n_unobserved,
            "plots_without_pixels": samples.n_plots_without_pixels,
        },
        "train_config_hash": config_hash(cfg),
        "train_config": json.loads(cfg.model_dump_json()),
        "metrics": metrics,
        "metrics_plot_cv": plot_metrics,
        "calibration": calibration,
        "cascade": cascade_info,
        "decision": decision,
        **(extra_card or {}),
    }
    return save_model(out, estimator, card, cascade)


def fit(
    cfg: TrainConfig | Path | str,
    labels: LabelSet | LabelStore | Path | str,
    out: Path | str | None = None,
    *,
    registry: Path | str | None = None,
    batches: Sequence[str] | None = None,
    class_field: str = "class",
    new_classes: Sequence[str] = (),
    progress: bool = False,
    scheduler: str | None = None,
) -> Model:
    """Train a model from labeled plots; this is ``training fit``.

    Features are extracted at the labeled pixels with the estimator's own code, the forest
    is cross-validated in spatial blocks, fitted and saved as ``model.skops`` + ``card.json``.

    Parameters
    ----------
    cfg
        The training configuration, or the path of a training YAML file.
    labels
        A GeoJSON of labeled plots, a :class:`LabelStore` (only new batches are extracted;
        the others come from its cache) or plots already read (:func:`read_labels`).
    out
        Model directory to write.
    registry
        Model registry to add the model to, as ``<registry>/<model_id>`` (with or instead
        of ``out``).
    batches
        With a label store: the batch ids to train on (default: all).
    class_field
        With a GeoJSON file: the property holding the class name.
    new_classes
        With a GeoJSON file: class names to accept although unknown (a misspelt class,
        ``'Coca '``, is refused otherwise), as ``training labels add --new-class`` does.
    progress
        Show progress bars.
    scheduler
        dask.distributed scheduler address (default: local threads).

    Returns
    -------
    Model
        The saved model: ``model_id``, ``classes``, ``card`` (metrics, labels, calibration).

    Examples
    --------
    >>> import tempfile
    >>> import training
    >>> from estimator.demo import example
    >>> ex = example()
    >>> with ex.serve() as stac_url:
    ...     model = training.fit(ex.train_config(stac_url), ex.world.labels_path, tempfile.mkdtemp())
    >>> "coca" in model.classes, model.card["target_class"]
    (True, 'coca')
    """
    from estimator.config import load_train
    from estimator.errors import ConfigError
    from training.labels import DEFAULT_CLASSES, check_classes
    from training.registry import incoming_dir, register
    from training.store import LabelStore

    cfg = cfg if isinstance(cfg, TrainConfig) else load_train(cfg)
    if out is None and registry is None:
        raise ConfigError("say where the model goes: out (--out MODEL_DIR) or registry (--registry DIR)")
    if isinstance(labels, LabelStore):
        labels = labels.load(list(batches) if batches else None)
    elif not isinstance(labels, LabelSet):
        path = Path(labels)
        labels = read_labels(path, class_field)
        check_classes(labels.classes, {*DEFAULT_CLASSES, *new_classes}, path)
    dst = Path(out).resolve() if out is not None else incoming_dir(Path(str(registry)))
    model = train(cfg, labels, dst, progress=progress, scheduler=scheduler)
    if registry is not None:
        model = register(Path(registry), dst)
    return model
