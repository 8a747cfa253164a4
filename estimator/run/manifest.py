"""The run's ``manifest.json``: provenance (scenes with baselines and offsets, config and
model hashes, grid, tiles and their status, package versions, timings)."""

from __future__ import annotations

import datetime as dt
import platform
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from estimator.config import JobConfig, config_hash
from estimator.regions.geometry import Region
from estimator.stages.aggregate import TilePartial
from estimator.stages.classify import cascade_usable
from estimator.stages.model import Model
from estimator.stages.plan import Plan
from estimator.stages.plots import Plots, plots_summary
from estimator.stages.search import SearchResult

__all__ = ["Timer", "build_manifest", "cascade_manifest", "package_versions"]


@dataclass
class Timer:
    spans: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.spans[name] = round(self.spans.get(name, 0.0) + time.perf_counter() - t0, 3)


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("coca-estimator", "numpy", "scikit-learn", "xarray", "dask", "distributed", "odc-stac", "pystac-client", "rasterio", "skops"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def cascade_manifest(job: JobConfig, model: Model) -> dict[str, Any]:
    why_not = "disabled by classify.cascade" if not job.classify.cascade else cascade_usable(model)
    info = model.card.get("cascade") or {}
    return {
        "used": why_not is None,
        "reason": why_not,
        **{k: info.get(k) for k in ("sha256", "threshold", "recall_cv", "pass_fraction_other_cv")},
    }


def build_manifest(
    job: JobConfig,
    regions: Sequence[Region],
    model: Model,
    found: SearchResult,
    plan: Plan,
    partials: Sequence[TilePartial],
    reused: set[str],
    synthetic: bool,
    timer: Timer,
    plots: Plots,
) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "synthetic": synthetic,
        "period": job.period.label,
        "config": job.model_dump(mode="json"),
        "config_hash": config_hash(job),
        "model": {
            "id": model.model_id,
            "sha256": model.sha256,
            "path": str(model.path),
            "classes": list(model.classes),
            "target_class": model.target_class,
            "estimator": type(model.estimator).__name__,
            "training_data_sha256": model.card.get("training_data_sha256"),
            "cascade": cascade_manifest(job, model),
            "reference_units": model.card.get("reference_units", []),
            # The decision rule with its out-of-fold figures: the target-area sample design
            # anticipates stratum proportions from them.
            "decision": model.card.get("decision"),
        },
        "stac": {
            "url": job.stac.url,
            "collection": job.stac.collection,
            "filter_mode": found.filter_mode,
            "n_returned": found.n_returned,
            "n_too_cloudy": found.n_too_cloudy,
            "pages": found.pages,
        },
        "items": [
            {
                "id": i.id,
                "datetime": i.datetime.isoformat(),
                "processing_baseline": i.processing_baseline,
                "offset": i.scaling[0][1],
                "scale": i.scaling[0][0],
                "cloud_cover": i.cloud_cover,
                "tile": i.tile,
            }
            for i in sorted(plan.items.values(), key=lambda i: (i.datetime, i.id))
        ],
        "regions": [{"id": r.id, "name": r.name, "note": r.note} for r in regions],
        "time_slices": [list(g) for g in plan.groups],
        "duplicates_dropped": {
            "rule": "same platform, MGRS tile and time: keep the highest processing baseline, then the latest update",
            "items": dict(plan.duplicates),
        },
        "grid": {
            "crs": str(plan.grid.crs),
            "resolution": job.grid.resolution,
            "shape": list(plan.grid.shape.yx),
            "transform": list(plan.grid.affine)[:6],
            "tile_size": job.grid.tile_size,
            "chunk_size": plan.chunk_size,
        },
        "tiles": [
            {
                "id": p.tile_id, "status": p.status, "reused": p.tile_id in reused, "failed_items": p.failed_items,
                "message": p.message, "sieved_pixels": p.sieved_pixels,
            }
            for p in partials
        ],
        "min_patch_ha": job.classify.min_patch_ha,
        "plots": plots_summary(plots, job.classify.min_patch_ha),
        "timings_s": timer.spans,
        "versions": package_versions(),
    }
