"""A labelled reference sample's units as training labels, and the rule that keeps them apart.

A reference sample labelled by interpreters may also train a model (``training labels add
SAMPLE.geojson``). Such a model must never be assessed on those units: its errors there
are training errors, and a design-based estimate from them would be optimistic. The model
card lists them (``reference_units``: per sample, each unit's id and lon/lat), a run's
manifest copies that list with the model, and :func:`trained_on` finds a sample's units
that fall on a pixel the model was trained on, by location on the run's grid (the same
pixel, whichever sample file or unit id names it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from odc.geo.geobox import GeoBox
from pyproj import Transformer

__all__ = ["reference_label", "reference_units_of_run", "sample_key", "trained_on"]


def _empty(v: Any) -> bool:
    return v is None or v == ""


def reference_label(props: Mapping[str, Any]) -> str | None:
    """The label ``assess`` uses for a unit: its consensus, else the two interpreters'
    common label, else the one interpreter's; ``None`` when missing or in disagreement."""
    c, i1, i2 = props.get("consensus"), props.get("interpreter_1"), props.get("interpreter_2")
    if not _empty(c):
        return str(c)
    if not _empty(i1) and not _empty(i2):
        return str(i1) if i1 == i2 else None
    if not _empty(i1) or not _empty(i2):
        return str(i1 if not _empty(i1) else i2)
    return None


def sample_key(sampling: Mapping[str, Any]) -> str:
    """sha256 of what identifies a drawn sample (class map, design, seed, strata), not of
    its labels: the same sample labelled further keeps its key."""
    parts = {k: sampling.get(k) for k in ("class_map_sha256", "design", "seed", "n", "strata", "grid_crs")}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def reference_units_of_run(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The reference units the run's model was trained on: from the manifest, or (runs
    written before manifests carried them) from the model's card when it is still there."""
    model = manifest.get("model") or {}
    if "reference_units" in model:
        return list(model["reference_units"] or [])
    card = Path(str(model.get("path", ""))) / "card.json"
    try:
        return list(json.loads(card.read_text()).get("reference_units") or [])
    except (OSError, ValueError):
        return []


def trained_on(
    trained: Sequence[Mapping[str, Any]], grid: GeoBox, rows: Sequence[int], cols: Sequence[int]
) -> list[tuple[int, str]]:
    """Positions in ``rows``/``cols`` (pixels of ``grid``) that hold a trained reference unit,
    each with a description of where that unit came from."""
    if not trained or not len(rows):
        return []
    to_grid = Transformer.from_crs("EPSG:4326", grid.crs, always_xy=True)
    inv = ~grid.affine
    where: dict[tuple[int, int], str] = {}
    for t in trained:
        units = t.get("units") or []
        if not units:
            continue
        lon = np.array([u[1] for u in units], dtype=float)
        lat = np.array([u[2] for u in units], dtype=float)
        x, y = to_grid.transform(lon, lat)
        for u, xi, yi in zip(units, x, y, strict=True):
            col, row = (int(np.floor(v)) for v in inv @ (xi, yi))
            where.setdefault((row, col), f"{u[0]} (label batch {t.get('batch')}, from {t.get('source_file')})")
    return [(i, where[(int(r), int(c))]) for i, (r, c) in enumerate(zip(rows, cols, strict=True)) if (int(r), int(c)) in where]
