"""Tile checkpoints: each finished tile's sums and map blocks, under a key that names the job
version, so a rerun skips finished tiles and a changed job never reuses stale ones."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from estimator.config import JobConfig
from estimator.grid import pixel_area_m2
from estimator.location import RunLocation
from estimator.regions.geometry import Region, rasterize_regions
from estimator.run.rundir import is_job_key
from estimator.stages.aggregate import TilePartial
from estimator.stages.model import Model
from estimator.stages.plan import Plan
from estimator.stages.plots import TileLayers

__all__ = ["TILE_FORMAT", "TileStore", "job_key", "plot_layers"]

log = logging.getLogger(__name__)

#: Key of a tile record holding the sha256 of the tile's npz.
_NPZ_SHA256 = "npz_sha256"


class TileStore:
    """Finished tiles of one job version: ``<run>/tiles/<job key>/<tile>.npz|.json``.

    The npz lands first and the JSON last, each written atomically (see
    :meth:`RunLocation.write_bytes`): a tile is finished when its JSON reads back whole.
    """

    def __init__(self, location: RunLocation, key: str):
        self.location = location
        self.key = key

    def _rel(self, tile_id: str, ext: str) -> str:
        return f"tiles/{self.key}/{tile_id}.{ext}"

    def done(self, tile_id: str) -> TilePartial | None:
        try:
            data = json.loads(self.location.read_bytes(self._rel(tile_id, "json")))
            part = TilePartial.from_json({k: v for k, v in data.items() if k != _NPZ_SHA256})
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            log.warning("tile %s: unreadable checkpoint (%s); redoing the tile", tile_id, type(e).__name__)
            return None
        # The JSON names the sha256 of the arrays it was written with: a truncated or
        # foreign npz is redone instead of failing every rerun when the maps are written.
        try:
            npz = self.location.read_bytes(self._rel(tile_id, "npz"))
        except FileNotFoundError:
            return None
        if hashlib.sha256(npz).hexdigest() != data.get(_NPZ_SHA256):
            log.warning("tile %s: checkpoint arrays do not match their record; redoing the tile", tile_id)
            return None
        # A tile with failed reads is not finished: a rerun tries it again.
        return part if part.status == "done" and not part.failed_items else None

    def save(self, part: TilePartial, arrays: Mapping[str, np.ndarray]) -> None:
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
        npz = buf.getvalue()
        self.location.write_bytes(self._rel(part.tile_id, "npz"), npz)
        record = {**part.to_json(), _NPZ_SHA256: hashlib.sha256(npz).hexdigest()}
        text = json.dumps(record, indent=2, default=str) + "\n"
        self.location.write_bytes(self._rel(part.tile_id, "json"), text.encode())

    def array(self, tile_id: str, name: str) -> np.ndarray:
        return self.arrays(tile_id, name)[name]

    def arrays(self, tile_id: str, *names: str) -> dict[str, np.ndarray]:
        """Several arrays of a tile from one read of its checkpoint."""
        with np.load(io.BytesIO(self.location.read_bytes(self._rel(tile_id, "npz")))) as z:
            return {n: z[n] for n in names}

    def prune_others(self) -> None:
        """Drop the checkpoints of other versions of the job (an edited config, a new model).

        Only folders named like a job key are checkpoints; anything else under ``tiles/`` is
        not ours to delete."""
        for d in self.location.subdirs("tiles"):
            if d != self.key and is_job_key(d):
                self.location.remove(f"tiles/{d}")


#: Version of the tile partial format and of what it means; bump when either changes.
TILE_FORMAT = 5


def plot_layers(store: TileStore, plan: Plan, regions: Sequence[Region], target_code: int) -> Iterator[TileLayers]:
    """The plots stage's inputs, one tile at a time from the checkpoints (tiles without a
    target pixel, before or after the minimum mapping unit, are skipped)."""
    g = plan.grid.affine
    for tile in plan.tiles:
        z = store.arrays(tile.id, "class", "target_raw", "prob", "first_day", "last_day")
        target = z["class"] == target_code
        raw = z["target_raw"].astype(bool)
        if not (target.any() or raw.any()):
            continue
        a = tile.geobox.affine
        yield TileLayers(
            row_off=int(round((a.f - g.f) / g.e)),
            col_off=int(round((a.c - g.c) / g.a)),
            target=target,
            target_raw=raw,
            prob=z["prob"],
            first_day=z["first_day"],
            last_day=z["last_day"],
            pixel_area=pixel_area_m2(tile.geobox),
            region_masks=rasterize_regions(regions, tile.geobox),
        )


def job_key(job: JobConfig, model: Model, plan: Plan, regions: Sequence[Region]) -> str:
    """Identity of the work a tile result stands for: config (not the output location),
    model, scenes, region geometries and the grid. Anything else is a different job."""
    cfg = job.model_dump(mode="json")
    cfg.pop("output", None)
    cfg.pop("cluster", None)
    # The same scenes served from another address (a mirror, or the demo's fresh port) are
    # the same work: scenes are identified by their ids below.
    cfg["stac"].pop("url", None)
    cfg["stac"].pop("timeout_s", None)
    grid = [str(plan.grid.crs), list(plan.grid.affine)[:6], list(plan.grid.shape.yx), plan.chunk_size]
    geoms = [(r.id, hashlib.sha256(r.geometry.wkb).hexdigest()) for r in regions]
    blob = json.dumps([TILE_FORMAT, cfg, model.identity, sorted(plan.items), grid, geoms], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
