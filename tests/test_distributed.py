"""The same job on a dask.distributed scheduler (real scheduler and worker processes)."""

from __future__ import annotations

import pytest
import yaml

from estimator.config import load_job
from estimator.demo.runner import demo_job
from estimator.errors import EstimatorError
from estimator.pipeline import dask_context, run
from estimator.serve import free_port

pytestmark = pytest.mark.integration


def test_job_on_a_distributed_cluster_matches_local_threads(small_world, served_world, trained_model, tmp_path):
    from distributed import LocalCluster

    def job(name):
        p = tmp_path / f"{name}.yaml"
        p.write_text(yaml.safe_dump(demo_job(small_world, served_world.stac_url, trained_model.path, tmp_path / name, tile_size=256)))
        return load_job(p)

    local = run(job("local"), progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        remote = run(job("remote"), scheduler=cluster.scheduler_address, progress=False)
    assert remote.records == local.records


def test_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(EstimatorError, match="cannot connect to the dask scheduler"), dask_context(f"tcp://127.0.0.1:{free_port()}"):
        pass
