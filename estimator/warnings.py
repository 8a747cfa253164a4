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
