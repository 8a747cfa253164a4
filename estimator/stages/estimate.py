"""Estimate stage: job totals -> one record per region x class (the estimates contract).

This stage produces the *mapped* estimate: the true ground area of pixels the model labels
with each class, over the observed part of each region. A mapped area carries classifier
bias and has no design-based confidence interval; ``ci95_low_ha``/``ci95_high_ha`` stay
empty (null) until a labeled reference sample is assessed (``estimator assess``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from estimator.regions.geometry import Region
from estimator.stages.aggregate import RegionSums

__all__ = [
    "FAILED_READS_LIMIT", "RECORD_FIELDS", "SCHEMA_VERSION", "failed_read_fraction", "map_outside_interval",
    "mapped_records",
]

SCHEMA_VERSION = 1
#: Share of a region's expected observations whose read failed above which a run is not a
#: result: the map shows what could be read, not the region, and the run ends non-zero.
FAILED_READS_LIMIT = 0.5
M2_PER_HA = 10_000.0

#: Column order of estimates.csv (and keys of each JSON record).
RECORD_FIELDS: tuple[str, ...] = (
    "region", "region_name", "class", "period", "estimator",
    "mapped_area_ha", "area_ha", "ci95_low_ha", "ci95_high_ha",
    "observed_fraction", "failed_read_fraction", "region_area_ha", "observed_area_ha",
    "mapped_pixels", "model_id", "synthetic",
    "se_area_ha", "users_accuracy", "producers_accuracy", "sample_n",
    "coverage_policy", "extrapolated_area_ha", "extrapolated_ci95_low_ha", "extrapolated_ci95_high_ha",
    "model_based_area_ha",
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
    target_class: str | None = None,
) -> list[dict[str, Any]]:
    """One record per region and class, estimator ``mapped``; the ``target_class`` record
    also carries ``model_based_area_ha``, the sum of calibrated target probabilities x pixel
    area over observed pixels (a model's expectation, carrying the model's bias: beside the
    mapped and design-based areas, never in their place)."""
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
                    "se_area_ha": None,
                    "users_accuracy": None,
                    "producers_accuracy": None,
                    "sample_n": None,
                    "model_based_area_ha": round(s.target_prob_m2 / M2_PER_HA, 4) if cls == target_class else None,
                }
            )
    return records


def apply_coverage(records: list[dict[str, Any]], policy: str, transfer_uncertainty: float, z: float = 1.96) -> None:
    """Add the whole-region figure (or say it is withheld) to every record, in place.

    Cloud-persistent or unreadable pixels are not "no coca". With ``extrapolate``, the
    observed part's density is transferred to the unobserved part::

        A_total = A_obs / f            (f = observed_fraction)
        SE_total^2 = (SE_obs / f)^2 + (lambda * A_obs * (1 - f) / f)^2

    where lambda (``transfer_uncertainty``) is the assumed relative uncertainty of that
    transfer: the interval widens with the unobserved share. The lower bound never drops
    below the observed part's own lower bound. A mapped area has no SE, so its extrapolated
    interval stays empty.
    """
    for r in records:
        f = r.get("observed_fraction")
        r["coverage_policy"] = "withheld" if policy == "withhold" else "extrapolated"
        r["extrapolated_area_ha"] = r["extrapolated_ci95_low_ha"] = r["extrapolated_ci95_high_ha"] = None
        if policy == "withhold" or not f:
            continue
        a = float(r["area_ha"])
        total = a / f
        r["extrapolated_area_ha"] = round(total, 4)
        se = r.get("se_area_ha")
        if se is None:
            continue
        se_total = ((se / f) ** 2 + (transfer_uncertainty * a * (1 - f) / f) ** 2) ** 0.5
        low_obs = r.get("ci95_low_ha") or 0.0
        r["extrapolated_ci95_low_ha"] = round(max(low_obs, total - z * se_total, 0.0), 4)
        r["extrapolated_ci95_high_ha"] = round(total + z * se_total, 4)


def failed_read_fraction(records: Sequence[Mapping[str, Any]]) -> float:
    """The largest ``failed_read_fraction`` of any region (0 when every read succeeded)."""
    return max((float(r.get("failed_read_fraction") or 0.0) for r in records), default=0.0)


def map_outside_interval(records: Sequence[Mapping[str, Any]], target_class: str) -> list[str]:
    """One sentence per region whose mapped ``target_class`` area lies outside the 95 %
    interval of its design-based estimate: there the map's pixel count is biased beyond what
    the sample allows, and the estimate, not the map, is the figure to quote.

    On the hard world a map off by +45 % to +194 % sat beside intervals that covered the
    truth (BENCHMARKS.md, "The product after the levers"): a reader of the table alone could
    take the mapped column for the answer.

    >>> rec = {"region": "north", "class": "coca", "mapped_area_ha": 150.0, "area_ha": 60.0,
    ...        "ci95_low_ha": 40.0, "ci95_high_ha": 80.0}
    >>> map_outside_interval([rec], "coca")
    ['north: the map counts 150.0 ha of coca, 2.5 times the estimate (60.0 ha, 95 % CI 40.0 - 80.0): the map is biased here; quote the estimate']
    """
    out = []
    for r in records:
        lo, hi, mapped, est = r.get("ci95_low_ha"), r.get("ci95_high_ha"), r.get("mapped_area_ha"), r.get("area_ha")
        if r.get("class") != target_class or lo is None or hi is None or mapped is None or est is None:
            continue
        if lo <= mapped <= hi:
            continue
        how = f"{mapped / est:.1f} times the estimate" if est > 0 else "where the estimate is 0"
        out.append(
            f"{r['region']}: the map counts {mapped:,.1f} ha of {target_class}, {how} "
            f"({est:,.1f} ha, 95 % CI {lo:,.1f} - {hi:,.1f}): the map is biased here; quote the estimate"
        )
    return out
