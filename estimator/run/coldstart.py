"""A cold-start job (``model: none``): label-free strata instead of a class map.

Reads like :func:`estimator.run.pipeline.run` with one stage swapped: the strata are fitted
on a seeded subsample of clear pixels (:func:`fit_strata_on_tiles`), then every tile is
computed by the same :func:`~estimator.run.tiles.process_tile` as a classified job, with the
strata in place of the model (:func:`estimator.stages.strata.strata_model`), so reads,
retries, checkpoints and per-region sums are shared. The run directory holds
``maps/strata.tif`` (no class map, no probability map), ``estimates.json`` with no class
area but the strata's pixels and hectares per region, and a report that says no model was
used. ``estimator sample`` draws from the strata, ``estimator assess`` estimates the area of
every class of the job's legend (Stehman 2014), and ``training fit`` turns the same labelled
units into the first model (docs/cold_start.md).
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from estimator.config import JobConfig
from estimator.errors import EstimatorError
from estimator.location import RunLocation, write_json, write_text
from estimator.regions.geometry import Region, rasterize_regions, regions_bbox, to_crs
from estimator.report.strata_report import render_strata_report_md
from estimator.run.checkpoints import TileStore, job_key
from estimator.run.cluster import map_tiles, tiles_computing
from estimator.run.manifest import Timer, build_manifest
from estimator.run.outputs import write_strata_maps
from estimator.run.rundir import (
    MANIFEST_FILE,
    RETIRED_DIR,
    RUN_ID_TAG,
    mark_run_location,
    new_run_id,
    retire_derived,
    write_estimates,
)
from estimator.run.tiles import finish_tile, inside_regions, process_tile, tile_observations
from estimator.stages.aggregate import TilePartial, reduce_partials
from estimator.stages.classify import model_plugin
from estimator.stages.estimate import mapped_records
from estimator.stages.features import FEATURE_NAMES
from estimator.stages.load import configure_gdal
from estimator.stages.plan import Plan, make_plan, warn_uncovered_regions
from estimator.stages.plots import make_plots
from estimator.stages.search import search_items
from estimator.stages.strata import StrataClassifier, fit_strata, strata_model
from estimator.synthetic import SYNTHETIC_PROPERTY
from estimator.warnings import RetiredOutputsWarning

__all__ = ["STRATA_ESTIMATOR", "fit_strata_on_tiles", "run_strata", "strata_rows"]

log = logging.getLogger(__name__)

#: ``estimator`` of a strata row in estimates.json.
STRATA_ESTIMATOR = "strata (no model)"


def fit_strata_on_tiles(job: JobConfig, plan: Plan, items: Mapping[str, Any], regions: Sequence[Region]) -> StrataClassifier:
    """Fit the strata on a seeded subsample of clear pixels inside the regions.

    Up to ``strata.fit_tiles`` tiles holding region pixels are drawn at random; each of their
    chunks is computed on its own (a tile's features never sit in memory at once) and every
    clear pixel inside a region is kept with the same probability, so the subsample is a
    simple random sample of those tiles' clear pixels.
    """
    cfg = job.strata_config
    rng = np.random.default_rng(cfg.seed)
    candidates = [t for t in plan.tiles if rasterize_regions(regions, t.geobox).any()]
    if not candidates:
        raise EstimatorError("no tile of the plan lies inside a region; check the regions and the grid")
    picked = sorted(rng.choice(len(candidates), size=min(cfg.fit_tiles, len(candidates)), replace=False).tolist())
    tiles = [candidates[i] for i in picked]
    inside_px = sum(int(inside_regions(regions, t.geobox).sum()) for t in tiles)
    rate = min(1.0, 2.0 * cfg.fit_pixels / max(inside_px, 1))  # x2: part of the pixels is never clear
    rows: list[np.ndarray] = []
    for tile in tiles:
        obs = tile_observations(tile, plan, items, job.mask.clear_scl, persist=False)
        if obs is None:
            continue
        inside = inside_regions(regions, tile.geobox)
        c = plan.chunk_size
        nby, nbx = obs.features.numblocks[1:]
        for by in range(nby):
            for bx in range(nbx):
                block_inside = inside[by * c : (by + 1) * c, bx * c : (bx + 1) * c]
                if not block_inside.any():
                    continue
                feats = np.asarray(obs.features.blocks[:, by, bx].compute())
                flat = feats.reshape(feats.shape[0], -1).T
                ok = block_inside.reshape(-1) & np.isfinite(flat).all(axis=1)
                keep = ok & (rng.random(ok.size) < rate)
                rows.append(flat[keep])
    X = np.concatenate(rows) if rows else np.empty((0, len(FEATURE_NAMES)), np.float32)
    if len(X) > cfg.fit_pixels:
        X = X[np.sort(rng.choice(len(X), size=cfg.fit_pixels, replace=False))]
    try:
        return fit_strata(X, cfg.clusters, seed=cfg.seed, harvest_rule=cfg.harvest_rule)
    except ValueError as e:
        raise EstimatorError(f"cannot make strata: {e}") from None


def strata_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per region and stratum: pixels and true hectares (from the per-class records of the
    strata, which are not classes), with the region's coverage figures."""
    keep = (
        "region", "region_name", "period", "observed_fraction", "failed_read_fraction", "region_area_ha",
        "observed_area_ha", "synthetic",
    )
    return [
        {
            **{k: r[k] for k in keep}, "stratum": r["class"], "pixels": r["mapped_pixels"],
            "stratum_area_ha": r["mapped_area_ha"], "estimator": STRATA_ESTIMATOR, "model_id": "none",
        }
        for r in records
    ]


def run_strata(
    job: JobConfig,
    regions: Sequence[Region],
    location: RunLocation,
    client: Any,
    timer: Timer,
    progress: bool,
) -> tuple[list[dict[str, Any]], dict[str, Any], set[str], list[str]]:
    """Search, plan, fit the strata, compute every tile, write the run directory; returns
    (strata rows, manifest, reused tile ids, retired files)."""
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
    configure_gdal()
    with timer("strata"):
        strata = fit_strata_on_tiles(job, plan, items, regions)
    model = strata_model(strata)
    # Strata are a partition for sampling, not a map to clean up: a small harvest-like
    # clearing is exactly what its stratum is for, so no minimum mapping unit.
    tile_job = job.model_copy(update={"classify": job.classify.model_copy(update={"min_patch_ha": 0.0, "cascade": False})})
    store = TileStore(location, job_key(tile_job, model, plan, regions))
    mark_run_location(location)
    reused: set[str] = set()
    bar = tqdm(total=len(plan.tiles), desc="tiles", unit="tile", disable=not progress)
    with timer("tiles"), bar:
        estimator: Any = strata
        if client is not None:
            from estimator.stages.classify import ModelRef

            key = f"strata-{model.identity[:40]}"
            client.register_plugin(model_plugin(key, strata))
            estimator = ModelRef(key)
        todo = []
        done: dict[str, TilePartial] = {}
        for tile in plan.tiles:
            prev = store.done(tile.id)
            if prev is None:
                todo.append(tile)
            else:
                done[tile.id] = prev
                reused.add(tile.id)
                bar.update(1)
        compute_slot = threading.BoundedSemaphore(tiles_computing(client, job))

        def work(tile: Any) -> TilePartial:
            raw = process_tile(tile, plan, items, regions, model, estimator, tile_job, compute_slot)
            if raw.final is not None:
                part, arrays = raw.final, raw.arrays
            else:  # no minimum mapping unit: nothing to wait for from the neighbouring tiles
                part, arrays = finish_tile(tile, plan, regions, model, raw, raw.arrays["codes_raw"], 0, 0)
            store.save(part, arrays)
            bar.update(1)
            return part

        for part in map_tiles(work, todo, 2 * tiles_computing(client, job)):
            done[part.tile_id] = part
        partials = [done[t.id] for t in plan.tiles]
    with timer("reduce"):
        totals = reduce_partials(partials, [r.id for r in regions])
        rows = strata_rows(
            mapped_records(totals, regions, model.classes, period=job.period.label, model_id="none", synthetic=synthetic)
        )
    run_id = new_run_id()
    retired: list[str] = []
    with location.staged(last=MANIFEST_FILE, before_commit=lambda: retired.extend(retire_derived(location))) as run_dir:
        with timer("outputs"):
            write_strata_maps(
                run_dir, plan, store.array, model.classes,
                outlines=[(r.id, to_crs(r.geometry, str(plan.grid.crs))) for r in regions],
                title=f"Label-free strata {job.period.label} (no model)", synthetic=synthetic, tags={RUN_ID_TAG: run_id},
            )
        # No plots without a target class map: the manifest gets no plots section.
        empty = make_plots([], grid_affine=plan.grid.affine, crs=str(plan.grid.crs), region_ids=[r.id for r in regions], synthetic=synthetic)
        manifest = {RUN_ID_TAG: run_id, **build_manifest(job, regions, model, found, plan, partials, reused, synthetic, timer, empty)}
        manifest.pop("plots", None)
        manifest["model"] = {
            "id": "none",
            "path": None,
            "classes": list(model.classes),
            "target_class": job.target_class,
            "reference_classes": list(job.classes or ()),
            "estimator": None,
            "reference_units": [],
            "strata": {
                "map": "maps/strata.tif",
                "method": "MiniBatchKMeans on the standardised temporal features"
                + (" + a harvest-like rule stratum" if strata.harvest_rule else ""),
                "sha256": model.sha256,
                "config": job.strata_config.model_dump(mode="json"),
                "strata": strata.describe(),
            },
        }
        meta = {"period": job.period.label, "synthetic": synthetic, "model_id": "none", RUN_ID_TAG: run_id, "strata": rows}
        write_estimates(run_dir, [], meta)
        write_json(run_dir / MANIFEST_FILE, manifest)
        write_text(run_dir / "report.md", render_strata_report_md(rows, manifest))
    if retired:
        warnings.warn(
            f"{location}: {', '.join(retired)} described the previous run, not this one; moved to "
            f"{RETIRED_DIR}/ (assess and compare this run again)",
            RetiredOutputsWarning,
            stacklevel=3,
        )
    store.prune_others()
    return rows, manifest, reused, retired
