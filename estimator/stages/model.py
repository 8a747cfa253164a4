"""Model artifacts: a skops file plus a model card, loaded only with trusted types.

Directory layout (written by ``python -m training fit``)::

    MODEL_DIR/model.skops   the fitted scikit-learn estimator (never pickle)
    MODEL_DIR/card.json     features (names and order), classes, target class,
                            training-data hash, cross-validated metrics, versions
    MODEL_DIR/cascade.skops optional first stage (a small forest) with its threshold and
                            measured coca recall in ``card["cascade"]``

Prediction refuses a model whose feature list differs from :data:`FEATURE_NAMES`.

A registry (written by ``training fit --registry`` and ``training promote``) is a directory
of ``<model_id>/`` model directories and ``registry.json``, the index naming the promoted
model; a job's ``model: promoted`` (or ``registry:<id>``) is resolved by :mod:`estimator.modelrefs`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import skops.io as sio

from estimator.errors import ModelFileError, ModelSchemaError
from estimator.stages.features import FEATURE_NAMES

__all__ = [
    "CARD_SCHEMA",
    "TRUSTED_TYPES",
    "Model",
    "file_sha256",
    "forest_of",
    "load_model",
]

#: Types skops does not trust by default that our own models contain. Anything else in a
#: model file is refused: a skops file can name arbitrary callables.
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.tree._tree.Tree",
    # CalibratedClassifierCV(ensemble=False): its one fitted forest and calibrator
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.calibration._TemperatureScaling",
)
CARD_SCHEMA = 1


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Model:
    """A loaded, contract-checked classifier."""

    estimator: Any
    """Fitted scikit-learn classifier with ``predict_proba``."""
    classes: tuple[str, ...]
    """Class names in ``predict_proba`` column order."""
    target_class: str
    card: dict[str, Any]
    model_id: str
    """First 12 hex digits of the skops file's sha256."""
    sha256: str
    path: Path
    cascade: Any = None
    """Fitted first-stage classifier (same classes), or None."""

    @property
    def cascade_threshold(self) -> float:
        """Target-class probability of the first stage at or above which a pixel goes on to
        the full model."""
        return float(self.card["cascade"]["threshold"]) if self.cascade is not None else 0.0

    @property
    def decision_threshold(self) -> float | None:
        """Target-class probability at or above which a pixel is mapped as the target (the
        card's decision rule), or None for the most probable class (models without one, or
        a job whose target class is not the one the threshold was chosen for)."""
        rule = self.card.get("decision") or {}
        if rule.get("rule") != "target_threshold" or self.card.get("target_class") != self.target_class:
            return None
        return float(rule["threshold"])

    @property
    def identity(self) -> str:
        """sha256 over the model and its first stage: what a result was computed with."""
        if self.cascade is None:
            return self.sha256
        return hashlib.sha256(f"{self.sha256}:{self.card['cascade']['sha256']}".encode()).hexdigest()


def forest_of(estimator: Any) -> Any:
    """The fitted classifier inside a calibrated model (``CalibratedClassifierCV`` with
    ``ensemble=False``), or ``estimator`` itself."""
    calibrated = getattr(estimator, "calibrated_classifiers_", None)
    if calibrated is not None and len(calibrated) == 1:
        return calibrated[0].estimator
    return estimator


def _load_skops(path: Path) -> Any:
    """Load a skops file, refusing any type outside :data:`TRUSTED_TYPES`."""
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as e:  # skops raises a variety of zip/json errors on a bad file
        raise ModelFileError(f"{path} is not a skops file ({type(e).__name__}); retrain the model") from None
    refused = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if refused:
        raise ModelFileError(
            f"{path} contains types this tool does not trust ({', '.join(refused[:3])}); refusing to load it"
        )
    return sio.load(path, trusted=list(untrusted))


def load_model(model_dir: Path) -> Model:
    """Load and check a model directory.

    Raises
    ------
    ModelFileError
        Missing files, an unreadable card, or a skops file holding untrusted types.
    ModelSchemaError
        Features or classes that do not match this version of the pipeline.
    """
    skops_path, card_path = model_dir / "model.skops", model_dir / "card.json"
    if not skops_path.is_file() or not card_path.is_file():
        raise ModelFileError(
            f"{model_dir} is not a model directory (needs model.skops and card.json); "
            "train one with `python -m training fit` or fix the job's `model:`"
        )
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError:
        raise ModelFileError(f"{card_path} is not valid JSON; retrain or restore the model card") from None
    digest = file_sha256(skops_path)
    # Cards written before the checksum existed have none; a card that has one describes
    # exactly this file, so a swapped model.skops is refused instead of run under it.
    if card.get("model_file_sha256") not in (None, digest):
        raise ModelFileError(f"{skops_path} does not match the sha256 in the model card; retrain or restore the model")
    estimator = _load_skops(skops_path)

    features = tuple(card.get("features", ()))
    if features != FEATURE_NAMES:
        missing = [f for f in FEATURE_NAMES if f not in features]
        extra = [f for f in features if f not in FEATURE_NAMES]
        raise ModelSchemaError(
            f"model {model_dir} was trained on a different feature set "
            f"(missing {missing[:3]}, unexpected {extra[:3]}, or another order); retrain it with this version"
        )
    classes = tuple(str(c) for c in card.get("classes", ()))
    fitted = tuple(str(c) for c in getattr(estimator, "classes_", ()))
    if classes != fitted:
        raise ModelSchemaError(f"model card classes {list(classes)} differ from the fitted classes {list(fitted)}; retrain")
    target = str(card.get("target_class", "coca"))
    if target not in classes:
        raise ModelSchemaError(f"target class '{target}' is not among the model classes {list(classes)}")
    cascade = _load_cascade(model_dir, card, fitted)
    for est in (estimator, forest_of(estimator), cascade):
        if hasattr(est, "n_jobs"):
            est.n_jobs = 1  # dask runs blocks in parallel; nested pools oversubscribe 2 cores
    return Model(estimator, classes, target, card, digest[:12], digest, model_dir, cascade)


def _load_cascade(model_dir: Path, card: dict[str, Any], classes: tuple[str, ...]) -> Any:
    info = card.get("cascade")
    if not info:
        return None
    path = model_dir / str(info.get("file", "cascade.skops"))
    if not path.is_file():
        raise ModelFileError(f"{model_dir}: the card names a first stage {path.name} that is missing; retrain the model")
    if file_sha256(path) != info.get("sha256"):
        raise ModelFileError(f"{path} does not match the sha256 in the model card; retrain or restore the model")
    try:
        threshold = float(info["threshold"])
    except (KeyError, TypeError, ValueError):
        raise ModelSchemaError(f"{model_dir}/card.json: cascade.threshold is missing or not a number; retrain") from None
    if not 0.0 <= threshold <= 1.0:
        raise ModelSchemaError(f"{model_dir}/card.json: cascade.threshold {threshold} is not a probability; retrain")
    cascade = _load_skops(path)
    if tuple(str(c) for c in getattr(cascade, "classes_", ())) != classes:
        raise ModelSchemaError(f"{path}: first-stage classes differ from the model's {list(classes)}; retrain")
    return cascade


