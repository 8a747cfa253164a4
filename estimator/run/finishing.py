"""Finishing tiles: the minimum mapping unit needs a tile's neighbours, so a classified tile
is finished (unit, sums, plots, map blocks, checkpoint) as soon as it and every tile that
touches it are classified, while the other tiles' pixels are still being computed.

Nothing waits for the last tile but the tiles next to it: the maps are staged as tiles are
finished (:class:`~estimator.run.outputs.MapStage`) and the plots are made per tile, so the
job's end only turns the staged maps into COGs and joins plots across tile edges.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence

from estimator.config import JobConfig
from estimator.regions.geometry import Region
from estimator.run.checkpoints import TileStore
from estimator.run.outputs import MapStage
from estimator.run.tiles import RawTile, finish_tile, halo_window, min_unit_px, tile_neighbours
from estimator.stages.aggregate import TilePartial
from estimator.stages.model import Model
from estimator.stages.plan import Plan

__all__ = ["TileFinisher"]


class TileFinisher:
    """Finishes classified tiles once their neighbours are classified; thread-safe.

    ``on_done(partial)`` is called for every finished tile (e.g. a progress bar).
    """

    def __init__(
        self,
        plan: Plan,
        regions: Sequence[Region],
        model: Model,
        job: JobConfig,
        store: TileStore,
        maps: MapStage,
        on_done: Callable[[TilePartial], None] = lambda part: None,
    ):
        self.plan, self.regions, self.model, self.job = plan, regions, model, job
        self.store, self.maps, self.on_done = store, maps, on_done
        self._tiles = {t.id: t for t in plan.tiles}
        self._near = tile_neighbours(plan)
        self._classified: set[str] = set()
        self._claimed: set[str] = set()
        self._lock = threading.Lock()

    def _ready(self, ids: Iterable[str], finished: Iterable[str] = ()) -> list[str]:
        """Record tiles as classified (and some as finished already); return the tiles this
        makes ready to finish, each returned once."""
        ids = list(ids)
        with self._lock:
            self._classified.update(ids)
            self._claimed.update(finished)
            near = set(ids).union(*(self._near[i] for i in ids))
            ready = [
                t.id for t in self.plan.tiles
                if t.id in near and t.id not in self._claimed and t.id in self._classified
                and all(n in self._classified for n in self._near[t.id])
            ]
            self._claimed.update(ready)
        return ready

    def resume(self, finished: Iterable[str], classified: Iterable[str]) -> list[TilePartial]:
        """Tiles found on disk: ``finished`` ones, and ``classified`` ones waiting to be
        finished; finishes those whose neighbours are all classified."""
        finished = list(finished)
        return [self._finish(t) for t in self._ready([*finished, *classified], finished)]

    def classified(self, tile_id: str, raw: RawTile) -> list[TilePartial]:
        """Keep a classified tile; finish it and any neighbour it was the last one missing."""
        if raw.final is not None:  # no unit to apply: finished as it is
            self.store.save(raw.final, raw.arrays)
            self.maps.add(self._tiles[tile_id].geobox, raw.arrays)
            self.on_done(raw.final)
            return [raw.final, *(self._finish(t) for t in self._ready([tile_id], [tile_id]))]
        self.store.save_raw(tile_id, raw)
        return [self._finish(t) for t in self._ready([tile_id])]

    def unfinished(self) -> list[str]:
        with self._lock:
            return [t.id for t in self.plan.tiles if t.id not in self._claimed]

    def _finish(self, tile_id: str) -> TilePartial:
        tile = self._tiles[tile_id]
        raw = self.store.raw(tile_id)
        if raw is None:
            raise RuntimeError(f"tile {tile_id}: its classified pixels are missing from {self.store.location}")
        min_px = min_unit_px(self.job, tile)
        # A patch under the unit with a pixel in the tile lies within min_px - 1 pixels of it.
        halo = max(min_px - 1, 0) if min_px > 1 else 0
        near = [self._tiles[n] for n in self._near[tile_id]]
        window = halo_window(tile, self.plan, raw.arrays["codes_raw"], near, self.store.codes_raw, halo)
        part, arrays = finish_tile(tile, self.plan, self.regions, self.model, raw, window, halo, min_px)
        self.store.save(part, arrays)
        self.store.drop_raw(tile_id)
        self.maps.add(tile.geobox, arrays)
        self.on_done(part)
        return part
