"""Command line: ``python -m estimator {run,demo}`` (also the ``estimator`` console script).

Only this module configures logging. Errors raised on purpose (:class:`EstimatorError`)
and invalid input print one actionable line and exit with status 2; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import EstimatorError

__all__ = ["add_common_options", "guarded", "main", "print_summary", "setup_logging"]

EPILOG_RUN = """examples:
  python -m estimator run configs/jobs/vraem-2023.yaml
  python -m estimator run job.yaml --out runs/vraem --set stac.max_cloud_cover=60
  python -m estimator run job.yaml --scheduler tcp://10.0.0.5:8786
"""
EPILOG_DEMO = """examples:
  python -m estimator demo                 # world, model and run in ./demo
  python -m estimator demo --out /tmp/demo --seed 7
  python -m estimator demo --size 512 --dates 12   # a smaller, faster world

Everything the demo prints and writes is SYNTHETIC: it comes from a generated world.
"""


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # odc-stac logs every ignored read failure; we count and report them ourselves.
    logging.getLogger("odc").setLevel(logging.ERROR)
    # odc-loader reprojects in-memory arrays through rasterio, which warns they have no
    # geotransform; the warning is about odc's scratch arrays, not the user's data.
    from rasterio.errors import NotGeoreferencedWarning

    warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def guarded(fn: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; turn expected errors into one line on stderr and exit status 2."""
    setup_logging(getattr(args, "verbose", False))
    if not args.debug:
        warnings.showwarning = _warning_line
    try:
        return fn(args)
    except KeyboardInterrupt:
        print("interrupted; finished tiles are kept and a rerun resumes from them", file=sys.stderr)
        return 130
    except EstimatorError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


def add_common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--verbose", action="store_true", help="log progress details")


def _cmd_run(args: argparse.Namespace) -> int:
    from .config import load_job
    from .pipeline import run

    job = load_job(args.job, overrides=args.set)
    if args.out is not None:
        job = job.model_copy(update={"output": args.out.resolve()})
    result = run(job, scheduler=args.scheduler, progress=not args.quiet)
    print_summary(result.records, result.manifest, result.run_dir)
    return 0


def print_summary(records, manifest, run_dir: Path, truth=None) -> None:
    """Print the target class per region (and the truth when known)."""
    target = manifest["model"]["target_class"]
    if manifest.get("synthetic"):
        print("SYNTHETIC DEMO DATA - these figures come from a generated world, not real imagery")
    head = f"{'region':<14}{'observed':>10}{'mapped ' + target + ' ha':>18}"
    if truth is not None:
        head += f"{'true ha':>12}{'diff':>9}"
    print(head)
    for r in records:
        if r["class"] != target:
            continue
        obs = "n/a" if r["observed_fraction"] is None else f"{100 * r['observed_fraction']:.1f}%"
        line = f"{r['region']:<14}{obs:>10}{r['area_ha']:>18,.1f}"
        if truth is not None:
            t = truth.get(r["region"], {}).get(target)
            diff = "" if not t else f"{100 * (r['area_ha'] - t) / t:+.1f}%"
            line += f"{t if t is not None else float('nan'):>12,.1f}{diff:>9}"
        print(line)
    failed = [t for t in manifest["tiles"] if t["status"] == "failed"]
    if failed:
        print(f"{len(failed)} tile(s) could not be read; their pixels count as failed reads (see manifest.json)")
    print(f"run directory: {run_dir}")


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo.runner import run_demo

    run_demo(args.out.resolve(), seed=args.seed, size_px=args.size, n_dates=args.dates, progress=not args.quiet)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="estimator",
        description="Estimate coca cultivation from Sentinel-2 L2A imagery, with coverage, per region.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "run", help="run an estimation job", epilog=EPILOG_RUN, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Search, load, classify and aggregate; write estimates, maps, manifest and report.",
    )
    p.add_argument("job", type=Path, help="job YAML file")
    p.add_argument("--out", type=Path, help="run directory (overrides the job's `output`)")
    p.add_argument("--scheduler", help="dask.distributed scheduler address (default: local threads)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a job key, e.g. grid.tile_size=1024")
    add_common_options(p)
    p.set_defaults(fn=_cmd_run)

    d = sub.add_parser(
        "demo", help="generate, serve and estimate the synthetic demo world", epilog=EPILOG_DEMO,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Generate (once, cached) a synthetic Sentinel-2 world, serve it through a real STAC API "
        "and a Range-capable HTTP server on 127.0.0.1, train the demo model, run the job and print "
        "estimates beside the known truth.",
    )
    d.add_argument("--out", type=Path, default=Path("demo"), help="directory for world, model, job and run (default ./demo)")
    d.add_argument("--seed", type=int, default=42, help="world seed (default 42)")
    d.add_argument("--size", type=int, default=1024, help="world size in 10 m pixels (default 1024)")
    d.add_argument("--dates", type=int, default=18, help="number of acquisition dates (default 18)")
    add_common_options(d)
    d.set_defaults(fn=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return guarded(args.fn, args)
