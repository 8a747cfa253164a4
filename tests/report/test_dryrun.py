"""``estimator plan``: a dry run reports the job without running it (it reads one chunk to time reading)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from estimator.demo.runner import demo_job
from estimator.stages.costs import READ_MPIX_PER_S, WORKER_BASE_BYTES

pytestmark = pytest.mark.integration


def test_plan_command_searches_saves_and_replans_offline(small_world, served_world, trained_model, tmp_path):
    job = demo_job(small_world, served_world.stac_url, trained_model.path, tmp_path / "out", tile_size=128)
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    saved = tmp_path / "items.json"
    r = subprocess.run(
        [sys.executable, "-m", "estimator", "plan", tmp_path / "job.yaml", "--save-items", saved, "--json", "--quiet"],
        capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    items = [json.loads(x) for x in small_world.items_path.read_text().splitlines() if x.strip()]
    usable = [i for i in items if i["properties"]["eo:cloud_cover"] <= job["stac"]["max_cloud_cover"]]
    assert d["items"] == len(usable) == d["time_slices"]
    assert d["items_per_mgrs_tile"] == {small_world.spec.mgrs_tile: len(usable)}
    assert d["grid"]["crs"] == f"EPSG:{small_world.spec.epsg}" and d["grid"]["tiles_kept"] == len(d["tiles"]) > 1
    px = d["pixels"]
    assert 0 < px["region_pixels"] <= px["tile_pixels"] and px["pixel_reads"] == sum(t["pixels"] * t["slices"] for t in d["tiles"])
    assert d["bytes_to_read"] > px["pixel_reads"] and d["forecast_seconds"]["total"] >= 0
    # the classification cost was timed on the job's own model, and the forecast says so
    cost = d["cost_figures"]
    assert cost["classify_measured"] and trained_model.model_id in cost["classify_source"]
    assert cost["classify_mpix_per_s_per_core"] > 0
    # so was reading: one chunk of the job's own scenes
    assert cost["read_measured"] and "timed while planning" in cost["read_source"] and cost["read_mpix_per_s_per_core"] > 0
    hours = d["forecast_core_hours"]
    assert hours["total"] == pytest.approx(hours["read"] + hours["features"] + hours["classify"])
    assert not (tmp_path / "out").exists()  # a dry run writes no run directory
    # offline: the saved list replaces the search (the STAC URL is never contacted)
    job["stac"]["url"] = "http://127.0.0.1:9/unreachable"
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    r2 = subprocess.run(
        [sys.executable, "-m", "estimator", "plan", tmp_path / "job.yaml", "--items", saved, "--json"], capture_output=True, text=True
    )
    assert r2.returncode == 0, r2.stderr
    assert json.loads(r2.stdout)["pixels"] == px
    # memory per worker: the worker process, plus one chunk of all dates per thread asked for
    r1 = subprocess.run(
        [sys.executable, "-m", "estimator", "plan", tmp_path / "job.yaml", "--items", saved, "--json", "--threads", "1"],
        capture_output=True, text=True,
    )
    assert r1.returncode == 0, r1.stderr
    one, two = json.loads(r1.stdout)["memory_per_worker_bytes"], json.loads(r2.stdout)["memory_per_worker_bytes"]
    chunk = two - one
    assert chunk > 0 and one - chunk == pytest.approx(WORKER_BASE_BYTES, abs=2)
    assert json.loads(r2.stdout)["cost_figures"]["read_measured"]  # the scenes are still reachable
    # offline for the scenes too: --no-read-timing, or a read that fails, use the constant and say so
    r4 = subprocess.run(
        [sys.executable, "-m", "estimator", "plan", tmp_path / "job.yaml", "--items", saved, "--json", "--no-read-timing"],
        capture_output=True, text=True,
    )
    assert r4.returncode == 0, r4.stderr
    c4 = json.loads(r4.stdout)["cost_figures"]
    assert not c4["read_measured"] and c4["read_mpix_per_s_per_core"] == READ_MPIX_PER_S and "--no-read-timing" in c4["read_source"]
    dead = tmp_path / "dead-items.json"
    dead.write_text(saved.read_text().replace(served_world.files_url.rstrip("/"), "http://127.0.0.1:9"))
    r5 = subprocess.run(
        [sys.executable, "-m", "estimator", "plan", tmp_path / "job.yaml", "--items", dead, "--json"], capture_output=True, text=True
    )
    assert r5.returncode == 0, r5.stderr
    c5 = json.loads(r5.stdout)["cost_figures"]
    assert not c5["read_measured"] and "timing a read failed" in c5["read_source"]
    r3 = subprocess.run([sys.executable, "-m", "estimator", "plan", tmp_path / "job.yaml"], capture_output=True, text=True)
    assert r3.returncode == 2 and "cannot reach the STAC API" in r3.stderr
