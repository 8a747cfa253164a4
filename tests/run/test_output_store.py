"""Runs written to fsspec URLs: memory:// in-process and s3:// against a real S3 server
(moto) on 127.0.0.1: same estimates as a local run, tile reuse, a half-written tile redone,
and one-line errors for a protocol whose package is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import fsspec
import pytest
import yaml

from estimator.config import load_job
from estimator.demo.runner import demo_job
from estimator.errors import ConfigError, EstimatorError
from estimator.location import RunLocation, as_output
from estimator.run.pipeline import run
from estimator.run.rundir import open_run

OUTPUTS = ("estimates.json", "estimates.csv", "manifest.json", "report.md", "quicklook.png",
           "maps/class.tif", "maps/coca_probability.tif", "maps/valid_obs_count.tif", "plots.geoparquet", "plots.geojson")


def _job_file(tmp_path: Path, world, stac_url: str, model, output: str) -> Path:
    data = demo_job(world, stac_url, model.path, tmp_path / "unused", tile_size=256)
    data["output"] = output
    p = tmp_path / "job.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _tile_jsons(fs, root: str) -> list[str]:
    return sorted(fs.glob(f"{root}/tiles/*/*.json"))


# -- the output setting -------------------------------------------------------------------


def test_output_is_a_resolved_path_or_a_normalised_url(tmp_path):
    assert as_output("runs/x", tmp_path) == (tmp_path / "runs/x").resolve()
    assert as_output(f"file://{tmp_path}/r/", tmp_path) == tmp_path / "r"
    assert as_output("s3://bucket/prefix/run/", tmp_path) == "s3://bucket/prefix/run"
    assert as_output("memory://b/r") == "memory://b/r"
    assert as_output(Path("s3://bucket/run")) == "s3://bucket/run", "a Path made from a URL stays a URL"
    assert as_output(r"C:/runs/x") == Path("C:/runs/x"), "a Windows drive is not a protocol"


def test_job_output_accepts_urls_and_overrides(tmp_path, small_world, trained_model):
    p = _job_file(tmp_path, small_world, "http://127.0.0.1:9", trained_model, "runs/a")
    assert load_job(p).output == (tmp_path / "runs/a").resolve()
    assert load_job(p, ["output=s3://bucket/run/"]).output == "s3://bucket/run"
    assert load_job(p, ["output=memory://m/run"]).model_dump(mode="json")["output"] == "memory://m/run"


def test_unknown_protocol_is_a_config_error():
    with pytest.raises(ConfigError, match=r"unknown protocol 'nosuch://'"):
        RunLocation.open("nosuch://bucket/run")


def test_missing_protocol_package_says_what_to_install(tmp_path, small_world, trained_model):
    """s3fs blocked from importing: the CLI fails in one line naming the extra, before any
    work (the STAC address and model below would fail otherwise)."""
    data = demo_job(small_world, "http://127.0.0.1:9/stac", tmp_path / "no-model", tmp_path / "x", tile_size=256)
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(data))
    script = "import sys; sys.modules['s3fs'] = None; from estimator.cli import main; sys.exit(main(sys.argv[1:]))"
    r = subprocess.run(
        [sys.executable, "-c", script, "run", str(job), "--out", "s3://bucket/run", "--quiet"],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode != 0
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert "pip install 'coca-estimator[s3]'" in r.stderr and "s3fs" in r.stderr


def test_follow_on_commands_need_a_local_copy_of_a_remote_run():
    with pytest.raises(EstimatorError, match=r"s3://bucket/run is a remote run; copy it to a local directory"):
        open_run(Path("s3://bucket/run"))  # as argparse hands it over


# -- memory:// ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def memory_run(small_world, served_world, trained_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("memjob")
    url = f"memory://runs/{d.name}"
    job = load_job(_job_file(d, small_world, served_world.stac_url, trained_model, url))
    yield job, run(job, progress=False)
    fsspec.filesystem("memory").rm(f"/runs/{d.name}", recursive=True)


def test_memory_run_writes_every_output_and_matches_a_local_run(memory_run, small_run):
    job, result = memory_run
    local = small_run[1]
    assert result.run_dir == job.output and str(job.output).startswith("memory://")
    fs, root = fsspec.core.url_to_fs(str(job.output))
    for name in OUTPUTS:
        assert fs.exists(f"{root}/{name}"), name
    assert result.records == local.records
    local_dir = Path(local.run_dir)
    # the same outputs, but for the run id each run gives its own set (and writes into the class map's tags)
    assert _without_run_id(fs.cat_file(f"{root}/estimates.json")) == _without_run_id((local_dir / "estimates.json").read_bytes())
    for name in ("estimates.csv", "maps/coca_probability.tif"):
        assert fs.cat_file(f"{root}/{name}") == (local_dir / name).read_bytes(), name
    manifest = json.loads(fs.cat_file(f"{root}/manifest.json"))
    assert manifest["config"]["output"] == job.output
    assert [t["id"] for t in manifest["tiles"]] == [t["id"] for t in local.manifest["tiles"]]
    assert len(_tile_jsons(fs, root)) == len(manifest["tiles"]) >= 2
    assert not [p for p in fs.find(root) if p.endswith(".part")], "no temporary files left behind"


def test_memory_rerun_reuses_all_tiles_and_redoes_a_truncated_one(memory_run):
    job, result = memory_run
    n = len(result.manifest["tiles"])
    again = run(job, progress=False)
    assert again.tiles_reused == n and again.records == result.records

    fs, root = fsspec.core.url_to_fs(str(job.output))
    victim = _tile_jsons(fs, root)[0]
    whole = fs.cat_file(victim)
    fs.pipe_file(victim, whole[: len(whole) // 2])  # a write cut short
    healed = run(job, progress=False)
    assert healed.tiles_reused == n - 1 and healed.records == result.records
    redone = [t["id"] for t in healed.manifest["tiles"] if not t["reused"]]
    assert redone == [victim.rsplit("/", 1)[-1].removesuffix(".json")]
    assert json.loads(fs.cat_file(victim)) == json.loads(whole)


# -- s3:// against a real S3-compatible server on loopback ---------------------------------


@pytest.fixture(scope="module")
def s3_server():
    pytest.importorskip("s3fs", reason="s3fs not installed: pip install 'coca-estimator[s3]'")
    moto_server = pytest.importorskip("moto.server", reason="moto[server] not installed (test extra)")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem()
    fs.mkdir("runs")
    try:
        yield fs, env
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        mp.undo()
        server.stop()


def test_s3_run_from_the_cli_then_resumed_in_process(s3_server, small_world, served_world, trained_model, small_run, tmp_path):
    fs, env = s3_server
    url = "s3://runs/team/vraem-2023"
    job_path = _job_file(tmp_path, small_world, served_world.stac_url, trained_model, "runs/local")
    r = subprocess.run(
        [sys.executable, "-m", "estimator", "run", str(job_path), "--out", url, "--quiet"],
        capture_output=True, text=True, timeout=300, env={**os.environ, **env},
    )
    assert r.returncode == 0, r.stderr
    assert f"run directory: {url}" in r.stdout
    fs.invalidate_cache()
    for name in OUTPUTS:
        assert fs.exists(f"runs/team/vraem-2023/{name}"), name
    local = small_run[1]
    assert _without_run_id(fs.cat_file("runs/team/vraem-2023/estimates.json")) == _without_run_id(
        (Path(local.run_dir) / "estimates.json").read_bytes()
    )
    n = len(local.manifest["tiles"])
    assert len(_tile_jsons(fs, "runs/team/vraem-2023")) == n

    job = load_job(job_path, [f"output={url}"])
    again = run(job, progress=False)
    assert again.tiles_reused == n and again.records == local.records


def _without_run_id(data: bytes) -> dict:
    import json

    d = json.loads(data)
    d.pop("run_id", None)
    return d
