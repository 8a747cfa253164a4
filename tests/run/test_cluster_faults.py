"""Faults on a real dask cluster: a scheduler and worker processes started as a user would.

``test_distributed.py`` runs the job on a ``LocalCluster``, whose processes belong to the
test. Here the scheduler and workers are separate ``dask scheduler`` / ``dask worker``
processes, so a worker or the client can be SIGKILLed mid-job the way a preempted cloud
node or a closed laptop kills them, and the job must still produce the same hectares:
dask recomputes tasks lost with a worker (its nanny restarts it), and a rerun of a job
whose client died resumes from the tile checkpoints in the run directory.

Moments to kill are found by polling the run directory and the scheduler, never by sleeping.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from estimator.config import JobConfig, load_job
from estimator.demo.runner import demo_job
from estimator.run.pipeline import run

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
#: 3 x 3 tiles on the small world's 302 px grid: more tiles than a cluster has in flight
#: (2 per worker), so the last tiles start only after the first finish and there is time to
#: kill something in between; few enough to keep the module near a minute and a half.
TILE_SIZE = 128
N_WORKERS = 2
START_TIMEOUT_S = 60.0
JOB_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 15.0
POLL_S = 0.02
LOG_TAIL_CHARS = 3000


def _tail(path: Path) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(no log)"
    return f"--- {path.name} ---\n{text[-LOG_TAIL_CHARS:]}"


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running process. A zombie is not: it has exited and only waits
    for its parent (init, for orphaned dask worker processes) to reap it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pid reused by another user's process: ours is gone
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return not Path("/proc").is_dir()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_until(predicate: Callable[[], Any], timeout: float, what: str, *logs: Path) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``logs`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n" + "\n".join(_tail(p) for p in logs))
        time.sleep(POLL_S)


def _spawn(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own process group (so it and its children can be stopped
    together), output to ``log``, from the project root (so ``-m estimator`` imports it
    even without an editable install)."""
    with log.open("ab") as out:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def _stop_group(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the process group of ``proc``; SIGKILL what is left after ``timeout``."""
    pgid = proc.pid  # start_new_session made it the group leader
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)
    # A nanny's worker process is in the same group and may outlive the nanny briefly.
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
        if proc.poll() is not None and not _group_has_live_members(pgid):
            break
        time.sleep(POLL_S)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    proc.wait(timeout=timeout)


def _group_has_live_members(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs (zombies excluded), from /proc."""
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        return True
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@dataclass
class Cluster:
    """A running scheduler and its workers (each behind a nanny), all separate processes."""

    address: str
    client: Any
    """An admin ``distributed.Client`` (not the default client) for looking at the cluster."""
    scheduler: subprocess.Popen[bytes]
    nannies: list[subprocess.Popen[bytes]]
    logs: Path
    seen_pids: set[int] = field(default_factory=set)
    """Every worker process id ever seen, restarted ones included, to check at teardown."""

    def worker_pids(self) -> dict[str, int]:
        """Worker address -> process id of the worker (not of its nanny)."""
        pids: dict[str, int] = self.client.run(os.getpid)
        self.seen_pids.update(pids.values())
        return pids

    def log_paths(self) -> list[Path]:
        return sorted(self.logs.glob("*.log"))

    def wait_for_workers(self, n: int) -> dict[str, int]:
        """Wait until exactly ``n`` workers are registered; return their process ids."""
        self.client.wait_for_workers(n, timeout=START_TIMEOUT_S)

        def exactly_n() -> dict[str, int] | None:
            # wait_for_workers waits for at least n; a killed worker may still be listed.
            pids = self.worker_pids()
            return pids if len(pids) == n else None

        return _wait_until(exactly_n, START_TIMEOUT_S, f"{n} workers", *self.log_paths())


def _worker_cmd(address: str, name: str, workdir: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "distributed.cli.dask_worker", address,
        "--host", "127.0.0.1", "--nthreads", "1", "--memory-limit", "2GiB", "--no-dashboard",
        "--name", name, "--local-directory", str(workdir / name),
        # Workers leave on their own if the scheduler vanishes (e.g. pytest itself killed).
        "--death-timeout", "60s",
        *extra,
    ]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from distributed import Client

    logs = tmp_path_factory.mktemp("cluster")
    sched_file = logs / "scheduler.json"
    procs: list[subprocess.Popen[bytes]] = []
    client = None
    c: Cluster | None = None
    try:
        scheduler = _spawn(
            [
                sys.executable, "-m", "distributed.cli.dask_scheduler",
                # Port 0: the OS picks a free port, with no race; the address is read back
                # from the scheduler file.
                "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file),
                # A safety net: a scheduler orphaned by a killed pytest closes by itself.
                "--idle-timeout", "600s",
            ],
            logs / "scheduler.log",
        )
        procs.append(scheduler)

        def address() -> str | None:
            if scheduler.poll() is not None:
                pytest.fail("dask scheduler exited at start\n" + _tail(logs / "scheduler.log"))
            try:
                return json.loads(sched_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                return None

        addr = _wait_until(address, START_TIMEOUT_S, "the dask scheduler file", logs / "scheduler.log")
        nannies = [_spawn(_worker_cmd(addr, f"nanny-{i}", logs), logs / f"nanny-{i}.log") for i in range(N_WORKERS)]
        procs.extend(nannies)
        client = Client(addr, timeout="20s", set_as_default=False)
        c = Cluster(addr, client, scheduler, nannies, logs)
        c.wait_for_workers(N_WORKERS)
        yield c
    finally:
        if client is not None:
            client.close()
        # Workers first, so they do not try to reconnect to a scheduler that is gone.
        for p in procs[1:]:
            _stop_group(p)
        if procs:
            _stop_group(procs[0])
        pids = {p.pid for p in procs} | (c.seen_pids if c is not None else set())
        left = sorted(pid for pid in pids if _alive(pid))
        assert not left, f"cluster processes still running after teardown: {left}"


@dataclass(frozen=True)
class JobFiles:
    """Writes job files of the module's job (same config, output directory varies)."""

    tmp: Path
    data: dict[str, Any]

    def __call__(self, name: str) -> tuple[Path, JobConfig]:
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**self.data, "output": str(self.tmp / name)}))
        return path, load_job(path)


