"""Estimate stage: job totals -> one record per region x class (the estimates contract).

This stage produces the *mapped* estimate: the true ground area of pixels the model labels
with each class, over the observed part of each region. A mapped area carries classifier
bias and has no design-based confidence interval; ``ci95_low_ha``/``ci95_high_ha`` stay
empty (null) until a labeled reference sample is assessed (``estimator assess``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .aggregate import RegionSums
from .regions import Region

__all__ = ["RECORD_FIELDS", "SCHEMA_VERSION", "mapped_records"]

SCHEMA_VERSION = 1
M2_PER_HA = 10_000.0

#: Column order of estimates.csv (and keys of each JSON record).
RECORD_FIELDS: tuple[str, ...] = (
    "region", "region_name", "class", "period", "estimator",
    "mapped_area_ha", "area_ha", "ci95_low_ha", "ci95_high_ha",
    "observed_fraction", "failed_read_fraction", "region_area_ha", "observed_area_ha",
    "mapped_pixels", "model_id", "synthetic",
)


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def mapped_records(
    totals: Mapping[str, RegionSums],
    regions: Sequence[Region],
    classes: Sequence[str],
    *,
    period: str,
    model_id: str,
    synthetic: bool,
) -> list[dict[str, Any]]:
    """One record per region and class, estimator ``mapped``."""
    records = []
    for region in regions:
        s = totals[region.id]
        observed = _ratio(s.observed_area_m2, s.region_area_m2)
        failed = _ratio(s.failed_obs, s.expected_obs)
        for cls in classes:
            ha = s.class_area_m2.get(cls, 0.0) / M2_PER_HA
            records.append(
                {
                    "region": region.id,
                    "region_name": region.name,
                    "class": cls,
                    "period": period,
                    "estimator": "mapped",
                    "mapped_area_ha": round(ha, 4),
                    "area_ha": round(ha, 4),
                    "ci95_low_ha": None,
                    "ci95_high_ha": None,
                    "observed_fraction": None if observed is None else round(observed, 6),
                    "failed_read_fraction": 0.0 if failed is None else round(failed, 6),
                    "region_area_ha": round(s.region_area_m2 / M2_PER_HA, 4),
                    "observed_area_ha": round(s.observed_area_m2 / M2_PER_HA, 4),
                    "mapped_pixels": s.class_pixels.get(cls, 0),
                    "model_id": model_id,
                    "synthetic": synthetic,
                }
            )
    return records
