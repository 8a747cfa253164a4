"""The embedded default: ``python -m estimator demo``.

Generates (once, cached) the synthetic world, serves it on loopback exactly as a real
Earth Search v1 catalog is served (STAC API + Range-capable COG server), trains the demo
model with ``training`` over that API, writes the job file, runs it through the same
``pipeline.run`` a real job uses, prints estimates beside the truth, and compares them with
SYNTHETIC claims built from the truth (``claims.yaml``). Everything it prints is labeled
SYNTHETIC.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from estimator.claims.compare import compare, format_table
from estimator.config import load_job, load_train
from estimator.demo.claims import write_demo_claims
from estimator.demo.oracle import label_with_truth
from estimator.demo.world import World, WorldSpec, generate_world, generator_version, preset_spec
from estimator.errors import EstimatorError
from estimator.location import write_json
from estimator.report.text import print_estimates, print_summary
from estimator.run.pipeline import run
from estimator.run.rundir import Run, open_run
from estimator.stages.model import load_model
from estimator.stats.assess import assess_run
from estimator.stats.sample import draw_sample
from estimator.testing.servers import ServedWorld, ServerStartError, require_demo_extra, serve_world
from estimator.warnings import RetiredOutputsWarning

__all__ = ["build_demo", "demo_job", "demo_stac", "demo_train", "run_demo", "serve_demo", "serve_world"]

#: Reference sample of the demo: large, because the oracle labels for free and a small
#: sample in the huge forest stratum cannot rule out missed coca (wide intervals).
DEMO_SAMPLE_N = 3000

#: Demo model settings: a smaller forest than a production model, enough for this world.
DEMO_FIT = {"n_estimators": 60, "max_depth": 14, "min_samples_leaf": 2, "max_pixels_per_plot": 40, "cv_folds": 5, "seed": 0}


def demo_stac(stac_url: str) -> dict[str, Any]:
    """The ``stac`` section of demo (and benchmark) jobs: a served world, no cloud filter on
    the server side, small pages so paging is exercised."""
    return {"url": stac_url, "collection": "sentinel-2-l2a", "provider": "local", "max_cloud_cover": 95, "page_size": 5}


def demo_train(world: World, stac_url: str, tile_size: int = 512) -> dict[str, Any]:
    """Training file contents for a served world."""
    s = world.spec
    return {
        "stac": demo_stac(stac_url),
        "period": {"start": s.start, "end": s.end},
        "grid": {"resolution": 10, "crs": f"EPSG:{s.epsg}", "tile_size": tile_size, "chunk_size": 512},
        "fit": DEMO_FIT,
        "target_class": "coca",
    }


def demo_job(world: World, stac_url: str, model_dir: Path, run_dir: Path, tile_size: int = 512) -> dict[str, Any]:
    """Job file contents for a served world."""
    s = world.spec
    return {
        "stac": demo_stac(stac_url),
        "period": {"start": s.start, "end": s.end},
        "regions": {"file": str(world.regions_path), "id_field": "region_id"},
        "grid": {"resolution": 10, "crs": f"EPSG:{s.epsg}", "tile_size": tile_size, "chunk_size": 512},
        "model": str(model_dir),
        "output": str(run_dir),
        "target_class": "coca",
    }


def _write_yaml(path: Path, data: dict[str, Any], header: str) -> None:
    path.write_text(f"# {header}\n" + yaml.safe_dump(data, sort_keys=False))


def _model_is_current(model_dir: Path, world_key: str) -> bool:
    try:
        model = load_model(model_dir)
    except EstimatorError:
        return False
    return model.card.get("demo_world") == world_key


def build_demo(out: Path, spec: WorldSpec, *, progress: bool = True) -> tuple[World, dict[str, dict[str, float]], Run]:
    """Generate (or reuse) the world, serve it, train (or reuse) the demo model and run the job.

    Returns the world, its true hectares per region and class, and the finished run
    (``out/run``). Prints what it does; everything it prints is labeled SYNTHETIC.
    """
    from training.extract import read_labels
    from training.fit import train

    require_demo_extra()
    out.mkdir(parents=True, exist_ok=True)
    named = "" if spec.preset == "easy" else f"{spec.preset} preset, "
    print(f"SYNTHETIC demo world ({named}seed {spec.seed}, {spec.size_px}x{spec.size_px} px, {spec.n_dates} dates) in {out / 'world'}")
    world = generate_world(out / "world", spec, progress=progress)
    truth_all = json.loads(world.truth_path.read_text())
    truth = {rid: r["area_ha"] for rid, r in truth_all["regions"].items()}
    world_key = json.dumps({**asdict(spec), "generator": generator_version(spec.preset)}, sort_keys=True)

    with serve_world(world.root, out / "serve") as served:
        print(f"serving STAC API at {served.stac_url} and COGs at {served.files_url}")
        model_dir = out / "model"
        if _model_is_current(model_dir, world_key):
            print(f"reusing demo model in {model_dir}")
        else:
            train_path = out / "train.yaml"
            _write_yaml(train_path, demo_train(world, served.stac_url), "SYNTHETIC demo training file (written by `estimator demo`)")
            model = train(
                load_train(train_path), read_labels(world.labels_path), model_dir,
                progress=progress, extra_card={"demo_world": world_key, "synthetic": True},
            )
            f1 = model.card["metrics"]["per_class"]["coca"]["f1"]
            print(f"trained demo model {model.model_id}: cross-validated coca F1 {f1:.3f}")
        job_path, run_dir = out / "job.yaml", out / "run"
        _write_yaml(
            job_path, demo_job(world, served.stac_url, model_dir, run_dir),
            "SYNTHETIC demo job (written by `estimator demo`; the STAC port changes per run)",
        )
        # A rerun retires the previous demo's assessment and comparison; the demo assesses and
        # compares this run again below, so that is not news to the user.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RetiredOutputsWarning)
            result = run(load_job(job_path), progress=progress, truth=truth)
        if result.retired:
            print(f"moved the previous demo's {', '.join(result.retired)} to {run_dir / 'retired'}/ (assessing again)")
    print_summary(result.records, result.manifest, result.run_dir, truth=truth)
    return world, truth, result


def run_demo(
    out: Path, *, seed: int = 42, size_px: int | None = None, n_dates: int | None = None, preset: str = "easy",
    progress: bool = True,
) -> dict[str, Any]:
    """Generate, serve, train, run; print and return estimates beside truth. ``size_px`` and
    ``n_dates`` default to the preset's (easy: 1024 px, 18 dates; hard: 1024 px, 30 dates)."""
    spec = preset_spec(preset, seed=seed, size_px=size_px, n_dates=n_dates)
    world, truth, result = build_demo(out, spec, progress=progress)
    run_dir = out / "run"

    # Map -> stratified sample -> labels (the truth as interpreter) -> error-adjusted areas
    sample = draw_sample(open_run(run_dir), n=DEMO_SAMPLE_N, seed=seed, progress=progress)
    write_json(out / "sample.geojson", sample)
    write_json(out / "sample-labeled.geojson", label_with_truth(sample, world, seed=seed))
    assessed = assess_run(run_dir, out / "sample-labeled.geojson", truth=truth)
    n_strata = len(sample["sampling"]["strata"])
    print(
        f"\nreference sample: {len(sample['features'])} points in {n_strata} strata, labeled by the SYNTHETIC "
        "oracle (the world's truth); error-adjusted estimates:"
    )
    print_estimates(assessed["records"], "coca", synthetic=True, truth=truth)

    claims = write_demo_claims(out / "claims.yaml", {rid: a["coca"] for rid, a in truth.items()}, spec)
    comparison, _ = compare([run_dir], claims_path=claims)
    print(f"\nSYNTHETIC claims ({claims}) beside the estimates (`estimator compare {run_dir} --claims {claims}`):")
    print(format_table(comparison))
    return {
        "records": assessed["records"], "mapped_records": result.records, "truth": truth, "run_dir": result.run_dir,
        "comparison": comparison,
    }


