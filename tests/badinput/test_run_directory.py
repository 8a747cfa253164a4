"""What a run does to its directory: refuses to run into others' files, retires what the
previous run's assessment and comparison derived, commits outputs as a set, redoes a
truncated checkpoint, and ends non-zero when most reads failed. Plus ``demo serve``."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
import yaml

from estimator.cli.main import main as estimator_main
from estimator.config import load_job
from estimator.demo.runner import demo_job, serve_demo
from estimator.location import RunLocation
from estimator.run.pipeline import run
from estimator.run.rundir import RUN_MARKER, check_run_location
from estimator.testing.faults import FaultPlan, FaultRule, serve_world_with_faults
from estimator.testing.servers import free_port
from estimator.warnings import RetiredOutputsWarning

COMPARED = ("region", "class", "area_ha", "observed_fraction", "failed_read_fraction")


def _compared(records):
    return sorted(tuple(r[k] for k in COMPARED) for r in records)


def test_staged_outputs_replace_the_old_set_only_when_complete(tmp_path):
    loc = RunLocation(tmp_path / "run")
    with loc.staged(last="manifest.json") as d:
        (d / "estimates.json").write_text("old")
        (d / "manifest.json").write_text("old")
    seen = []
    with pytest.raises(RuntimeError), loc.staged(last="manifest.json") as d:
        (d / "estimates.json").write_text("new")
        raise RuntimeError("killed while writing")
    assert (tmp_path / "run" / "estimates.json").read_text() == "old"  # the old set, whole
    with loc.staged(last="manifest.json", before_commit=lambda: seen.append(loc.exists("manifest.json"))) as d:
        (d / "estimates.json").write_text("new")
        (d / "manifest.json").write_text("new")
    assert seen == [False]  # the old manifest goes first: a half-done commit has none
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["estimates.json", "manifest.json"]
    assert (tmp_path / "run" / "estimates.json").read_text() == "new"


def test_run_location_check(tmp_path):
    check_run_location(RunLocation(tmp_path / "new"))  # does not exist yet
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "thesis.docx").write_text("x")
    with pytest.raises(Exception, match="is not a run directory"):
        check_run_location(RunLocation(tmp_path / "theirs"))
    (tmp_path / "theirs" / RUN_MARKER).write_text("{}")
    check_run_location(RunLocation(tmp_path / "theirs"))


@pytest.mark.integration
def test_rerun_redoes_a_truncated_checkpoint_retires_derived_files_and_keeps_others(small_run, tmp_path):
    job, first = small_run
    d = tmp_path / "run"
    shutil.copytree(first.run_dir, d)
    (d / "assessment.json").write_text("{}")
    (d / "report_claims.png").write_bytes(b"png")
    (d / "tiles" / "notes").mkdir()
    (d / "tiles" / "notes" / "keep.txt").write_text("not a checkpoint")
    npz = sorted((d / "tiles").glob("*/*.npz"))
    npz[0].write_bytes(npz[0].read_bytes()[:100])  # a truncated checkpoint
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RetiredOutputsWarning)
        again = run(job.model_copy(update={"output": d}), progress=False)
    assert _compared(again.records) == _compared(first.records)
    assert again.tiles_reused == len(npz) - 1
    assert set(again.retired) == {"assessment.json", "report_claims.png"}
    assert not (d / "assessment.json").exists() and len(list((d / "retired").glob("*/assessment.json"))) == 1
    assert (d / "tiles" / "notes" / "keep.txt").read_text() == "not a checkpoint"
    m = json.loads((d / "manifest.json").read_text())
    assert m["run_id"] == json.loads((d / "estimates.json").read_text())["run_id"] != first.manifest["run_id"]
    assert not list(d.glob(".staging-*"))


@pytest.mark.integration
def test_a_run_whose_reads_all_failed_ends_non_zero(small_world, trained_model, tmp_path, capsys):
    plan = FaultPlan((FaultRule("status", match=r"/(B04|B08)\.tif$", status=500),))
    world, _proxy = serve_world_with_faults(small_world.root, tmp_path / "serve", plan)
    with world:
        p = tmp_path / "job.yaml"
        p.write_text(yaml.safe_dump(demo_job(small_world, world.stac_url, trained_model.path, tmp_path / "run", tile_size=256)))
        code = estimator_main(["run", str(p), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "failed reads: 100.0 %" in out
    assert "image reads failed" in err and "Traceback" not in err
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Not a result: 100.0 %" in report


@pytest.mark.integration
def test_demo_serve_serves_a_finished_demo_again(small_world, trained_model, tmp_path):
    d = tmp_path / "demo"
    d.mkdir()
    (d / "world").symlink_to(small_world.root)
    port = free_port()
    dead = f"http://127.0.0.1:{port}"
    (d / "job.yaml").write_text(
        "# SYNTHETIC demo job\n" + yaml.safe_dump(demo_job(small_world, dead, trained_model.path, d / "run", tile_size=256))
    )
    with serve_demo(d) as served:
        job = load_job(d / "job.yaml")
        assert job.stac.url == served.stac_url  # the job file works as written
        assert served.stac_url == dead  # on the port it names, when free
        from estimator.regions.geometry import regions_bbox
        from estimator.regions.job import job_regions
        from estimator.stages.search import search_items

        assert search_items(job.stac, regions_bbox(job_regions(job.regions)), job.period, progress=False).items
    assert (d / "job.yaml").read_text().startswith("# SYNTHETIC demo job")


def test_demo_serve_without_a_demo(tmp_path):
    with pytest.raises(Exception, match="no demo world"), serve_demo(tmp_path):
        pass


def test_plan_items_normalises_planetary_computer_items(shared, tmp_path):
    from shapely.geometry import box

    from estimator.config import PeriodConfig, StacConfig
    from estimator.regions.geometry import Region
    from estimator.report.plan_summary import read_items, select_items

    items = read_items(shared / "real/stac/planetary_computer/itemcollection_T35MNM_2020-06_07_DRCongo.geojson")
    regions = [Region("r", box(27.2, -8.0, 27.4, -7.8))]
    stac = StacConfig(url="http://127.0.0.1:9/", provider="planetary-computer", max_cloud_cover=20)
    with pytest.warns(Warning, match="7 outside the period"):
        kept = select_items(items, regions, PeriodConfig(start="2020-06-01", end="2020-06-30"), stac)
    assert len(kept) == 6  # June's scenes; none above 20 % cloud in June
    assert all({"red", "nir", "scl"} <= set(i.assets) for i in kept)  # Planetary Computer names became ours
    with pytest.warns(Warning, match="outside the period"):
        select_items(items, regions, PeriodConfig(start="2020-06-15", end="2020-07-31"), stac)
