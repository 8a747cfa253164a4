"""Command line: ``python -m estimator {run,plan,sample,interpret,assess,compare,regions,demo}`` (also the ``estimator`` console script).

Each command's parser and the function that runs it; logging, one-line errors and the common
options come from :mod:`estimator.console`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from estimator.cli.regions import add_regions_parser
from estimator.console import add_command, add_set_option, guarded
from estimator.errors import EstimatorError, ReadFailureError
from estimator.report.text import print_estimates, print_summary
from estimator.stages.estimate import FAILED_READS_LIMIT

__all__ = ["build_parser", "main"]

EPILOG_RUN = """examples:
  python -m estimator run configs/jobs/vraem-2023.yaml
  python -m estimator run job.yaml --out runs/vraem --set stac.max_cloud_cover=60
  python -m estimator run job.yaml --scheduler tcp://10.0.0.5:8786
  python -m estimator run hard/job.yaml --set model=none --set "classes=[coca, forest, pasture]" --out cold/run

A job with `model: none` (a cold start, no labelled plot yet) writes label-free strata
(maps/strata.tif) instead of a class map, for `sample` to draw from; it needs `classes:`,
the legend to label (docs/cold_start.md).
"""
EPILOG_SAMPLE = """examples:
  python -m estimator sample runs/vraem --n 600 --out sample.geojson
  python -m estimator sample runs/vraem --target-se 0.01 --expected-ua coca=0.6 --out sample.geojson
  python -m estimator sample runs/vraem --n 800 --strata class --seed 7 --out sample.geojson
  python -m estimator sample runs/vraem --design target-area --n 1000 --out sample.geojson
  python -m estimator sample runs/vraem --design target-area --target-se-ha 20 --out sample.geojson
  python -m estimator sample runs/vraem --design target-area --n 2000 --prob-strata 6 --buffer-px 2 --out sample.geojson

