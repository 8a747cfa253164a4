"""Warnings as an API: users can filter them by class (``warnings.simplefilter``)."""

from __future__ import annotations

__all__ = [
    "ClaimPeriodMismatchWarning",
    "ClientSideFilterWarning",
    "EstimatorWarning",
    "FailedReadWarning",
    "HighCloudFractionWarning",
    "MissingClassInFoldWarning",
    "PartialCoverageWarning",
    "RegionDefinitionWarning",
    "RegionGeometryWarning",
    "RetiredOutputsWarning",
    "SceneCoverageWarning",
]


class EstimatorWarning(UserWarning):
    """Base class of the package's warnings."""


class PartialCoverageWarning(EstimatorWarning):
    """Part of a region had no clear observation in the period."""


class HighCloudFractionWarning(EstimatorWarning):
    """Most scenes found were too cloudy to use."""


class FailedReadWarning(EstimatorWarning):
    """Some pixels could not be read; they are counted, never treated as zeros."""


class ClientSideFilterWarning(EstimatorWarning):
    """The STAC API does not support server-side filters; filtering on the client."""


class ClaimPeriodMismatchWarning(EstimatorWarning):
    """A claim refers to another period than the run(s) it is set beside."""


class RegionDefinitionWarning(EstimatorWarning):
    """A claim's region is defined differently from the run's region of the same id."""


class MissingClassInFoldWarning(EstimatorWarning):
    """A cross-validation fold has no test pixel of some class: its per-class metrics there
    are undefined, and spatial blocking can make it so (a class confined to few blocks)."""


class RetiredOutputsWarning(EstimatorWarning):
    """A new run replaced the estimates that an assessment or comparison in the same
    directory described; those files were moved to ``retired/``."""


class RegionGeometryWarning(EstimatorWarning):
    """A region polygon was invalid (e.g. a self-intersecting bow-tie) and was repaired."""


class SceneCoverageWarning(EstimatorWarning):
    """A region is touched by no scene of the search: it will be reported as unobserved."""
