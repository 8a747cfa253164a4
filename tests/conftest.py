"""Shared fixtures: real data from ../shared (skipped when absent), small demo worlds,
served worlds, and a trained demo model. Worlds are small and seeded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ESTIMATOR_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared() -> Path:
    if not (SHARED / "real").is_dir():
        pytest.skip(f"real test data not found at {SHARED} (set ESTIMATOR_SHARED_DATA)")
    return SHARED


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run full-size tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="full-size run; use --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# Small seeded worlds: big enough for several tiles, plots and clouds; quick to make.
SMALL = {"size_px": 320, "n_dates": 12}


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    from estimator.demo.world import WorldSpec, generate_world

    return generate_world(tmp_path_factory.mktemp("world") / "w", WorldSpec(seed=11, **SMALL))


@pytest.fixture(scope="session")
def served_world(small_world, tmp_path_factory):
    from estimator.testing.servers import serve_world

    with serve_world(small_world.root, tmp_path_factory.mktemp("serve")) as served:
        yield served


@pytest.fixture(scope="session")
def trained_model(small_world, served_world, tmp_path_factory):
    """The demo model trained on the small world through the served STAC API."""
    import yaml

    from estimator.config import load_train
    from estimator.demo.runner import demo_train
    from training.extract import read_labels
    from training.fit import train

    d = tmp_path_factory.mktemp("model")
    (d / "train.yaml").write_text(yaml.safe_dump(demo_train(small_world, served_world.stac_url, tile_size=256)))
    return train(load_train(d / "train.yaml"), read_labels(small_world.labels_path), d / "model", progress=False)


@pytest.fixture(scope="session")
def small_run(small_world, served_world, trained_model, tmp_path_factory):
    """(job, RunResult) of the demo job on the small world; treat its directory as read-only."""
    import yaml

    from estimator.config import load_job
    from estimator.demo.runner import demo_job
    from estimator.run.pipeline import run

    d = tmp_path_factory.mktemp("job")
    (d / "run.yaml").write_text(yaml.safe_dump(demo_job(small_world, served_world.stac_url, trained_model.path, d / "run", tile_size=256)))
    job = load_job(d / "run.yaml")
    return job, run(job, progress=False)


@pytest.fixture
def run_copy(small_run, tmp_path):
    """A private copy of the small run's directory, for commands that update it."""
    import shutil

    dst = tmp_path / "run"
    shutil.copytree(small_run[1].run_dir, dst, ignore=shutil.ignore_patterns("tiles"))
    return dst
