"""The full job against served demo worlds: outputs, truth, resume, failed reads, a second world."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import rasterio
import yaml

from estimator.config import load_job
from estimator.demo.runner import demo_job
from estimator.demo.world import WorldSpec, generate_world
from estimator.run.pipeline import run
from estimator.stages.estimate import RECORD_FIELDS
from estimator.testing.servers import serve_world
from tests.conftest import SMALL

pytestmark = pytest.mark.integration


def _job(tmp_path, world, stac_url, model, name="run", **overrides):
    data = demo_job(world, stac_url, model.path, tmp_path / name, tile_size=256)
    for k, v in overrides.items():
        data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(data))
    return load_job(p)


def _truth(world):
    return {rid: r["area_ha"] for rid, r in json.loads(world.truth_path.read_text())["regions"].items()}


@pytest.fixture(scope="module")
def first_run(small_run):
    return small_run


def test_run_writes_the_output_contract(first_run, small_world):
    job, result = first_run
    d = result.run_dir
    est = json.loads((d / "estimates.json").read_text())
    assert est["schema_version"] == 1 and est["synthetic"] is True
    regions = {r["region"] for r in est["records"]}
    assert regions == set(_truth(small_world))
    for r in est["records"]:
        assert set(RECORD_FIELDS) <= set(r)
        assert r["estimator"] == "mapped" and r["period"] == job.period.label
        assert 0.99 <= r["observed_fraction"] <= 1.0
        assert r["failed_read_fraction"] == 0.0
    csv_lines = (d / "estimates.csv").read_text().splitlines()
    assert csv_lines[0].split(",") == list(RECORD_FIELDS) and len(csv_lines) == len(est["records"]) + 1
    for name, dtype in (("class.tif", "uint8"), ("coca_probability.tif", "float32"), ("valid_obs_count.tif", "int16")):
        with rasterio.open(d / "maps" / name) as src:
            assert src.dtypes[0] == dtype and src.crs.to_epsg() == small_world.spec.epsg
            assert src.profile.get("tiled") and src.compression.name.upper() == "DEFLATE"
            assert src.overviews(1), "a COG carries overviews"
            assert src.tags().get("SYNTHETIC")
    assert (d / "quicklook.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (d / "report.md").read_text()
    assert "SYNTHETIC" in report and "coca" in report


def test_manifest_records_provenance_across_the_baseline_change(first_run, trained_model):
    _, result = first_run
    m = json.loads((result.run_dir / "manifest.json").read_text())
    offsets = {i["processing_baseline"]: i["offset"] for i in m["items"]}
    assert offsets == {"03.01": 0.0, "04.00": pytest.approx(-0.1)}
    assert m["model"]["sha256"] == trained_model.sha256
    assert m["stac"]["filter_mode"] == "client" and m["stac"]["pages"] >= 2
    assert all(t["status"] == "done" for t in m["tiles"]) and len(m["tiles"]) >= 2
    assert m["versions"]["odc-stac"] and m["config_hash"]


def test_mapped_coca_is_close_to_truth(first_run, small_world):
    _, result = first_run
    truth = _truth(small_world)
    got = {r["region"]: r["area_ha"] for r in result.records if r["class"] == "coca"}
    total_true = sum(t["coca"] for t in truth.values())
    assert sum(got.values()) == pytest.approx(total_true, rel=0.2)
    for rid, t in truth.items():
        if t["coca"] >= 5:
            assert got[rid] == pytest.approx(t["coca"], rel=0.3), rid
    # region areas are true ground areas, equal to the world's own (independent) computation
    for r in result.records:
        assert r["region_area_ha"] == pytest.approx(
            json.loads(small_world.truth_path.read_text())["regions"][r["region"]]["region_area_ha"], rel=2e-3
        )


def test_rerun_reuses_finished_tiles_and_reproduces_estimates(first_run):
    job, result = first_run
    again = run(job, progress=False)
    assert again.tiles_reused == len(result.manifest["tiles"])
    assert again.records == result.records


def test_resumed_job_reads_no_pixel_of_a_finished_tile(small_world, trained_model, tmp_path, monkeypatch):
    """Every COG request goes through a logging proxy: a rerun of a finished job in a new
    process (GDAL caches what it read in-process) sends none. After losing one tile's
    checkpoint (a job killed before that tile was saved) the rerun loads that tile only."""
    from estimator.run import tiles
    from estimator.testing.faults import FaultPlan, serve_world_with_faults

    served, proxy = serve_world_with_faults(small_world.root, tmp_path / "serve", FaultPlan())
    with served:
        job = _job(tmp_path, small_world, served.stac_url, trained_model)
        first = run(job, progress=False)
        first_reads = len(proxy.requests(r"\.tif"))
        assert first_reads > 0
        r = subprocess.run(
            [sys.executable, "-m", "estimator", "run", str(tmp_path / "run.yaml"), "--quiet"], capture_output=True, text=True
        )
        assert r.returncode == 0, r.stderr
        assert len(proxy.requests(r"\.tif")) == first_reads, "a rerun of a finished job read pixels again"

        done = [t["id"] for t in first.manifest["tiles"] if t["status"] == "done"]
        assert len(done) >= 4
        lost = done[len(done) // 2]
        (checkpoint,) = job.output.glob(f"tiles/*/{lost}.json")
        checkpoint.unlink()
        loaded: list[str] = []
        real_load = tiles.load_tile

        def spy(tile, *args, **kwargs):
            loaded.append(tile.id)
            return real_load(tile, *args, **kwargs)

        monkeypatch.setattr(tiles, "load_tile", spy)
        resumed = run(job, progress=False)
    assert loaded == [lost]
    assert [t["id"] for t in resumed.manifest["tiles"] if not t["reused"]] == [lost]
    assert resumed.records == first.records


def test_unreadable_scene_is_counted_as_failed_reads_not_zeros(small_world, trained_model, tmp_path):
    world_copy = tmp_path / "world"
    shutil.copytree(small_world.root, world_copy)
    items = [json.loads(x) for x in (world_copy / "stac/items.ndjson").read_text().splitlines() if x.strip()]
    victim = items[len(items) // 2]["id"]
    good = (world_copy / "cogs" / victim / "B04.tif").read_bytes()
    (world_copy / "cogs" / victim / "B04.tif").write_bytes(b"not a tiff")
    from estimator.demo.world import load_world

    broken = load_world(world_copy)
    with serve_world(world_copy, tmp_path / "serve") as served:
        job = _job(tmp_path, broken, served.stac_url, trained_model)
        result = run(job, progress=False)
        # the scene comes back: a rerun (a new process, as a user would; GDAL caches what
        # it read in-process) reads the tiles that lost it again and reuses the others
        (world_copy / "cogs" / victim / "B04.tif").write_bytes(good)
        r = subprocess.run([sys.executable, "-m", "estimator", "run", tmp_path / "run.yaml", "--quiet"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    healed = json.loads((job.output / "estimates.json").read_text())["records"]
    assert all(r["failed_read_fraction"] == 0 for r in healed)
    tiles = json.loads((job.output / "manifest.json").read_text())["tiles"]
    assert all(t["status"] == "done" and not t["failed_items"] for t in tiles)
    hit = {t["id"] for t in result.manifest["tiles"] if t["failed_items"]}
    assert {t["id"] for t in tiles if not t["reused"]} == hit
    assert all(victim in t["failed_items"] for t in result.manifest["tiles"] if t["status"] == "done" and t["failed_items"])
    assert any(victim in t["failed_items"] for t in result.manifest["tiles"])
    for r in result.records:
        # one of the twelve dates lost wherever it covered the region
        assert r["failed_read_fraction"] == pytest.approx(1 / len(items), rel=0.35)
        assert r["observed_fraction"] > 0.9


def test_a_second_world_runs_without_code_changes(trained_model, tmp_path):
    world = generate_world(tmp_path / "world2", WorldSpec(seed=99, **SMALL))
    with serve_world(world.root, tmp_path / "serve") as served:
        result = run(_job(tmp_path, world, served.stac_url, trained_model), progress=False)
    coca = {r["region"]: r["area_ha"] for r in result.records if r["class"] == "coca"}
    truth = _truth(world)
    assert set(coca) == set(truth)
    assert sum(coca.values()) == pytest.approx(sum(t["coca"] for t in truth.values()), rel=0.35)


def test_loaded_reflectance_is_continuous_across_the_baseline_change(small_world, served_world):
    """Forest reflectance read before and after 2022-01-25 agrees once per-item offsets apply."""
    import dask

    from estimator.config import PeriodConfig, StacConfig
    from estimator.stages.load import configure_gdal, load_tile
    from estimator.stages.plan import make_plan
    from estimator.stages.search import search_items

    found = search_items(
        StacConfig(url=served_world.stac_url, max_cloud_cover=100),
        (-180, -90, 180, 90), PeriodConfig(start=small_world.spec.start, end=small_world.spec.end), progress=False,
    )
    regions = json.loads(small_world.regions_path.read_text())
    from shapely.geometry import shape

    plan = make_plan([i.to_dict() for i in found.items], shape(regions["features"][0]["geometry"]), resolution=10, tile_size=4096)
    configure_gdal()
    stack = load_tile(plan.tiles[0], plan, {i.id: i for i in found.items})
    with dask.config.set(scheduler="threads"):
        refl, scl = dask.compute(stack.reflectance.sel(band="nir").data, stack.scl.data)
    times = [plan.items[g[0]].datetime.date().isoformat() for g in stack.groups]
    veg = np.where(scl == 4, refl, np.nan)
    before = np.nanmedian(veg[[t < "2022-01-25" for t in times]])
    after = np.nanmedian(veg[[t >= "2022-01-25" for t in times]])
    assert 0.15 < before < 0.5
    assert after == pytest.approx(before, abs=0.03)  # without the offset "after" would be ~0.1 higher


def test_changed_regions_invalidate_finished_tiles(small_world, served_world, trained_model, tmp_path):
    regions = json.loads(small_world.regions_path.read_text())
    path = tmp_path / "regions.geojson"
    path.write_text(json.dumps(regions))
    job = _job(tmp_path, small_world, served_world.stac_url, trained_model, regions={"file": str(path)})
    first = run(job, progress=False)
    a, b = regions["features"][0], regions["features"][1]
    a["geometry"], b["geometry"] = b["geometry"], a["geometry"]  # same ids, same grid, swapped shapes
    path.write_text(json.dumps(regions))
    second = run(job, progress=False)
    assert second.tiles_reused == 0
    area = lambda res, rid: next(r["region_area_ha"] for r in res.records if r["region"] == rid)  # noqa: E731
    ida, idb = a["properties"]["region_id"], b["properties"]["region_id"]
    assert area(second, ida) == pytest.approx(area(first, idb)) and area(second, idb) == pytest.approx(area(first, ida))


def test_wrong_target_class_is_a_config_error(small_world, served_world, trained_model, tmp_path):
    from estimator.errors import ConfigError

    job = _job(tmp_path, small_world, served_world.stac_url, trained_model, target_class="cacao")
    with pytest.raises(ConfigError, match="'cacao' is not a class"):
        run(job, progress=False)
    assert not job.output.exists()
