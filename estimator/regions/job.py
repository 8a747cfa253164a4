"""The regions a job names: a GeoJSON file of its own, or named Peruvian regions."""

from __future__ import annotations

from estimator.config import RegionsConfig
from estimator.regions.geometry import Region, load_regions
from estimator.regions.named import resolve_region

__all__ = ["job_regions"]


def job_regions(cfg: RegionsConfig) -> tuple[Region, ...]:
    """The regions a job names: from its GeoJSON file, or named Peruvian regions."""
    if cfg.file is not None:
        return load_regions(cfg.file, cfg.id_field)
    return tuple(resolve_region(name, cfg.boundaries) for name in cfg.names or ())
