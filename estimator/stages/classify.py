"""Classify stage: a fitted scikit-learn model applied per dask block.

Only observed pixels (finite features) inside the job's regions are passed to the model;
prediction is the costly step (scikit-learn's forest: about 0.1 Mpix/s per core for 100
trees), so no pixel is predicted twice. A :class:`Predictor` runs, per block:

1. the cascade's first stage (a small forest, when the model has one): pixels whose
   target-class probability is below the model card's threshold are surely not the target
   and keep the first stage's probabilities;
2. the full model on the survivors only.

Both forests are evaluated by :mod:`estimator.stages.treeeval` (compiled, same decisions as
scikit-learn) when they are plain tree ensembles, by their own ``predict_proba`` otherwise.
A calibrated model (``CalibratedClassifierCV`` with one forest) runs its compiled forest,
then scikit-learn's own calibrator on those probabilities.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
from distributed.diagnostics.plugin import WorkerPlugin
from rasterio.features import sieve
from sklearn.base import BaseEstimator, ClassifierMixin

from estimator.stages.features import FEATURE_NAMES
from estimator.stages.model import Model, forest_of
from estimator.stages.treeeval import pack_forest

__all__ = ["CASCADE_MIN_RECALL", "Predictor", "ProbabilityPassthrough", "cascade_usable", "class_codes", "classify_dask", "make_predictor", "predict_block"]


#: Predictors installed in this process by :func:`model_plugin`, by key.
_MODELS: dict[str, Any] = {}


@dataclass(frozen=True)
class ModelRef:
    """A predictor by its key (model identity and options), resolved in the worker that runs
    the block."""

    key: str

    def resolve(self) -> Any:
        try:
            return _MODELS[self.key]
        except KeyError:
            raise RuntimeError(f"model {self.key[:12]} is not installed on this worker") from None


class ModelPlugin(WorkerPlugin):
    """A dask WorkerPlugin that installs the model on every worker, present and future.

    Scattered data is not enough: dask's active memory manager trims broadcast copies to
    one, and losing that worker would lose the model (the job fails with "lost
    dependencies"). A plugin is replayed on restarted and newly joined workers. Defined at
    module level so workers unpickle it by reference and fill this module's registry.
    """

    def __init__(self, key: str, estimator: Any) -> None:
        self.name = f"coca-model-{key}"
        self.key, self.estimator = key, estimator

    def setup(self, worker: Any) -> None:
        _MODELS[self.key] = self.estimator


def model_plugin(key: str, estimator: Any) -> ModelPlugin:
    """The plugin to register with ``client.register_plugin``."""
    return ModelPlugin(key, estimator)


class ProbabilityPassthrough(ClassifierMixin, BaseEstimator):
    """A classifier whose ``predict_proba`` is its input (rows renormalised to sum to 1).

    It lets scikit-learn's calibrators run on probabilities computed elsewhere: the compiled
    forest's at prediction, out-of-fold ones at training.
    """

    def __init__(self, classes: Any = None) -> None:
        self.classes = classes

    def fit(self, X: Any = None, y: Any = None) -> ProbabilityPassthrough:
        self.classes_ = np.asarray(self.classes)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        p = np.asarray(X, dtype=np.float64)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes_[np.argmax(np.asarray(X), axis=1)])


class _Calibrated:
    """A compiled forest followed by the calibrator of a ``CalibratedClassifierCV``."""

    def __init__(self, packed: Any, calibrated: Any) -> None:
        self.packed = packed
        self.calibration = copy.copy(calibrated)
        self.calibration.estimator = ProbabilityPassthrough(calibrated.estimator.classes_).fit()

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.calibration.predict_proba(self.packed.predict_proba(X))


def _compiled(estimator: Any) -> Any:
    """The compiled form of a tree ensemble (or of a calibrated one), or the estimator
    itself for anything else."""
    forest = forest_of(estimator)
    try:
        packed = pack_forest(forest)
    except TypeError:
        return estimator
    return packed if forest is estimator else _Calibrated(packed, estimator.calibrated_classifiers_[0])


class Predictor:
    """The per-block classifier: an optional first stage, then the full model on survivors.

    ``predict_proba`` returns float32 probabilities in the model's class order. Pixels the
    first stage drops (target probability below ``threshold``) keep the first stage's
    probabilities: their target probability is low by construction, and their other classes
    come from the smaller model (recorded in the manifest).
    """

    def __init__(self, full: Any, stage1: Any = None, threshold: float = 0.0, target: int = 0) -> None:
        self.full = _compiled(full)
        self.stage1 = None if stage1 is None else _compiled(stage1)
        self.threshold, self.target = float(threshold), int(target)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if self.stage1 is None:
            return np.asarray(self.full.predict_proba(X), dtype=np.float32)
        out = np.asarray(self.stage1.predict_proba(X), dtype=np.float32)
        keep = out[:, self.target] >= self.threshold
        if keep.any():
            out[keep] = self.full.predict_proba(X[keep])
        return out


#: Out-of-fold recall of the target class below which a model's first stage is not used.
CASCADE_MIN_RECALL = 0.995


def cascade_usable(model: Model) -> str | None:
    """Why ``model``'s first stage cannot be used (``None`` when it can)."""
    if model.cascade is None:
        return "the model has no first stage"
    recall = model.card["cascade"].get("recall_cv")
    if recall is None or recall < CASCADE_MIN_RECALL:
        return f"its out-of-fold {model.target_class} recall {recall} is below {CASCADE_MIN_RECALL}"
    return None


def make_predictor(model: Model, *, cascade: bool = True) -> Predictor:
    """The predictor for ``model``; its first stage is used when ``cascade`` and
    :func:`cascade_usable` finds nothing against it."""
    target = model.classes.index(model.target_class)
    if cascade and cascade_usable(model) is None:
        if model.target_class != model.card.get("target_class", "coca"):
            raise ValueError(
                f"the model's first stage was tuned for '{model.card.get('target_class')}', not "
                f"'{model.target_class}'; run with classify.cascade: false"
            )
        return Predictor(model.estimator, model.cascade, model.cascade_threshold, target)
    return Predictor(model.estimator, target=target)


def predict_block(features: np.ndarray, estimator: Any, n_classes: int, inside: np.ndarray | None = None) -> np.ndarray:
    """Numpy kernel: ``(feature, y, x)`` -> ``(class, y, x)`` probabilities, NaN where
    unobserved or (when ``inside`` is given) outside the area of interest."""
    if isinstance(estimator, ModelRef):
        estimator = estimator.resolve()
    nf, ny, nx = features.shape
    flat = features.reshape(nf, -1).T
    ok = np.isfinite(flat).all(axis=1)
    if inside is not None:
        ok &= inside.reshape(-1)
    out = np.full((ny * nx, n_classes), np.nan, dtype=np.float32)
    if ok.any():
        out[ok] = estimator.predict_proba(np.ascontiguousarray(flat[ok]))
    return out.T.reshape(n_classes, ny, nx)


def classify_dask(
    features: da.Array, estimator: Any, n_classes: int, model_id: str, inside: da.Array | None = None
) -> da.Array:
    """Apply :func:`predict_block` to each block of a ``(feature, y, x)`` dask array.

    ``model_id`` enters the graph key names, so keys are deterministic per model;
    ``inside`` is an optional ``(y, x)`` boolean dask array of pixels to classify.
    """
    if features.shape[0] != len(FEATURE_NAMES):
        raise ValueError(f"expected {len(FEATURE_NAMES)} features, got {features.shape[0]}")
    args: list[Any] = [features]
    if inside is not None:
        args.append(inside.rechunk(features.chunks[1:])[None])
    return da.map_blocks(
        _predict_chunk,
        *args,
        estimator=estimator,
        n_classes=n_classes,
        chunks=((n_classes,), features.chunks[1], features.chunks[2]),
        dtype=np.float32,
        name="classify-" + da.core.tokenize(features.name, n_classes, model_id, None if inside is None else inside.name),
    )


def _predict_chunk(features: np.ndarray, inside: np.ndarray | None = None, *, estimator: Any, n_classes: int) -> np.ndarray:
    return predict_block(features, estimator, n_classes, None if inside is None else inside[0])


def class_codes(probs: np.ndarray, target: int | None = None, threshold: float | None = None) -> np.ndarray:
    """Class map: ``1 + index`` of the class (model order), 0 where unobserved.

    Without ``threshold``, the most probable class. With it (the model card's decision
    rule), class ``target`` where its probability is at or above ``threshold``, else the
    most probable other class.
    """
    observed = np.isfinite(probs).all(axis=0)
    p = np.nan_to_num(probs, nan=-1.0)
    if threshold is None or target is None:
        codes = np.argmax(p, axis=0).astype(np.uint8) + 1
    else:
        others = p.copy()
        others[target] = -np.inf
        codes = np.where(p[target] >= threshold, target, np.argmax(others, axis=0)).astype(np.uint8) + 1
    return np.where(observed, codes, 0).astype(np.uint8)


def sieve_codes(codes: np.ndarray, min_pixels: int) -> tuple[np.ndarray, int]:
    """Apply a minimum mapping unit: 4-connected patches under ``min_pixels`` take the class
    of the largest neighbouring patch. Unobserved pixels (0) neither grow nor absorb patches.

    Returns the sieved codes and the number of pixels whose class changed.
    """
    if min_pixels <= 1 or codes.size <= min_pixels:
        # A sliver tile (the grid's 1-pixel padding can leave one) smaller than the unit
        # holds no whole patch to judge; rasterio refuses a size >= the image.
        return codes, 0
    observed = codes > 0
    out = sieve(codes, size=int(min_pixels), connectivity=4, mask=observed)
    out = np.where(observed, out, 0).astype(np.uint8)
    return out, int((out != codes).sum())
