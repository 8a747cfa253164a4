"""The command line as a user meets it: --help, one-line errors, exit codes, nothing left behind."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from estimator.demo.runner import demo_job
from estimator.testing.servers import free_port


def _cli(*args, module="estimator", cwd=None):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize(
    ("module", "cmd"),
    [("estimator", "run"), ("estimator", "demo"), ("estimator", "compare"), ("estimator", "interpret"), ("training", "fit")],
)
def test_help_has_examples(module, cmd):
    r = _cli(cmd, "--help", module=module)
    assert r.returncode == 0
    assert "examples:" in r.stdout and f"python -m {module} {cmd}" in r.stdout


def _assert_one_line_error(r, *fragments):
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture
def job_file(tmp_path, small_world, trained_model):
    def make(stac_url, **edits):
        data = demo_job(small_world, stac_url, trained_model.path, tmp_path / "out", tile_size=256)
        for dotted, value in edits.items():
            node = data
            *head, last = dotted.split("__")
            for k in head:
                node = node[k]
            if value is None:
                del node[last]
            else:
                node[last] = value
        p = tmp_path / "job.yaml"
        p.write_text(yaml.safe_dump(data))
        return p

    return make


@pytest.mark.integration
@pytest.mark.parametrize(
    ("edits", "fragments"),
    [
        ({"model": None}, ["required key 'model' is missing"]),
        ({"stac__colection": "x"}, ["unknown key 'stac.colection'"]),
        ({"period__start": "2010-01-01", "period__end": "2010-03-01"}, ["no usable scenes", "widen the period"]),
        ({"regions__file": "NOT_GEOJSON"}, ["is not GeoJSON"]),
        ({"model": "/nonexistent/model"}, ["not a model directory"]),
    ],
)
def test_bad_input_fails_in_one_line_and_writes_nothing(job_file, served_world, tmp_path, edits, fragments):
    if edits.get("regions__file") == "NOT_GEOJSON":
        bad = tmp_path / "regions.geojson"
        bad.write_text("region,wkt\nnorth,POLYGON((0 0,1 0,1 1,0 0))\n")
        edits = {"regions__file": str(bad)}
    r = _cli("run", job_file(served_world.stac_url, **edits))
    _assert_one_line_error(r, *fragments)
    assert not (tmp_path / "out").exists()


def test_unreachable_stac_url(job_file, tmp_path):
    r = _cli("run", job_file(f"http://127.0.0.1:{free_port()}/"), "--quiet")
    _assert_one_line_error(r, "cannot reach the STAC API", "check stac.url")
    assert not (tmp_path / "out").exists()


def test_malformed_yaml_and_missing_file(tmp_path):
    p = tmp_path / "job.yaml"
    p.write_text("stac: [unclosed\n")
    _assert_one_line_error(_cli("run", p), "not valid YAML")
    _assert_one_line_error(_cli("run", tmp_path / "missing.yaml"), "config file not found")


def test_debug_shows_the_traceback(tmp_path):
    r = _cli("run", tmp_path / "missing.yaml", "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr


@pytest.mark.integration
def test_run_command_end_to_end(job_file, served_world, tmp_path):
    r = _cli("run", job_file(served_world.stac_url), "--out", tmp_path / "cli-run", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "SYNTHETIC" in r.stdout and "coca" in r.stdout
    assert (tmp_path / "cli-run" / "estimates.json").is_file()
    assert not (tmp_path / "out").exists()  # --out replaced the job's output


@pytest.mark.integration
def test_more_bad_input_is_one_line(job_file, served_world, tmp_path):
    job = job_file(served_world.stac_url)
    _assert_one_line_error(_cli("run", job, "--set", "stac.url=[oops"), "not a valid YAML value")
    _assert_one_line_error(_cli("run", job, "--scheduler", "notanaddress"), "cannot connect to the dask scheduler")
    bad = tmp_path / "regions.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": [1]}')
    _assert_one_line_error(_cli("run", job_file(served_world.stac_url, regions__file=str(bad))), "not a GeoJSON Feature")
    assert not (tmp_path / "out").exists()