#: Files of a finished demo whose ``stac.url`` names the demo's STAC API.
_DEMO_FILES = ("job.yaml", "train.yaml")


@contextmanager
def serve_demo(out: Path) -> Iterator[ServedWorld]:
    """Serve a finished demo's world again (``python -m estimator demo serve DIR``).

    The STAC API takes the port the demo's ``job.yaml`` names, so the job file (and
    ``train.yaml``) work as written; when that port is taken, another is used and their
    ``stac.url`` is updated (the job key ignores the URL, so finished tiles still count).
    """
    require_demo_extra()
    world_root = out / "world"
    if not (world_root / "stac" / "items.ndjson").is_file():
        raise EstimatorError(f"no demo world in {out}; run `python -m estimator demo --out {out}` first")
    files = {name: out / name for name in _DEMO_FILES if (out / name).is_file()}
    urls = {name: str((yaml.safe_load(p.read_text()) or {}).get("stac", {}).get("url", "")) for name, p in files.items()}
    port = urlsplit(urls["job.yaml"]).port if urls.get("job.yaml") else None
    try:
        served = serve_world(world_root, out / "serve", stac_port=port)
    except ServerStartError:
        if port is None:
            raise
        served = serve_world(world_root, out / "serve")
    with served:
        for name, path in files.items():
            if urls[name] != served.stac_url:
                text = path.read_text()
                head = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
                data = yaml.safe_load(text)
                data["stac"]["url"] = served.stac_url
                path.write_text(head + yaml.safe_dump(data, sort_keys=False))
                print(f"updated stac.url in {path} to {served.stac_url}", flush=True)
        yield served
