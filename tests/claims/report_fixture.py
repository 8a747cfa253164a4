"""A comparison at real scale, built by code: synthetic runs against the real claims registry.

Runs labelled ``loreto``, ``vrae`` and ``mariscal-ramon-castilla`` (one run directory per
year, ``estimates.json`` and ``manifest.json`` as ``estimator run`` writes them, no maps) are
compared with ``configs/claims.yaml`` (about 100 claims) by the real ``compare``. The areas
are made up (a smooth path through a few anchor years, seeded noise) and the runs are
marked synthetic, so every page and chart made from them says so.

``python -m tests.claims.report_fixture OUT [YEAR ...]`` writes the runs and the report into OUT;
the README's screenshot of the comparison report comes from
``python -m tests.claims.report_fixture /tmp/cmp 2010 2011 2021 2022``.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from estimator.claims.compare import compare
from estimator.location import write_json

#: Synthetic coca area (ha) at anchor years, interpolated between them; the CI half-width is
#: ``rel_ci`` times the area; ``observed`` is the observed fraction of the region.
REGIONS: dict[str, dict[str, Any]] = {
    "loreto": {"name": "Loreto", "area_ha": 36_885_000.0, "rel_ci": 0.21, "observed": 0.96,
               "anchors": {2010: 12_000.0, 2011: 14_000.0, 2016: 5_000.0, 2021: 11_000.0, 2024: 13_000.0}},
    "vrae": {"name": "VRAE", "area_ha": 2_480_000.0, "rel_ci": 0.1, "observed": 0.98,
             "anchors": {2010: 19_000.0, 2011: 20_500.0, 2024: 24_000.0}},
    "mariscal-ramon-castilla": {"name": "Mariscal Ramón Castilla", "area_ha": 3_720_000.0, "rel_ci": 0.2, "observed": 0.95,
                                "anchors": {2010: 2_400.0, 2011: 2_900.0, 2015: 600.0, 2021: 4_500.0, 2024: 5_000.0}},
}
YEARS = (2010, 2011)


def synthetic_area(region: str, year: int, rng: np.random.Generator) -> float:
    a = REGIONS[region]["anchors"]
    return float(np.interp(year, list(a), list(a.values())) * rng.normal(1.0, 0.03))


def write_year_run(out: Path, year: int, seed: int = 0) -> Path:
    """One synthetic run directory covering calendar ``year`` for the three regions."""
    rng = np.random.default_rng([seed, year])
    period = f"{year}-01-01/{year}-12-31"
    d = out / f"run-{year}"
    records = []
    for rid, r in REGIONS.items():
        area = synthetic_area(rid, year, rng)
        half = r["rel_ci"] * area
        base = {"region": rid, "region_name": r["name"], "period": period, "region_area_ha": r["area_ha"],
                "observed_fraction": r["observed"], "failed_read_fraction": 0.0, "model_id": "synthetic-m1",
                "estimator": "stratified-olofsson2014", "synthetic": True}
        records.append({**base, "class": "coca", "area_ha": area, "mapped_area_ha": area * 1.08,
                        "ci95_low_ha": area - half, "ci95_high_ha": area + half, "se_area_ha": half / 1.96,
                        "users_accuracy": 0.86, "producers_accuracy": 0.81})
        records.append({**base, "class": "forest", "area_ha": 0.8 * r["area_ha"], "mapped_area_ha": 0.8 * r["area_ha"],
                        "ci95_low_ha": None, "ci95_high_ha": None})
    d.mkdir(parents=True, exist_ok=True)
    write_json(d / "estimates.json", {"schema_version": 1, "period": period, "model_id": "synthetic-m1",
                                      "synthetic": True, "records": records})
    write_json(d / "manifest.json", {
        "period": period, "synthetic": True, "model": {"id": "synthetic-m1", "target_class": "coca"},
        "regions": [{"id": rid, "name": r["name"], "note": ""} for rid, r in REGIONS.items()],
    })
    return d


def build(out: Path, years: Sequence[int] = YEARS, seed: int = 0) -> tuple[dict[str, Any], list[Path]]:
    """Write one run per year and compare them with the default registry; report files in ``out / 'report'``."""
    runs = [write_year_run(out, y, seed) for y in years]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the period and region warnings are the point of the fixture
        return compare(runs, out_dir=out / "report")


if __name__ == "__main__":
    target = Path(sys.argv[1])
    comparison, written = build(target, [int(y) for y in sys.argv[2:]] or YEARS)
    print(f"{len(comparison['claims'])} claims compared, {len(comparison['unmatched'])} not; wrote {written[1]}")
