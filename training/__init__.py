"""Training package: labeled plots -> features (the estimator's own code) -> fitted model.

``training`` imports ``estimator``; never the reverse.
"""

from training.extract import LabelSet, extract_samples, read_labels
from training.fit import fit_model, save_model, train

__all__ = ["LabelSet", "extract_samples", "fit_model", "read_labels", "save_model", "train"]
