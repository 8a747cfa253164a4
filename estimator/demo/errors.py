"""Errors of the demo world (not part of the estimator's error tree: the demo is not the product)."""

from __future__ import annotations

from estimator.errors import EstimatorError

__all__ = ["DemoWorldError"]


class DemoWorldError(EstimatorError, ValueError):
    """A demo world directory is missing, incomplete, or from another generator version."""
