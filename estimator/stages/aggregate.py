"""Aggregate stage: per-tile pixels -> true ground areas per region and class, then sums.

A tile's :class:`TilePartial` holds only sums (areas in m^2 and counts), so the job total is
the plain sum of tile partials, whatever order tiles finish in or on which worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["RegionSums", "TilePartial", "aggregate_tile", "failed_tile", "reduce_partials"]


@dataclass
class RegionSums:
    """Additive totals for one region (within a tile, or over the whole job)."""

    region_area_m2: float = 0.0
    """True area of region pixels (pixel-centre rule)."""
    observed_area_m2: float = 0.0
    """True area of region pixels with at least one clear observation."""
    class_area_m2: dict[str, float] = field(default_factory=dict)
    """True area mapped to each class (observed pixels only)."""
    class_pixels: dict[str, int] = field(default_factory=dict)
    region_pixels: int = 0
    observed_pixels: int = 0
    expected_obs: float = 0.0
    """Area-weighted scene observations the job tried to read (m^2 x slices)."""
    failed_obs: float = 0.0
    """Area-weighted observations lost to read failures (m^2 x slices)."""
    target_prob_m2: float = 0.0
    """Sum over observed pixels of the target-class probability x true pixel area: the
    model-based area of the target class (m^2)."""

    def add(self, other: RegionSums) -> None:
        self.target_prob_m2 += other.target_prob_m2
        self.region_area_m2 += other.region_area_m2
        self.observed_area_m2 += other.observed_area_m2
        self.region_pixels += other.region_pixels
        self.observed_pixels += other.observed_pixels
        self.expected_obs += other.expected_obs
        self.failed_obs += other.failed_obs
        for k, v in other.class_area_m2.items():
            self.class_area_m2[k] = self.class_area_m2.get(k, 0.0) + v
        for k, n in other.class_pixels.items():
            self.class_pixels[k] = self.class_pixels.get(k, 0) + n


@dataclass
class TilePartial:
    """What one finished tile contributes to the job."""

    tile_id: str
    status: str
    """``done`` or ``failed`` (a failed tile's region pixels count as failed reads)."""
    regions: dict[str, RegionSums]
    failed_items: list[str] = field(default_factory=list)
    message: str = ""
    sieved_pixels: int = 0
    """Pixels whose class the minimum mapping unit changed."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TilePartial:
        return cls(
            tile_id=d["tile_id"],
            status=d["status"],
            regions={k: RegionSums(**v) for k, v in d["regions"].items()},
            failed_items=list(d.get("failed_items", [])),
            message=d.get("message", ""),
            sieved_pixels=int(d.get("sieved_pixels", 0)),
        )


def aggregate_tile(
    tile_id: str,
    codes: np.ndarray,
    classes: Sequence[str],
    region_ids: Sequence[str],
    region_masks: np.ndarray,
    pixel_area: np.ndarray,
    expected_obs: np.ndarray,
    failed_obs: np.ndarray,
    failed_items: Sequence[str] = (),
    target_prob: np.ndarray | None = None,
) -> TilePartial:
    """Sum true areas per region and class for one tile.

    Parameters
    ----------
    codes
        ``(y, x)`` class codes, ``1 + index`` into ``classes``; 0 = unobserved.
    region_masks
        ``(n_regions, y, x)`` booleans.
    pixel_area
        ``(y, x)`` true ground area per pixel, m^2.
    expected_obs, failed_obs
        ``(y, x)`` number of scene observations expected / lost to read failures.
    target_prob
        ``(y, x)`` calibrated target-class probability (NaN where not classified), summed
        area-weighted over observed pixels into ``target_prob_m2``.
    """
    out: dict[str, RegionSums] = {}
    ncls = len(classes)
    for rid, mask in zip(region_ids, region_masks, strict=True):
        if not mask.any():
            continue
        c = codes[mask]
        a = pixel_area[mask]
        area_by_code = np.bincount(c, weights=a, minlength=ncls + 1)
        n_by_code = np.bincount(c, minlength=ncls + 1)
        observed = c > 0
        prob_m2 = 0.0
        if target_prob is not None:
            p = target_prob[mask][observed]
            prob_m2 = float(np.nansum(p.astype(np.float64) * a[observed]))
        out[rid] = RegionSums(
            region_area_m2=float(a.sum()),
            observed_area_m2=float(a[observed].sum()),
            class_area_m2={cls: float(area_by_code[i + 1]) for i, cls in enumerate(classes)},
            class_pixels={cls: int(n_by_code[i + 1]) for i, cls in enumerate(classes)},
            region_pixels=int(mask.sum()),
            observed_pixels=int(observed.sum()),
            expected_obs=float((expected_obs[mask] * a).sum()),
            failed_obs=float((failed_obs[mask] * a).sum()),
            target_prob_m2=prob_m2,
        )
    return TilePartial(tile_id, "done", out, list(failed_items))


def failed_tile(
    tile_id: str,
    region_ids: Sequence[str],
    region_masks: np.ndarray,
    pixel_area: np.ndarray,
    expected_obs: np.ndarray,
    message: str,
) -> TilePartial:
    """A tile that could not be read at all: every expected observation failed."""
    zeros = np.zeros(region_masks.shape[1:], dtype=np.uint8)
    part = aggregate_tile(tile_id, zeros, (), region_ids, region_masks, pixel_area, expected_obs, expected_obs)
    part.status, part.message = "failed", message
    return part


def reduce_partials(partials: Iterable[TilePartial], region_ids: Sequence[str]) -> dict[str, RegionSums]:
    """Sum tile partials into job totals per region (regions with no pixel stay at zero)."""
    total = {rid: RegionSums() for rid in region_ids}
    for p in partials:
        for rid, s in p.regions.items():
            total[rid].add(s)
    return total
