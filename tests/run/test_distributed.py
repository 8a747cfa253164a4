"""The same job on a dask.distributed scheduler (real scheduler and worker processes)."""

from __future__ import annotations

import pytest
import yaml

from estimator.config import load_job
from estimator.demo.runner import demo_job
from estimator.errors import ConfigError, EstimatorError
from estimator.run.cluster import connect_client, dask_context
from estimator.run.pipeline import run
from estimator.testing.servers import free_port

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
        # A connected Client (how dask-gateway and Coiled hand out clusters), through the
        # job's cluster.connect factory; the client stays open for its owner.
        global _CLUSTER_ADDRESS
        _CLUSTER_ADDRESS = cluster.scheduler_address
        j = job("connect")
        j = j.model_copy(update={"cluster": j.cluster.model_copy(update={"connect": f"{__name__}:connected_client"})})
        via = run(j, progress=False)
        assert via.records == local.records


_CLUSTER_ADDRESS = ""


def connected_client():
    """A cluster.connect factory: what a dask-gateway user writes, with a plain address."""
    from distributed import Client

    return Client(_CLUSTER_ADDRESS, timeout="10s")


def test_cluster_connect_errors_are_one_line():
    with pytest.raises(ConfigError, match="cannot import"):
        connect_client("no_such_module_xyz:make")
    with pytest.raises(ConfigError, match=r"not a distributed\.Client"):
        connect_client("os:getcwd")
    with pytest.raises(EstimatorError, match="failed: ZeroDivisionError"):
        connect_client(f"{__name__}:_broken")


def _broken():
    return 1 / 0


def test_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(EstimatorError, match="cannot connect to the dask scheduler"), dask_context(f"tcp://127.0.0.1:{free_port()}"):
        pass
