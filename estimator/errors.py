"""One exception hierarchy for the estimator; every message says what to change.

The CLI prints ``str(error)`` as a single line and exits non-zero, so messages must be
self-contained and actionable.
"""

from __future__ import annotations

__all__ = [
    "ClaimsError",
    "ConfigError",
    "EstimatorError",
    "LabelFileError",
    "ModelFileError",
    "ModelSchemaError",
    "NoScenesFoundError",
    "ReadFailureError",
    "RegionFileError",
    "StacConnectionError",
]


class EstimatorError(Exception):
    """Base class of all errors raised on purpose by this package."""


class ConfigError(EstimatorError, ValueError):
    """A job or training file is missing, malformed, or holds an invalid value."""


class ClaimsError(EstimatorError, ValueError):
    """The claims registry is missing or a claim in it is malformed (the message names it)."""


class StacConnectionError(EstimatorError, ConnectionError):
    """The STAC API could not be reached or answered with an error."""


class NoScenesFoundError(EstimatorError, LookupError):
    """The search matched no usable scene for the job's area, period and cloud limit."""


class RegionFileError(EstimatorError, ValueError):
    """The regions file is not a usable GeoJSON FeatureCollection."""


class ModelSchemaError(EstimatorError, ValueError):
    """The model's feature set or classes do not match what the pipeline computes."""


class ModelFileError(EstimatorError, OSError):
    """The model directory is missing, incomplete, or not a trusted skops file."""


class LabelFileError(EstimatorError, ValueError):
    """A labels file is not usable for training."""


class AreaSampleError(EstimatorError, ValueError):
    """A reference sample cannot support an estimate (e.g. a stratum with one unit)."""


class ReferenceSampleError(EstimatorError, ValueError):
    """A labeled reference sample cannot be used for this run."""


class ReadFailureError(EstimatorError, OSError):
    """Pixels could not be read and the job cannot account for them."""


class BoundaryFileError(EstimatorError, ValueError):
    """A boundary file is missing or does not match its registered sha256."""


class BoundaryDownloadError(EstimatorError, ConnectionError):
    """A boundary file is not cached and could not be downloaded."""


class UnknownRegionError(EstimatorError, LookupError):
    """No named region, administrative unit or ubigeo matches the name."""


class AmbiguousRegionError(EstimatorError, LookupError):
    """Several administrative units share the name; the message lists their ubigeos."""


class UnknownProviderError(EstimatorError, LookupError):
    """A provider name that ``configs/providers.yaml`` does not define."""


class ItemMetadataError(EstimatorError, ValueError):
    """A STAC Item lacks metadata the pipeline needs (a band, or its CRS)."""
