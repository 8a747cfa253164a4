"""Training package: labeled plots -> features (the estimator's own code) -> fitted model.

The Python API of ``training``, sharing one implementation with its command line:

- :func:`fit`: train a model (``training fit``) from a GeoJSON of labeled plots or a
  :class:`LabelStore`, into a directory or a model registry;
- :class:`LabelStore`: label deliveries added in batches (``training labels add``), each
  batch extracted once;
- :func:`register`, :func:`promote` and :func:`models`: the model registry
  (``training promote``; jobs use ``model: promoted``).

``training`` imports ``estimator``; never the reverse.
"""

from estimator.stages.model import Model, load_model
from training.extract import LabelSet, extract_samples, read_labels
from training.fit import fit, fit_model, save_model, train
from training.labels import DEFAULT_CLASSES, LabelBatch
from training.registry import models, promote, register
from training.store import BatchRecord, LabelStore

__all__ = [
    "DEFAULT_CLASSES",
    "BatchRecord",
    "LabelBatch",
    "LabelSet",
    "LabelStore",
    "Model",
    "extract_samples",
    "fit",
    "fit_model",
    "load_model",
    "models",
    "promote",
    "read_labels",
    "register",
    "save_model",
    "train",
]