@pytest.fixture(scope="module")
def job_files(small_world, served_world, trained_model, tmp_path_factory) -> JobFiles:
    tmp = tmp_path_factory.mktemp("cluster-jobs")
    return JobFiles(tmp, demo_job(small_world, served_world.stac_url, trained_model.path, tmp / "unused", tile_size=TILE_SIZE))


@pytest.fixture(scope="module")
def reference(job_files: JobFiles) -> tuple[list[dict[str, Any]], int]:
    """Records and tile count of the same job (same tiles, so the same per-tile sieve) run
    uninterrupted on local threads."""
    _, job = job_files("reference")
    result = run(job, progress=False)
    n_tiles = len(result.manifest["tiles"])
    assert n_tiles > 2 * (N_WORKERS + 1), "the job needs more tiles than a cluster has in flight"
    return _records(result.run_dir), n_tiles


def _records(run_dir: Path) -> list[dict[str, Any]]:
    return json.loads((run_dir / "estimates.json").read_text())["records"]


def _finished_tiles(run_dir: Path) -> list[Path]:
    # The tile JSON is written last (atomically), so its presence marks a finished tile.
    return sorted((run_dir / "tiles").glob("*/*.json"))


def _start_job(job_path: Path, address: str, log: Path) -> subprocess.Popen[bytes]:
    return _spawn([sys.executable, "-m", "estimator", "run", str(job_path), "--scheduler", address, "--quiet"], log)


