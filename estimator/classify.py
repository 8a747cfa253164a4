"""Classify stage: a fitted scikit-learn model applied per dask block.

Only observed pixels (finite features) are passed to ``predict_proba``; it is the costly
step (about 0.1 Mpix/s per core for a 100-tree forest), so no pixel is predicted twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
from distributed.diagnostics.plugin import WorkerPlugin
from rasterio.features import sieve

from .features import FEATURE_NAMES

__all__ = ["class_codes", "classify_dask", "predict_block"]


#: Models installed in this process by :func:`model_plugin`, by sha256.
_MODELS: dict[str, Any] = {}


@dataclass(frozen=True)
class ModelRef:
    """A model by its sha256, resolved in the worker that runs the block."""

    sha256: str

    def resolve(self) -> Any:
        try:
            return _MODELS[self.sha256]
        except KeyError:
            raise RuntimeError(f"model {self.sha256[:12]} is not installed on this worker") from None


class ModelPlugin(WorkerPlugin):
    """A dask WorkerPlugin that installs the model on every worker, present and future.

    Scattered data is not enough: dask's active memory manager trims broadcast copies to
    one, and losing that worker would lose the model (the job fails with "lost
    dependencies"). A plugin is replayed on restarted and newly joined workers. Defined at
    module level so workers unpickle it by reference and fill this module's registry.
    """

    def __init__(self, sha256: str, estimator: Any) -> None:
        self.name = f"coca-model-{sha256[:16]}"
        self.sha256, self.estimator = sha256, estimator

    def setup(self, worker: Any) -> None:
        _MODELS[self.sha256] = self.estimator


def model_plugin(sha256: str, estimator: Any) -> ModelPlugin:
    """The plugin to register with ``client.register_plugin``."""
    return ModelPlugin(sha256, estimator)


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
        out[ok] = estimator.predict_proba(flat[ok])
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


def class_codes(probs: np.ndarray) -> np.ndarray:
    """Class map: ``1 + argmax`` over classes (model order), 0 where unobserved."""
    observed = np.isfinite(probs).all(axis=0)
    codes = np.argmax(np.nan_to_num(probs, nan=-1.0), axis=0).astype(np.uint8) + 1
    return np.where(observed, codes, 0).astype(np.uint8)


def sieve_codes(codes: np.ndarray, min_pixels: int) -> tuple[np.ndarray, int]:
    """Apply a minimum mapping unit: 4-connected patches under ``min_pixels`` take the class
    of the largest neighbouring patch. Unobserved pixels (0) neither grow nor absorb patches.

    Returns the sieved codes and the number of pixels whose class changed.
    """
    if min_pixels <= 1:
        return codes, 0
    observed = codes > 0
    out = sieve(codes, size=int(min_pixels), connectivity=4, mask=observed)
    out = np.where(observed, out, 0).astype(np.uint8)
    return out, int((out != codes).sum())
