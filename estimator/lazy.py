"""Lazy package exports: a package's public names resolve on first use.

Light entry points (``python -m estimator.testing.servers``, ``estimator regions list``) must
not pay for importing dask, scikit-learn and numba through a package's ``__init__``; the
same mechanism as the top-level package's (PEP 562 module ``__getattr__``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["exports"]


def exports(package: str, where: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose public names live in the
    submodules ``where`` maps them to (``{"make_plan": "plan"}``)."""

    def getattr_(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_() -> list[str]:
        return sorted(where)

    return getattr_, dir_