def _finish_job(proc: subprocess.Popen[bytes], log: Path, *more_logs: Path) -> None:
    try:
        rc = proc.wait(timeout=JOB_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _stop_group(proc)
        pytest.fail(f"job did not finish in {JOB_TIMEOUT_S:.0f} s\n" + "\n".join(_tail(p) for p in (log, *more_logs)))
    assert rc == 0, f"job exited with status {rc}\n" + "\n".join(_tail(p) for p in (log, *more_logs))


def _first_tile_then(proc: subprocess.Popen[bytes], run_dir: Path, log: Path) -> list[Path]:
    """Wait until the job has checkpointed its first tile (failing if it exits first)."""

    def first() -> list[Path]:
        if proc.poll() is not None:
            pytest.fail(f"job exited (status {proc.returncode}) before its first tile checkpoint\n" + _tail(log))
        return _finished_tiles(run_dir)

    return _wait_until(first, JOB_TIMEOUT_S, "the first tile checkpoint", log)


def test_job_on_scheduler_and_worker_processes_matches_local_threads(cluster: Cluster, job_files: JobFiles, reference) -> None:
    records, n_tiles = reference
    _, job = job_files("remote")
    result = run(job, scheduler=cluster.address, progress=False)
    assert result.tiles_reused == 0 and len(result.manifest["tiles"]) == n_tiles
    assert result.records == records
    assert _records(result.run_dir) == records


def _kill_busy_worker(cluster: Cluster, workers: dict[str, int], proc: subprocess.Popen[bytes], log: Path) -> int:
    """SIGKILL one of ``workers`` (address -> pid) while it runs a task, so that work is
    really lost; return its pid."""

    def busy() -> int | None:
        for addr, keys in cluster.client.processing(list(workers)).items():
            if keys:
                return workers[addr]
        if proc.poll() is not None:
            pytest.fail("the job ended before a worker could be killed mid-task\n" + _tail(log))
        return None

    pid = _wait_until(busy, JOB_TIMEOUT_S, "a busy worker", log)
    os.kill(pid, signal.SIGKILL)
    return pid


def _scattered_holders(dask_scheduler: Any) -> dict[str, list[str]]:
    """Run on the scheduler: data that was scattered (no task can recompute it) -> the
    workers holding a copy."""
    return {
        str(key): sorted(ws.address for ws in ts.who_has)
        for key, ts in dask_scheduler.tasks.items()
        if ts.run_spec is None and ts.who_has
    }


def test_workers_killed_mid_job_lose_nothing(cluster: Cluster, job_files: JobFiles, reference) -> None:
    """Two worker processes SIGKILLed while they run tasks, at two moments of one job: a
    worker without a nanny (gone for good, like a lost node), then one behind a nanny
    (restarted). dask recomputes what they held and the job gives the same records.

    The model is scattered to every worker at the start of the job; the active memory
    manager is paused here so that those copies stay, because losing the last copy is a
    known defect (see the next test), not what this test is about.
    """
    records, n_tiles = reference
    supervised = cluster.wait_for_workers(N_WORKERS)
    bare = _spawn(_worker_cmd(cluster.address, "bare", cluster.logs, "--no-nanny"), cluster.logs / "bare.log")
    cluster.client.amm.stop()
    try:
        pids = cluster.wait_for_workers(N_WORKERS + 1)
        job_path, job = job_files("kill-workers")
        log = job_path.with_suffix(".log")
        proc = _start_job(job_path, cluster.address, log)
        try:
            _first_tile_then(proc, job.output, log)
            (bare_addr,) = (a for a, p in pids.items() if p == bare.pid)
            killed_bare = _kill_busy_worker(cluster, {bare_addr: bare.pid}, proc, log)
            n_done = [len(_finished_tiles(job.output))]
            # The second kill comes once the scheduler has dealt with the first (not after
            # another tile: tiles in flight finish in bursts, and the last burst may be it).
            _wait_until(
                lambda: bare_addr not in cluster.client.scheduler_info(n_workers=-1)["workers"],
                START_TIMEOUT_S, "the scheduler to drop the killed worker", log, *cluster.log_paths(),
            )
            killed = _kill_busy_worker(cluster, supervised, proc, log)
            n_done.append(len(_finished_tiles(job.output)))
            assert max(n_done) < n_tiles, f"tiles finished at the kills: {n_done} of {n_tiles}; a kill came too late to lose work"
            _finish_job(proc, log, *cluster.log_paths())
        finally:
            if proc.poll() is None:
                _stop_group(proc)
        assert bare.wait(timeout=STOP_TIMEOUT_S) == -signal.SIGKILL and killed_bare == bare.pid
        assert _records(job.output) == records
        assert not _alive(killed)
        after = cluster.wait_for_workers(N_WORKERS)  # the nanny's new process is back
        assert killed not in after.values()
        nanny_logs = "".join(p.read_text(errors="replace") for p in cluster.logs.glob("nanny-*.log"))
        assert f"Worker process {killed} was killed by signal 9" in nanny_logs
    finally:
        cluster.client.amm.start()
        _stop_group(bare)
        assert not _alive(bare.pid)


def test_worker_killed_with_default_memory_manager(cluster: Cluster, job_files: JobFiles, reference) -> None:
    """Default cluster settings (active memory manager on): any worker may die mid-job.

    The model reaches workers through a WorkerPlugin, not as scattered data, so there is
    no single copy to lose; a nanny restarts the worker and the plugin installs the model
    on it again.
    """
    records, n_tiles = reference
    pids = cluster.wait_for_workers(N_WORKERS)
    job_path, job = job_files("kill-default")
    log = job_path.with_suffix(".log")
    proc = _start_job(job_path, cluster.address, log)
    try:
        _first_tile_then(proc, job.output, log)
        n_done = len(_finished_tiles(job.output))
        if n_done >= n_tiles:
            pytest.fail("the job finished before a worker could be killed")
        os.kill(next(iter(pids.values())), signal.SIGKILL)
        _finish_job(proc, log, *cluster.log_paths())
    finally:
        if proc.poll() is None:
            _stop_group(proc)
    assert _records(job.output) == records


def _snapshot(paths: list[Path]) -> dict[str, tuple[int, str, int, str]]:
    """Tile id -> (mtime, hash) of its JSON and NPZ: any rewrite of a finished tile shows."""
    out = {}
    for j in paths:
        n = j.with_suffix(".npz")
        out[j.stem] = (
            j.stat().st_mtime_ns, hashlib.sha256(j.read_bytes()).hexdigest(),
            n.stat().st_mtime_ns, hashlib.sha256(n.read_bytes()).hexdigest(),
        )
    return out


def test_client_killed_mid_job_resumes_from_checkpoints(cluster: Cluster, job_files: JobFiles, reference) -> None:
    """The client SIGKILLed between tile checkpoints: the rerun reuses exactly the tiles
    finished before the kill, recomputes none of them, and gives the same records."""
    records, n_tiles = reference
    cluster.wait_for_workers(N_WORKERS)
    job_path, job = job_files("kill-client")
    log = job_path.with_suffix(".log")
    proc = _start_job(job_path, cluster.address, log)
    try:
        _first_tile_then(proc, job.output, log)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            _stop_group(proc)
    assert proc.returncode == -signal.SIGKILL
    assert not (job.output / "estimates.json").exists(), "the client was killed after the job had finished"
    done = _snapshot(_finished_tiles(job.output))
    assert 0 < len(done) < n_tiles, f"killed with {len(done)} of {n_tiles} tiles finished; expected some, not all"

    rerun_log = job_path.with_name("kill-client-rerun.log")
    _finish_job(_start_job(job_path, cluster.address, rerun_log), rerun_log, *cluster.log_paths())
    manifest = json.loads((job.output / "manifest.json").read_text())
    assert {t["id"] for t in manifest["tiles"] if t["reused"]} == set(done)
    assert len(manifest["tiles"]) == n_tiles
    after = _snapshot([p for p in _finished_tiles(job.output) if p.stem in done])
    assert after == done, "a tile finished before the kill was written again"
    assert _records(job.output) == records
