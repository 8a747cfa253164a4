"""Where estimates are reported: region polygons from a job's GeoJSON file or named Peruvian
regions (departments, provinces, districts, monitoring zones), the boundary files behind the
names, and rasterizing by the pixel-centre rule.

Imports only the foundation (errors, config, ...).
"""

from __future__ import annotations

from estimator.lazy import exports

__all__ = [
    "APPROXIMATION_NOTE",
    "DEFAULT_CONFIG",
    "ENV_VAR",
    "AmbiguousRegionError",
    "BoundaryDownloadError",
    "BoundaryFile",
    "BoundaryFileError",
    "NamedRegion",
    "Region",
    "UnknownRegionError",
    "boundaries_dir",
    "boundary_files",
    "job_regions",
    "list_regions",
    "load_regions",
    "rasterize_regions",
    "read_config",
    "read_features",
    "region_facts",
    "regions_bbox",
    "resolve_region",
    "to_crs",
]

_WHERE = {
    "APPROXIMATION_NOTE": "named",
    "AmbiguousRegionError": "named",
    "BoundaryDownloadError": "boundaries",
    "BoundaryFile": "boundaries",
    "BoundaryFileError": "boundaries",
    "DEFAULT_CONFIG": "boundaries",
    "ENV_VAR": "boundaries",
    "NamedRegion": "named",
    "Region": "geometry",
    "UnknownRegionError": "named",
    "boundaries_dir": "boundaries",
    "boundary_files": "boundaries",
    "job_regions": "job",
    "list_regions": "named",
    "load_regions": "geometry",
    "rasterize_regions": "geometry",
    "read_config": "boundaries",
    "read_features": "geometry",
    "region_facts": "named",
    "regions_bbox": "geometry",
    "resolve_region": "named",
    "to_crs": "geometry",
}

__getattr__, __dir__ = exports(__name__, _WHERE)