Strata are region x map class by default (one error-adjusted estimate per region); where
regions overlap (a district inside a province), strata are map class x cell of the overlaps
and each region is estimated from its cells. '--strata class' uses map classes only
(estimates per region by Stehman's domain estimator).
'--design target-area' stratifies by the run's target (coca) probability instead: probability
bins plus a buffer next to mapped coca, in each region; the proportions each bin will hold
are anticipated from the probabilities recalibrated on the model card's out-of-fold figures
(mapped/true area and precision of the decision rule), and units go where they reduce the
anticipated SE of the coca area most. Bins under --min-per-stratum pixels are merged into a
neighbouring bin. Assessed with Stehman's estimator; see BENCHMARKS.md, sample design.
From a cold-start run (model: none) strata are region x label-free stratum, and the legend
to label is the job's `classes` (docs/cold_start.md).
Interpreters then fill interpreter_1, interpreter_2 (independently) and consensus.
"""
EPILOG_INTERPRET = """examples:
  python -m estimator interpret sample.geojson --run runs/vraem --interpreter ana
  python -m estimator interpret sample.geojson --run runs/vraem --interpreter luis --port 8766
  python -m estimator interpret sample.geojson --run runs/vraem --interpreter lead --review
  python -m estimator interpret sample.geojson --run runs/vraem --interpreter ana --show-map --port 0

Open the printed address (http://127.0.0.1:PORT/) in a browser on this machine. The first
two people to answer hold interpreter_1 and interpreter_2; each sees only their own answers
(and, in the default blind mode, neither the map's class nor its probability). Every answer
is written to SAMPLE.geojson at once; stop with Ctrl-C and start again to resume. Once both
have answered, "Review disagreements" sets the consensus. Then `estimator assess`.
"""
EPILOG_ASSESS = """examples:
  python -m estimator assess runs/vraem --reference sample-labeled.geojson

Replaces area_ha in estimates.json/.csv by the error-adjusted estimate with ci95_low_ha /
ci95_high_ha, writes assessment.json (each region's own accuracies, interpreter agreement)
and updates report.md. Default intervals: zero-cell adjusted variance for region x class
strata; for regions that are domains of class-only strata, a Jeffreys interval at the
effective sample size (docs/intervals.md). --no-zero-cell-adjustment: textbook Wald intervals.
"""
EPILOG_COMPARE = """examples:
  python -m estimator compare runs/loreto-2023
  python -m estimator compare runs/loreto-2021 runs/loreto-2023     # growth claims need two periods
  python -m estimator compare demo/run --claims demo/claims.yaml --out /tmp/cmp

Sets each claim of the registry (default configs/claims.yaml; format in docs/claims.md)
beside the estimate of its region and period: consistent, contradicted or inconclusive
(period mismatch, region only partly observed, no or too wide a CI), the ratio claim /
estimate, and for growth claims the growth implied by runs of two periods. Writes
comparison.json (and report files when available) into the first run directory or --out.
"""
EPILOG_PLAN = """examples:
  python -m estimator plan configs/jobs/vraem-2023.yaml
  python -m estimator plan configs/jobs/loreto-2023.yaml --save-items loreto-items.json
  python -m estimator plan configs/jobs/loreto-2023.yaml --items loreto-items.json --workers 8 --json
  python -m estimator plan configs/jobs/loreto-2023.yaml --items loreto-items.json --no-read-timing
  python -m estimator plan configs/jobs/vraem-2023.yaml --boundaries ../shared/data/real/boundaries

Searches (or reads --items) and prints what the job would read and cost. It reads one chunk
of a few dates of the job's own scenes to time reading (a few seconds; --no-read-timing skips
it, and a constant stands in, as it does when the read fails). The classification cost is
timed on the job's own model (about a second, on synthetic feature rows); before the model
exists the demo model's figure stands in. The forecast says which figures were timed.
Use --set model=DIR to forecast with another model.
"""
EPILOG_DEMO = """examples:
  python -m estimator demo                 # world, model and run in ./demo
  python -m estimator demo --out /tmp/demo --seed 7
  python -m estimator demo --size 512 --dates 12   # a smaller, faster world
  python -m estimator demo --preset hard --seed 1 --out /tmp/hard   # where coca is hard to see
  python -m estimator demo serve demo      # serve a finished demo's world again

The demo's servers stop when it exits; `demo serve DIR` serves DIR's world again (until
Ctrl-C) so that `python -m estimator run demo/job.yaml --out runs/again` works.

Everything the demo prints and writes is SYNTHETIC: it comes from a generated world.
"""

EPILOG_TOP = """examples:
  python -m estimator demo                                   # the SYNTHETIC demo, in ./demo
  python -m estimator demo serve demo                        # serve its world again (until Ctrl-C), then:
  python -m estimator run demo/job.yaml --out runs/again
  python -m estimator sample demo/run --n 1500 --out sample.geojson
  python -m estimator compare demo/run --claims demo/claims.yaml

`python -m estimator COMMAND --help` shows each command's options and examples.
"""
EPILOG_DEMO_SERVE = """examples:
  python -m estimator demo serve              # ./demo, then in another shell:
  python -m estimator run demo/job.yaml --out runs/again
  python -m estimator demo serve /tmp/demo
"""


def _cmd_run(args: argparse.Namespace) -> int:
    from estimator.config import load_job
    from estimator.location import as_output
    from estimator.run.pipeline import run

    job = load_job(args.job, overrides=args.set)
    if args.out is not None:
        job = job.model_copy(update={"output": as_output(args.out, Path.cwd())})
    result = run(job, scheduler=args.scheduler, progress=not args.quiet)
    print_summary(result.records, result.manifest, result.run_dir)
    if result.failed_read_fraction > FAILED_READS_LIMIT:
        raise ReadFailureError(
            f"{100 * result.failed_read_fraction:.1f} % of a region's image reads failed, so the figures are not a result "
            f"(limit {100 * FAILED_READS_LIMIT:.0f} %); check the imagery's address and network, then rerun: "
            "finished tiles are kept"
        )
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    import json as _json

    from estimator.config import load_job
    from estimator.regions.geometry import regions_bbox
    from estimator.regions.job import job_regions
    from estimator.report.plan_summary import format_summary, read_items, save_items, select_items, summarize
    from estimator.stages.costs import constant_read_cost, job_classify_cost
    from estimator.stages.load import measure_read
    from estimator.stages.plan import make_plan, warn_uncovered_regions
    from estimator.stages.search import search_items

    job = load_job(args.job, overrides=args.set)
    if args.boundaries is not None:
        job = job.model_copy(update={"regions": job.regions.model_copy(update={"boundaries": args.boundaries.resolve()})})
    regions = job_regions(job.regions)
    if args.items:
        items = select_items(read_items(args.items), regions, job.period, job.stac)
    else:
        items = list(search_items(job.stac, regions_bbox(regions), job.period, progress=not args.quiet).items)
    if args.save_items:
        save_items(args.save_items, items)
    warn_uncovered_regions(regions, [i.to_dict() for i in items])
    plan = make_plan(
        [i.to_dict() for i in items], regions,
        resolution=job.grid.resolution, crs=job.grid.crs, tile_size=job.grid.tile_size, chunk_size=job.grid.chunk_size,
            provider=job.stac.provider,
    )
    cost = job_classify_cost(job.model, cascade=job.classify.cascade)
    if args.no_read_timing:
        read_cost = constant_read_cost("--no-read-timing")
    else:
        try:
            read_cost = measure_read(plan, {i.id: i for i in items})
        except Exception as exc:  # any failure to read: forecast with the constant, and say why
            read_cost = constant_read_cost(f"timing a read failed ({type(exc).__name__}: {str(exc)[:120]})")
    summary = summarize(
        plan, regions, workers=args.workers, threads_per_worker=args.threads, classify_cost=cost, read_cost=read_cost
    )
    print(_json.dumps(summary, indent=2) if args.json else format_summary(summary, regions))
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from estimator.location import check_writable
    from estimator.stats.designs import sample
    from estimator.stats.target_design import DEFAULT_STRATA_PER_REGION

    check_writable(args.out, "--out")
    ua = {}
    for item in args.expected_ua:
        cls, _, val = item.partition("=")
        try:
            ua[cls] = float(val)
        except ValueError:
            raise EstimatorError(f"--expected-ua expects CLASS=ACCURACY, got '{item}'") from None
    drawn = sample(
        args.run_dir, design=args.design, n=args.n, target_se=args.target_se, target_se_ha=args.target_se_ha,
        expected_ua=ua, min_per_stratum=args.min_per_stratum, strata=args.strata, buffer_px=args.buffer_px,
        prob_strata=args.prob_strata if args.prob_strata is not None else DEFAULT_STRATA_PER_REGION,
        seed=args.seed, out=args.out, progress=not args.quiet,
    )
    sampling = drawn.attrs["sampling"]
    print(f"{len(drawn)} sample units in {len(sampling['strata'])} strata written to {args.out}")
    for rid, se in (sampling.get("anticipated_se_ha") or {}).items():
        print(f"  {rid}: anticipated SE of the {sampling['target_class']} area {se:.1f} ha")
    if sampling.get("excluded_trained"):
        print(f"{sampling['excluded_trained']} drawn unit(s) lay on pixels the run's model was trained on "
              "(assess refuses them); the next units drawn in their strata took their place")
    if sampling["synthetic"]:
        print("SYNTHETIC demo run: the sample points lie in a generated world")
    return 0


def _cmd_interpret(args: argparse.Namespace) -> int:
    import getpass

    from estimator.interpret.server import make_server, open_app

    name = args.interpreter or getpass.getuser()
    app = open_app(
        args.sample, args.run, interpreter=name, review=args.review, blind=not args.show_map,
        stac_url=args.stac_url, progress=not args.quiet,
    )
    server = make_server(app, args.port)
    port = server.server_address[1]
    role = "reviewer" if app.slot is None else app.slot
    print(f"interpreting {args.sample} as {name} ({role}); open http://127.0.0.1:{port}/ (Ctrl-C to stop)", flush=True)
    if app.synthetic:
        print("SYNTHETIC demo run: the images come from a generated world", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped; every answer given is in the sample file", flush=True)
    finally:
        server.server_close()
    return 0


def _cmd_assess(args: argparse.Namespace) -> int:
    from estimator.stats.assess import assess_reference

    run = assess_reference(args.run_dir, args.reference, z=args.z, adjust_zero_cells=not args.no_zero_cell_adjustment)
    print_estimates(run.records, args.target_class, synthetic=run.synthetic, all_classes=args.all_classes)
    ia = run.assessment.interpreters if run.assessment is not None else {}
    if ia.get("units_labeled_by_both"):
        print(f"interpreter agreement: {100 * ia['agreement_rate']:.1f} % of {ia['units_labeled_by_both']} units")
    print(f"updated {args.run_dir}/estimates.json, assessment.json and report.md")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from estimator.claims.compare import compare_claims, format_table
    from estimator.location import check_writable

    if args.out is not None:
        check_writable(args.out, "--out", directory=True)
    comparison = compare_claims(
        args.run_dirs, claims=args.claims, out=args.out,
        min_observed=args.min_observed, max_relative_half_width=args.max_relative_half_width,
    )
    print(format_table(comparison))
    print(f"wrote {', '.join(str(p) for p in comparison.files)}")
    return 0


def _cmd_demo_serve(args: argparse.Namespace) -> int:
    import threading

    from estimator.demo.runner import serve_demo

    out = args.dir.resolve()
    with serve_demo(out) as served:
        print(f"SYNTHETIC demo world of {out} served: STAC API {served.stac_url}, COGs {served.files_url}")
        print(f"try: python -m estimator run {args.dir / 'job.yaml'} --out runs/again")
        print("press Ctrl-C to stop", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopped")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from estimator.demo.runner import run_demo

    run_demo(
        args.out.resolve(), seed=args.seed, size_px=args.size, n_dates=args.dates, preset=args.preset, progress=not args.quiet
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="estimator",
        description="Estimate coca cultivation from Sentinel-2 L2A imagery, with coverage, per region.",
        epilog=EPILOG_TOP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = add_command(
        sub, "run", _cmd_run, help="run an estimation job", epilog=EPILOG_RUN,
        description="Search, load, classify and aggregate; write estimates, maps, manifest and report.",
    )
    p.add_argument("job", type=Path, help="job YAML file")
    p.add_argument("--out", help="run directory or fsspec URL, e.g. s3://bucket/run (overrides the job's `output`)")
    p.add_argument("--scheduler", help="dask.distributed scheduler address (default: local threads)")
    add_set_option(p)

    pl = add_command(
        sub, "plan", _cmd_plan, help="dry run: what a job would read and cost", epilog=EPILOG_PLAN,
        description="Search and plan a job without running it: scenes per tile and date, grid, chunks, "
        "bytes to read, memory per worker and a time forecast (wall time and core-hours), from a read "
        "of one chunk and the job's model, both timed.",
    )
    pl.add_argument("job", type=Path, help="job YAML file")
    pl.add_argument("--items", type=Path, help="use a saved item list instead of searching (any provider's items)")
    pl.add_argument(
        "--boundaries", type=Path, metavar="DIR",
        help="directory of the INEI boundary files for named regions (overrides regions.boundaries)",
    )
    pl.add_argument("--save-items", type=Path, help="write the items found, for --items later")
    pl.add_argument("--workers", type=int, default=1, help="workers for the forecast (default 1)")
    pl.add_argument("--threads", type=int, default=2, help="threads per worker for the forecast (default 2)")
    pl.add_argument(
        "--no-read-timing", action="store_true",
        help="do not read one chunk of the job's scenes to time reading (offline; the forecast uses a constant)",
    )
    pl.add_argument("--json", action="store_true", help="print JSON")
    add_set_option(pl)

    s = add_command(
        sub, "sample", _cmd_sample, help="draw a stratified reference sample from a run's class map",
        epilog=EPILOG_SAMPLE, description="Stratified random sample of pixel centres (Olofsson et al. 2014 allocation) for reference labeling.",
    )
    s.add_argument("run_dir", type=Path, help="run directory written by `estimator run`")
    s.add_argument("--out", type=Path, required=True, help="GeoJSON file to write")
    s.add_argument("--n", type=int, help="total sample size (default: from --target-se)")
    s.add_argument("--target-se", type=float, default=0.01, help="target standard error of overall accuracy (default 0.01)")
    s.add_argument("--expected-ua", action="append", default=[], metavar="CLASS=UA", help="conjectured user's accuracy (default coca=0.7, others 0.9)")
    s.add_argument("--min-per-stratum", type=int, help="minimum units per stratum (default 50; 10 with --design target-area)")
    s.add_argument("--strata", choices=["region-class", "class"], default="region-class", help="stratification (default region-class)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument(
        "--design", choices=["class", "target-area"], default="class",
        help="class: strata from the class map (see --strata); target-area: strata from the target probability map "
        "(bins + a buffer next to mapped target pixels, per region), Neyman allocation for the target's area (default class)",
    )
    s.add_argument("--target-se-ha", type=float, help="with --design target-area: sample size that anticipates this SE (ha) of the target area in every region")
    s.add_argument("--buffer-px", type=int, default=1, help="with --design target-area: buffer width in pixels (default 1)")
    s.add_argument(
        "--prob-strata", type=int,
        help="with --design target-area: probability bins per region before bins smaller than --min-per-stratum are merged "
        "(default 4)",
    )

    it = add_command(
        sub, "interpret", _cmd_interpret, help="label a reference sample in a local web page (photo-interpretation)",
        epilog=EPILOG_INTERPRET,
        description="Serve a page on 127.0.0.1 showing each sample unit's image chips (true colour and colour "
        "infrared, one per clear date) and NDVI/NBR series from the run's own scenes; answers are saved to "
        "the sample file as they are given.",
    )
    it.add_argument("sample", type=Path, help="sample GeoJSON written by `estimator sample` (updated in place)")
    it.add_argument("--run", type=Path, required=True, help="run directory the sample was drawn from")
    it.add_argument("--interpreter", help="your name, recorded with every answer (default: the login name)")
    it.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765; 0: any free port)")
    it.add_argument("--review", action="store_true", help="only review disagreements and set the consensus (claims no slot)")
    it.add_argument("--show-map", action="store_true", help="show the map's class and probability (default: blind)")
    it.add_argument("--stac-url", help="read the run's scenes from this STAC API instead of the run's (a mirror, or a re-served demo world)")

    a = add_command(
        sub, "assess", _cmd_assess, help="error-adjusted areas and accuracy from a labeled reference sample",
        epilog=EPILOG_ASSESS, description="Design-based area estimates with 95 % confidence intervals (Olofsson 2014 / Stehman 2014).",
    )
    a.add_argument("run_dir", type=Path, help="run directory the sample was drawn from")
    a.add_argument("--reference", type=Path, required=True, help="labeled sample GeoJSON")
    a.add_argument("--z", type=float, default=1.96, help="normal quantile of the intervals (default 1.96: 95 %%)")
    a.add_argument(
        "--no-zero-cell-adjustment", action="store_true",
        help="textbook variances and Wald intervals: a stratum whose sample shows no error adds zero variance "
        "(default: zero-cell adjustment; Jeffreys effective-n intervals for class-only strata)",
    )
    a.add_argument("--target-class", default="coca", help="class to print (default coca)")
    a.add_argument("--all-classes", action="store_true", help="print every class")

    c = add_command(
        sub, "compare", _cmd_compare, help="set reported claims beside a run's estimates", epilog=EPILOG_COMPARE,
        description="Verdict per claim (consistent / contradicted / inconclusive with the reason) from the "
        "estimates' 95 % confidence intervals.",
    )
    c.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories (several: several periods)")
    c.add_argument("--claims", type=Path, help="claims registry (default configs/claims.yaml)")
    c.add_argument("--out", type=Path, help="directory for comparison.json (default: the first RUN_DIR)")
    c.add_argument(
        "--min-observed", type=float, default=0.9,
        help="observed fraction below which a whole-region claim is inconclusive (default 0.9)",
    )
    c.add_argument(
        "--max-relative-half-width", type=float, default=1.0,
        help="CI half-width / estimate above which agreement is inconclusive (default 1.0)",
    )

    add_regions_parser(sub)

    d = add_command(
        sub, "demo", _cmd_demo, help="generate, serve and estimate the synthetic demo world", epilog=EPILOG_DEMO,
        description="Generate (once, cached) a synthetic Sentinel-2 world, serve it through a real STAC API "
        "and a Range-capable HTTP server on 127.0.0.1, train the demo model, run the job and print "
        "estimates beside the known truth.",
    )
    d.add_argument("--out", type=Path, default=Path("demo"), help="directory for world, model, job and run (default ./demo)")
    d.add_argument("--seed", type=int, default=42, help="world seed (default 42)")
    d.add_argument("--size", type=int, help="world size in 10 m pixels (default 1024)")
    d.add_argument("--dates", type=int, help="number of acquisition dates (default: easy 18, hard 30)")
    d.add_argument(
        "--preset", choices=["easy", "hard"], default="easy",
        help="easy: the fast, nearly error-free world (default); hard: small plots, dynamic confusers, "
        "mixed pixels, a sky the SCL gets partly wrong, shifted and noisy labels (docs/hard_world.md)",
    )
    dsub = d.add_subparsers(dest="demo_action", metavar="ACTION")
    ds = add_command(
        dsub, "serve", _cmd_demo_serve, help="serve a finished demo's world again (until Ctrl-C)",
        epilog=EPILOG_DEMO_SERVE,
        description="Serve the world of a finished demo through its STAC API and COG server on 127.0.0.1, "
        "on the port its job.yaml names when free, so that job.yaml and train.yaml work as written.",
    )
    ds.add_argument("dir", nargs="?", type=Path, default=Path("demo"), help="directory of a finished demo (default ./demo)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return guarded(args.fn, args)
