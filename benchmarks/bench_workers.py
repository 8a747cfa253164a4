"""1 vs 2 dask workers on the same job, side by side in one run.

Run:  python benchmarks/bench_workers.py --demo demo [--repeat 3]

Needs a finished demo (``python -m estimator demo --out DIR``): serves its world again,
then runs its job (fresh run directories, nothing reused) on the local threaded scheduler,
on a LocalCluster of 1 worker x 1 thread and of 2 workers x 1 thread, and prints median
wall times and the speed-up. Worker processes, not threads, so the comparison is the one a
cluster sees.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from distributed import LocalCluster

from estimator.config import load_job
from estimator.run.pipeline import run
from estimator.testing.servers import serve_world


def _timed(job_path: Path, out: Path, scheduler: str | None) -> float:
    job = load_job(job_path).model_copy(update={"output": out})
    t0 = time.perf_counter()
    run(job, scheduler=scheduler, progress=False)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", type=Path, default=Path("demo"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    demo = args.demo.resolve()
    with tempfile.TemporaryDirectory() as tmp, serve_world(demo / "world", Path(tmp) / "serve") as served:
        job = yaml.safe_load((demo / "job.yaml").read_text())
        job["stac"]["url"] = served.stac_url
        job_path = Path(tmp) / "job.yaml"
        job_path.write_text(yaml.safe_dump(job))
        times: dict[str, list[float]] = {"threads (local)": [], "1 worker": [], "2 workers": []}
        with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as one, LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=":0"
        ) as two:
            for i in range(args.repeat):
                times["threads (local)"].append(_timed(job_path, Path(tmp) / f"t{i}", None))
                times["1 worker"].append(_timed(job_path, Path(tmp) / f"a{i}", one.scheduler_address))
                times["2 workers"].append(_timed(job_path, Path(tmp) / f"b{i}", two.scheduler_address))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"SYNTHETIC demo job ({demo}); median of {args.repeat} runs, same machine, same run")
    for k, v in med.items():
        print(f"{k:<16} {v:6.1f} s   (runs: {', '.join(f'{x:.1f}' for x in times[k])})")
    print(f"speed-up 2 workers vs 1: {med['1 worker'] / med['2 workers']:.2f}x")


if __name__ == "__main__":
    main()
