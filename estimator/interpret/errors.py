"""Errors of the interpretation tool (subclasses of the estimator's error tree, so the
command line prints them as one line and exits 2)."""

from __future__ import annotations

from estimator.errors import EstimatorError

__all__ = ["InterpretError", "InterpreterSlotError", "SampleFileError"]


class InterpretError(EstimatorError):
    """Base class of the interpretation tool's errors."""


class SampleFileError(InterpretError, ValueError):
    """The sample file is missing, not a sample written by ``estimator sample``, or from
    another run than the one given."""


class InterpreterSlotError(InterpretError, ValueError):
    """An answer for a unit, class, slot or interpreter the sample does not have."""
