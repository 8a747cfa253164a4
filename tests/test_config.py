"""Job files: validated once, unknown keys and malformed values are one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from estimator.config import load_job, load_train
from estimator.errors import ConfigError

GOOD = """
stac: {url: "http://127.0.0.1:1/", collection: sentinel-2-l2a, max_cloud_cover: 60}
period: {start: 2022-01-01, end: 2022-12-31}
regions: {file: regions.geojson, id_field: region_id}
grid: {resolution: 10}
model: models/demo
output: runs/x
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "job.yaml"
    p.write_text(text)
    return p


def test_good_job_resolves_paths_against_the_job_file(tmp_path):
    job = load_job(_write(tmp_path, GOOD))
    assert job.regions.file == (tmp_path / "regions.geojson").resolve()
    assert job.model == (tmp_path / "models/demo").resolve()
    assert job.output == (tmp_path / "runs/x").resolve()
    assert job.grid.crs is None and job.stac.max_cloud_cover == 60


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("model: models/demo\n", ""), "required key 'model' is missing"),
        (lambda t: t + "modle: x\n", "unknown key 'modle'"),
        (lambda t: t.replace("resolution: 10", "resolution: 10, tilesize: 5"), "unknown key 'grid.tilesize'"),
        (lambda t: t.replace("max_cloud_cover: 60", "max_cloud_cover: 160"), "stac.max_cloud_cover"),
        (lambda t: t.replace("end: 2022-12-31", "end: 2021-12-31"), "before period.start"),
        (lambda t: t.replace("start: 2022-01-01", "start: someday"), "period.start"),
        (lambda t: t.replace("stac: {", "stac: {{"), "not valid YAML"),
        (lambda t: "- just\n- a list\n", "expected a mapping"),
    ],
)
def test_bad_job_is_a_one_line_config_error(tmp_path, edit, message):
    with pytest.raises(ConfigError, match=message) as e:
        load_job(_write(tmp_path, edit(GOOD)))
    assert "\n" not in str(e.value)
    assert str(tmp_path / "job.yaml") in str(e.value)


def test_missing_job_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_job(tmp_path / "nope.yaml")


def test_overrides_apply_before_validation(tmp_path):
    job = load_job(_write(tmp_path, GOOD), overrides=["grid.tile_size=512", "stac.max_cloud_cover=20"])
    assert job.grid.tile_size == 512 and job.stac.max_cloud_cover == 20
    with pytest.raises(ConfigError, match="key=value"):
        load_job(_write(tmp_path, GOOD), overrides=["grid.tile_size"])


def test_train_file_rejects_job_only_keys(tmp_path):
    p = tmp_path / "train.yaml"
    p.write_text("stac: {url: x}\nperiod: {start: 2022-01-01, end: 2022-02-01}\nregions: {file: r.geojson}\n")
    with pytest.raises(ConfigError, match="unknown key 'regions'"):
        load_train(p)
