"""Tile checkpoints: each finished tile's sums and map blocks, under a key that names the job
version, so a rerun skips finished tiles and a changed job never reuses stale ones."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from estimator.config import JobConfig
from estimator.grid import pixel_area_m2
from estimator.location import RunLocation
from estimator.regions.geometry import Region, rasterize_regions
from estimator.run.rundir import is_job_key
from estimator.run.tiles import RawTile
from estimator.stages.aggregate import TilePartial
from estimator.stages.model import Model
from estimator.stages.plan import Plan
from estimator.stages.plots import TileLayers

__all__ = ["TILE_FORMAT", "TileStore", "job_key", "plot_layers", "plot_pieces"]

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

    def save_raw(self, tile_id: str, raw: RawTile) -> None:
        """Keep a classified tile until its neighbours are classified and it can be finished
        (:func:`~estimator.run.tiles.finish_tile`); a rerun finishes it without its pixels."""
        buf = io.BytesIO()
        np.savez_compressed(buf, failed_items=np.array(raw.failed_items, dtype=str), **raw.arrays)  # type: ignore[arg-type]
        self.location.write_bytes(self._rel(tile_id, "raw.npz"), buf.getvalue())

    def raw(self, tile_id: str) -> RawTile | None:
        """The classified tile kept by :meth:`save_raw`, ``None`` when there is none (or it is unreadable)."""
        try:
            data = self.location.read_bytes(self._rel(tile_id, "raw.npz"))
        except FileNotFoundError:
            return None
        try:
            with np.load(io.BytesIO(data)) as z:
                arrays = {k: z[k] for k in z.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            log.warning("tile %s: unreadable classified tile (%s); redoing the tile", tile_id, type(e).__name__)
            return None
        failed = tuple(str(i) for i in arrays.pop("failed_items"))
        return RawTile(arrays, failed)

    def has_raw(self, tile_id: str) -> bool:
        return self.location.exists(self._rel(tile_id, "raw.npz"))

    def codes_raw(self, tile_id: str) -> np.ndarray:
        """A tile's class codes before the minimum mapping unit, from its classified or its
        finished checkpoint (a tile's halo for its neighbours)."""
        try:
            data = self.location.read_bytes(self._rel(tile_id, "raw.npz"))
        except FileNotFoundError:
            data = self.location.read_bytes(self._rel(tile_id, "npz"))
        with np.load(io.BytesIO(data)) as z:
            return np.asarray(z["codes_raw"])

    def drop_raw(self, tile_id: str) -> None:
        self.location.remove(self._rel(tile_id, "raw.npz"))

    def array(self, tile_id: str, name: str) -> np.ndarray:
        return self.arrays(tile_id, name)[name]

    def arrays(self, tile_id: str, *names: str, prefix: str = "") -> dict[str, np.ndarray]:
        """Several arrays of a tile from one read of its checkpoint; with ``prefix``, all
        arrays whose name starts with it (the prefix removed)."""
        with np.load(io.BytesIO(self.location.read_bytes(self._rel(tile_id, "npz")))) as z:
            out = {n: z[n] for n in names}
            if prefix:
                out.update({n[len(prefix) :]: z[n] for n in z.files if n.startswith(prefix)})
            return out

    def prune_others(self) -> None:
        """Drop the checkpoints of other versions of the job (an edited config, a new model).

        Only folders named like a job key are checkpoints; anything else under ``tiles/`` is
        not ours to delete."""
        for d in self.location.subdirs("tiles"):
            if d != self.key and is_job_key(d):
                self.location.remove(f"tiles/{d}")


#: Version of the tile partial format and of what it means; bump when either changes.
#: 6: the minimum mapping unit judges patches across tile edges; plots kept per tile.
TILE_FORMAT = 6


def plot_pieces(store: TileStore, plan: Plan) -> Iterator[dict[str, np.ndarray]]:
    """Each tile's plots as made when it was finished (:func:`~estimator.stages.plots.tile_patches`),
    from the checkpoints; tiles without a plot are skipped."""
    for tile in plan.tiles:
        piece = store.arrays(tile.id, prefix="plot_")
        if piece:
            yield piece


def plot_layers(store: TileStore, plan: Plan, regions: Sequence[Region], target_code: int) -> Iterator[TileLayers]:
    """The plots stage's inputs, one tile at a time from the checkpoints (tiles without a
    target pixel, before or after the minimum mapping unit, are skipped): plots made whole
    after the last tile, as before :func:`plot_pieces` (kept for comparing the two)."""
    g = plan.grid.affine
    for tile in plan.tiles:
        z = store.arrays(tile.id, "class", "codes_raw", "prob", "first_day", "last_day")
        target = z["class"] == target_code
        raw = z["codes_raw"] == target_code
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
