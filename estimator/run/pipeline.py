"""The orchestrator: one line per stage, in the order of the data-flow diagram (DESIGN.md).

A job is a map over output-grid tiles (load -> mask -> features -> classify -> per-region
sums and map blocks, each tile's result written atomically) followed by a reduce (sums).
A rerun of the same job finds finished tiles on disk and does not redo them.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from estimator.config import JobConfig
from estimator.errors import ConfigError
from estimator.location import RunLocation, write_json, write_text
from estimator.regions.geometry import Region, regions_bbox, to_crs
from estimator.regions.job import job_regions
from estimator.report.run_report import render_report_md
from estimator.run.checkpoints import TileStore, job_key, plot_pieces
from estimator.run.cluster import connect_client, dask_context, map_tiles, tiles_computing
from estimator.run.finishing import TileFinisher
from estimator.run.manifest import Timer, build_manifest
from estimator.run.outputs import MapStage
from estimator.run.rundir import (
    MANIFEST_FILE,
    RETIRED_DIR,
    RUN_ID_TAG,
    Manifest,
    Run,
    check_run_location,
    mark_run_location,
    new_run_id,
    retire_derived,
    write_estimates,
)
from estimator.run.tiles import process_tile
from estimator.stages.aggregate import TilePartial, reduce_partials
from estimator.stages.classify import ModelRef, make_predictor, model_plugin
from estimator.stages.estimate import apply_coverage, mapped_records
from estimator.stages.load import configure_gdal
from estimator.stages.model import Model, load_model
from estimator.stages.plan import Plan, Tile, make_plan, warn_uncovered_regions
from estimator.stages.plots import make_plots, write_plots
from estimator.stages.search import search_items
from estimator.synthetic import SYNTHETIC_PROPERTY
from estimator.warnings import RetiredOutputsWarning

__all__ = ["RunResult", "run"]

log = logging.getLogger(__name__)


#: What a finished job produced: the run object (``run_dir``, ``records``, ``manifest``,
#: ``tiles_reused`` and the analyst's views of the run directory).
RunResult = Run


def run(
    job: JobConfig,
    *,
    scheduler: str | None = None,
    client: Any = None,
    progress: bool = True,
    truth: Mapping[str, Mapping[str, float]] | None = None,
) -> Run:
    """Run an estimation job end to end, write its run directory and return the run.

    Everything that can reject bad input (config, regions, model, search) runs before the
    run directory is created, so a rejected job leaves nothing behind.

    Parameters
    ----------
    job
        Validated job configuration.
    scheduler
        dask.distributed scheduler address; overrides ``job.cluster.address``.
    client
        A connected ``distributed.Client`` to run on (dask-gateway, Coiled ...); it is
        used, not closed. Overrides ``scheduler`` and the job's cluster settings.
    progress
        Show progress bars.
    truth
        Known true hectares per region and class (demo world only), printed in the report.

    Returns
    -------
    Run
        The finished run (as :func:`estimator.open_run` gives it), with ``tiles_reused``.

    Examples
    --------
    >>> import estimator
    >>> import tempfile
    >>> from estimator.demo import example
    >>> ex = example()  # a SYNTHETIC world and model
    >>> with ex.serve() as stac_url:  # served on 127.0.0.1 like a real catalog
    ...     run = estimator.run(ex.job(stac_url, tempfile.mkdtemp()), progress=False)
    >>> run.estimates.loc[run.estimates["class"] == "coca", "region"].tolist()
    ['north', 'centre', 'south']
    """
    timer = Timer()
    with timer("prepare"):
        location = RunLocation.open(job.output)
        check_run_location(location)
        regions = job_regions(job.regions)
        if not job.cold_start:
            model = load_model(Path(job.model))
            if job.target_class not in model.classes:
                raise ConfigError(
                    f"target_class '{job.target_class}' is not a class of model {model.model_id} ({', '.join(model.classes)})"
                )
            model = replace(model, target_class=job.target_class)
    if job.cold_start:
        return _run_cold_start(job, regions, location, scheduler, client, timer, progress)
    # Connect before searching: a wrong scheduler address fails fast, before any work.
    if client is None and not scheduler and job.cluster.connect:
        client = connect_client(job.cluster.connect)
    with dask_context(scheduler or job.cluster.address, client) as client:
        result = _run(job, regions, model, location, client, timer, progress, truth)
    return result


def _run_cold_start(
    job: JobConfig, regions: Sequence[Region], location: RunLocation, scheduler: str | None, client: Any, timer: Timer,
    progress: bool,
) -> RunResult:
    """``model: none``: label-free strata instead of a class map (:mod:`estimator.run.coldstart`)."""
    from estimator.run.coldstart import run_strata

    if client is None and not scheduler and job.cluster.connect:
        client = connect_client(job.cluster.connect)
    with dask_context(scheduler or job.cluster.address, client) as client:
        rows, manifest, reused, retired = run_strata(job, regions, location, client, timer, progress)
    return Run(location.output, rows, Manifest(manifest), tiles_reused=len(reused), retired=tuple(retired))


def _run(
    job: JobConfig,
    regions: Sequence[Region],
    model: Model,
    location: RunLocation,
    client: Any,
    timer: Timer,
    progress: bool,
    truth: Mapping[str, Mapping[str, float]] | None,
) -> Run:
    with timer("search"):
        found = search_items(job.stac, regions_bbox(regions), job.period, progress=progress)
    with timer("plan"):
        warn_uncovered_regions(regions, [i.to_dict() for i in found.items])
        plan = make_plan(
            [i.to_dict() for i in found.items], regions,
            resolution=job.grid.resolution, crs=job.grid.crs, tile_size=job.grid.tile_size, chunk_size=job.grid.chunk_size,
            provider=job.stac.provider,
        )
    items = {i.id: i for i in found.items}
    synthetic = any(bool(i.properties.get(SYNTHETIC_PROPERTY)) for i in found.items)
    store = TileStore(location, job_key(job, model, plan, regions))
    mark_run_location(location)
    configure_gdal()
    reused: set[str] = set()
    # Maps are staged as tiles are finished, beside the checkpoints (a local run's disk).
    stage_dir = tempfile.TemporaryDirectory(prefix=".maps-", dir=location.local) if location.local else tempfile.TemporaryDirectory()
    # One bar in tiles: a tile is read, classified and checkpointed in one go.
    bar = tqdm(total=len(plan.tiles), desc="tiles", unit="tile", disable=not progress)
    with stage_dir as stage_path, contextlib.ExitStack() as stack:
        maps = MapStage(plan.grid, model.target_class, Path(stage_path))
        stack.callback(maps.close)
        partials = _tiles(job, plan, items, regions, model, store, maps, client, timer, bar, reused)
        with timer("reduce"):
            totals = reduce_partials(partials, [r.id for r in regions])
            records = mapped_records(
                totals, regions, model.classes, period=job.period.label, model_id=model.model_id, synthetic=synthetic,
                target_class=model.target_class,
            )
            apply_coverage(records, job.coverage.unobserved, job.coverage.transfer_uncertainty)
        # The outputs are written aside and committed as a set, the manifest last (its presence
        # marks a complete run); what assess and compare derived from the previous run is retired.
        run_id = new_run_id()
        retired: list[str] = []
        with location.staged(last=MANIFEST_FILE, before_commit=lambda: retired.extend(retire_derived(location))) as run_dir:
            # The COGs (GDAL, off the GIL) are written while the plots are joined and written.
            def write_cogs() -> None:
                with timer("outputs"):
                    maps.finish(
                        run_dir, model.classes,
                        outlines=[(r.id, to_crs(r.geometry, str(plan.grid.crs))) for r in regions],
                        title=f"Class map {job.period.label}", synthetic=synthetic, class_tags={RUN_ID_TAG: run_id},
                    )

            with ThreadPoolExecutor(1, thread_name_prefix="cogs") as pool:
                cogs = pool.submit(write_cogs)
                with timer("plots"):
                    plots = make_plots(
                        plot_pieces(store, plan), grid_affine=plan.grid.affine, crs=str(plan.grid.crs),
                        region_ids=[r.id for r in regions], synthetic=synthetic,
                    )
                    write_plots(run_dir, plots.frame)
                cogs.result()
            manifest = {RUN_ID_TAG: run_id, **build_manifest(job, regions, model, found, plan, partials, reused, synthetic, timer, plots)}
            meta = {"period": job.period.label, "synthetic": synthetic, "model_id": model.model_id, RUN_ID_TAG: run_id}
            write_estimates(run_dir, records, meta)
            write_json(run_dir / MANIFEST_FILE, manifest)
            write_text(run_dir / "report.md", render_report_md(records, manifest, target_class=model.target_class, truth=truth))
    if retired:
        warnings.warn(
            f"{location}: {', '.join(retired)} described the previous run, not this one; moved to "
            f"{RETIRED_DIR}/ (assess and compare this run again)",
            RetiredOutputsWarning,
            stacklevel=2,
        )
    store.prune_others()
    return Run(location.output, records, Manifest(manifest), tiles_reused=len(reused), retired=retired)


def _tiles(
    job: JobConfig,
    plan: Plan,
    items: Mapping[str, Any],
    regions: Sequence[Region],
    model: Model,
    store: TileStore,
    maps: MapStage,
    client: Any,
    timer: Timer,
    bar: Any,
    reused: set[str],
) -> list[TilePartial]:
    """Every tile's partial, in plan order: finished ones from disk, the others computed,
    each finished (minimum mapping unit, sums, plots, map blocks) once its neighbours are
    classified too."""
    with timer("tiles"), bar:
        # Install the model on every worker once (and on any that restarts or joins), not
        # inside each tile's graph; tasks refer to it by its sha256.
        estimator: Any = make_predictor(model, cascade=job.classify.cascade)
        if client is not None:
            key = f"{model.identity[:40]}-cascade{int(job.classify.cascade)}"
            client.register_plugin(model_plugin(key, estimator))
            estimator = ModelRef(key)
        finisher = TileFinisher(plan, regions, model, job, store, maps, on_done=lambda part: bar.update(1))
        todo: list[Tile] = []
        classified: list[str] = []
        done: dict[str, TilePartial] = {}
        for tile in plan.tiles:
            prev = store.done(tile.id)
            if prev is not None:
                done[tile.id] = prev
                reused.add(tile.id)
                maps.add(tile.geobox, store.arrays(tile.id, "class", "prob", "n_clear"))
                bar.update(1)
            elif store.has_raw(tile.id):
                classified.append(tile.id)
            else:
                todo.append(tile)
        for part in finisher.resume(done, classified):
            done[part.tile_id] = part

        # A few tiles compute at once (see tiles_computing); as many again wait for a slot
        # or finish in the client (minimum mapping unit, sums, plots, map blocks,
        # checkpoint), so that work overlaps the next tiles' pixels instead of leaving the
        # cores idle.
        computing = tiles_computing(client, job)
        compute_slot = threading.BoundedSemaphore(computing)

        def work(tile: Tile) -> list[TilePartial]:
            raw = process_tile(tile, plan, items, regions, model, estimator, job, compute_slot)
            return finisher.classified(tile.id, raw)

        for parts in map_tiles(work, todo, 2 * computing):
            done.update((p.tile_id, p) for p in parts)
        left = finisher.unfinished()
        if left:
            raise RuntimeError(f"tiles {', '.join(left[:5])} were classified but never finished")
        return [done[t.id] for t in plan.tiles]


