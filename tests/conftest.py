"""Shared fixtures: real data from ../shared (skipped when absent), small demo worlds,
served worlds, and a trained demo model. Worlds are small and seeded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ESTIMATOR_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared() -> Path:
    if not (SHARED / "real").is_dir():
        pytest.skip(f"real test data not found at {SHARED} (set ESTIMATOR_SHARED_DATA)")
    return SHARED
