"""The comparison report: estimates with their 95 % intervals beside every claim.

``estimator compare`` writes ``comparison.json`` and calls :func:`write_comparison_reports`,
which writes, in the same directory:

- ``report.html``: one self-contained page (inline CSS, charts and maps as ``data:`` PNGs,
  no script, nothing loaded from anywhere; a Content-Security-Policy enforces it), so it
  opens offline and can be mailed as one file;
- ``report_comparison.md``: the same text and tables in Markdown, its charts as PNG files
  beside it (``report_*.png``). It does not replace a run's own ``report.md``.

Sections: a headline per region and period (:mod:`estimator.claims.headlines`), the claims chart
(one panel per region over time, :func:`estimator.report.figures.claims_figure`), verdict tables
by region and verdict, claims not compared (counted, listed folded), coca probability maps
with region outlines, observed-fraction and accuracy tables, and provenance per run.
Synthetic data is labeled on the page, on every run and inside every chart.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from estimator.claims.headlines import ha, headlines, pct, unmatched_blocks, verdict_tables
from estimator.errors import EstimatorError
from estimator.location import atomic_path, write_text
from estimator.regions.geometry import to_crs
from estimator.report.claim_groups import period_label
from estimator.report.document import (
    Banner,
    Block,
    Bullets,
    Details,
    Figure,
    Heading,
    Paragraph,
    Table,
    render_html,
    render_md,
)
from estimator.report.figures import claims_chart, probability_map
from estimator.report.run_report import render_report_md
from estimator.report.strata_report import render_strata_report_md
from estimator.run.rundir import RunDir, is_strata_manifest, open_run
from estimator.synthetic import SYNTHETIC_BANNER

__all__ = ["HTML_NAME", "MD_NAME", "write_comparison_reports"]

log = logging.getLogger(__name__)

HTML_NAME = "report.html"
MD_NAME = "report_comparison.md"
_BANNER = f"{SYNTHETIC_BANNER}: generated demo imagery, regions and claims."


@dataclass(frozen=True)
class _Run:
    """One compared run, opened when its directory is still there."""

    info: Mapping[str, Any]
    run: RunDir | None
    problem: str
    assessment: Mapping[str, Any] | None
    records: Sequence[Mapping[str, Any]]


def write_comparison_reports(comparison: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Write ``report.html``, ``report_comparison.md`` and its chart PNGs into ``out_dir``.

    Parameters
    ----------
    comparison
        The content of ``comparison.json`` (see ``estimator compare``). Run directories it
        names are read for maps, accuracy and provenance; a missing one is reported on the
        page instead of failing.
    out_dir
        Directory to write into (created if needed). Every file is written atomically.

    Returns
    -------
    list of Path
        ``report.html``, ``report_comparison.md``, then the PNG files, in that order.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = [_open(r) for r in comparison["runs"]]
    blocks = _document(comparison, runs)
    title = f"{comparison.get('target_class', 'coca').capitalize()} estimates and claims"
    figures = [b for b in blocks if isinstance(b, Figure)]
    pngs = {f.name: out_dir / f"report_{f.name}.png" for f in figures}
    for f in figures:
        with atomic_path(pngs[f.name]) as tmp:
            tmp.write_bytes(f.png)
    write_text(out_dir / HTML_NAME, render_html(title, blocks))
    write_text(out_dir / MD_NAME, render_md(blocks, {k: p.name for k, p in pngs.items()}))
    return [out_dir / HTML_NAME, out_dir / MD_NAME, *pngs.values()]


def _open(info: Mapping[str, Any]) -> _Run:
    try:
        run = open_run(info["run_dir"])
    except EstimatorError as e:
        log.warning("run %s not readable for the report: %s", info["run_dir"], e)
        return _Run(info, None, str(e), None, [])
    return _Run(info, run, "", run.assessment(), run.estimates().get("records", []))


# -- the document -------------------------------------------------------------------------


def _document(comparison: Mapping[str, Any], runs: Sequence[_Run]) -> list[Block]:
    synthetic = bool(comparison.get("synthetic")) or any(r.info.get("synthetic") for r in runs)
    target = comparison.get("target_class", "coca")
    estimates, claims = comparison.get("estimates", []), comparison.get("claims", [])
    banner: list[Block] = [Banner(_BANNER)] if synthetic else []
    periods = list(dict.fromkeys(period_label(r.info["period_start"], r.info["period_end"]) if r.info.get("period_start")
                                 else r.info["period"] for r in sorted(runs, key=lambda r: r.info["period"])))
    area = [c for c in claims if c["kind"] != "growth_rate" and c.get("value_ha") is not None]
    blocks: list[Block] = [
        *banner,
        Heading(1, f"{target.capitalize()} estimates and claims"),
        Paragraph(
            f"Created {comparison.get('created', '?')}; {len(runs)} run(s) covering {', '.join(periods)}; "
            f"{len(claims)} claim(s) compared, {len(comparison.get('unmatched', []))} not matched.", "note"),
        Heading(2, "In short", "summary"),
        *headlines(comparison, target),
        Heading(2, "Claims beside the estimates", "claims"),
    ]
    if area or estimates:
        blocks.append(Figure(
            "claims", "One panel per region: the estimate of each run over its period inside its 95 % CI band; each claim "
            "at the date it speaks of, coloured by verdict (hollow: about a period no run covers), figures of one source "
            "joined as a series. Numbers point to the key beside each panel and to # in the verdict tables. "
            "Growth claims are in the tables only.",
            claims_chart(estimates, claims, synthetic=synthetic)))
    blocks += [Heading(2, "Verdicts by region", "verdicts"),
               *(verdict_tables(comparison) or [Paragraph("No claim matched these runs.", "note")])]
    if comparison.get("unmatched"):
        blocks += [Heading(2, "Claims not compared", "unmatched"), *unmatched_blocks(comparison["unmatched"])]
    blocks += [Heading(2, f"{target.capitalize()} probability maps", "maps"), *_maps(runs, target)]
    blocks += [Heading(2, "How much of each region was seen", "coverage"), _coverage_table(estimates),
               Paragraph("Estimates describe the observed part of each region: pixels with at least one clear "
                         "observation in the period. Unobserved ground is not counted as absence.", "note")]
    blocks += [Heading(2, "Accuracy", "accuracy"), *_accuracy(estimates, runs, target)]
    blocks += [Heading(2, "Provenance", "provenance"), *(b for i, r in enumerate(runs) for b in _provenance(i, r, target))]
    return [*blocks, *banner]


def _maps(runs: Sequence[_Run], target: str) -> list[Block]:
    out: list[Block] = []
    missing = []
    for i, r in enumerate(runs):
        cog = r.run.path / "maps" / f"{target}_probability.tif" if r.run else None
        if r.run is None or cog is None or not cog.is_file():
            missing.append(f"run {i} ({r.info['period']}): {r.problem or 'map missing'}")
            continue
        outlines = [(g.id, to_crs(g.geometry, str(r.run.grid.crs))) for g in r.run.regions]
        png = probability_map(cog, outlines, title=f"{target} probability, {r.info['period']}", synthetic=r.run.synthetic)
        out.append(Figure(f"map_run{i}", f"Run {i}, {r.info['period']}: probability of {target} per pixel "
                          "(grey: not classified) with region outlines.", png))
    if missing:
        out += [Paragraph(f"No probability map to show for {len(missing)} run(s):", "note"), Bullets(missing)]
    return out


def _coverage_table(estimates: Sequence[Mapping[str, Any]]) -> Table:
    head = ("period", "region", "region area (ha)", "observed", "failed reads", "estimate (ha)", "95 % CI (ha)", "estimator")
    rows = [
        (e["period"], e.get("region_name") or e["region"], ha(e["region_area_ha"]), pct(e.get("observed_fraction")),
         pct(e.get("failed_read_fraction")), ha(e["area_ha"]),
         f"{ha(e['ci95_low_ha'])} - {ha(e['ci95_high_ha'])}" if e.get("ci95_low_ha") is not None else "none (mapped area)",
         e["estimator"])
        for e in estimates
    ]
    return Table(head, rows, frozenset({2, 3, 4, 5}), css="coverage")


def _accuracy(estimates: Sequence[Mapping[str, Any]], runs: Sequence[_Run], target: str) -> list[Block]:
    def acc(v: float | None, ci: float | None, assessed: bool = False, units: int | None = None) -> str:
        if v is None:
            return "not estimable" + ("" if units is None else f" ({units} units)") if assessed else "n/a"
        return f"{v:.3f}" + ("" if ci is None else f" ± {ci:.3f}")

    rows = []
    for e in estimates:
        a = runs[e["run"]].assessment or {}
        reg = a.get("regions", {}).get(e["region"], {})
        pc = reg.get("per_class", {}).get(target, {})
        n = e.get("sample_n", reg.get("n"))
        rows.append((e["period"], e.get("region_name") or e["region"], e["estimator"], "none" if n is None else str(n),
                     acc(e.get("users_accuracy"), pc.get("users_ci95"), bool(reg), pc.get("units_mapped")),
                     acc(e.get("producers_accuracy"), pc.get("producers_ci95"), bool(reg), pc.get("units_reference")),
                     acc(reg.get("overall_accuracy"), reg.get("overall_ci95"), bool(reg))))
    out: list[Block] = [Table(("period", "region", "estimator", "sample n", f"{target} user's accuracy",
                               f"{target} producer's accuracy", "overall accuracy"), rows, frozenset({3}), css="accuracy"),
                        Paragraph("Accuracies are each region's own, from the sample units inside it; where a region has no unit "
                                  f"mapped as {target} (user's) or {target} by reference (producer's) they are not estimable.", "note")]
    missing = [f"run {i} ({r.info['period']})" for i, r in enumerate(runs) if r.assessment is None]
    if missing:
        out.append(Paragraph(f"No labeled reference sample for {', '.join(missing)}: areas there are mapped areas without "
                             "a confidence interval (`estimator sample`, then `estimator assess`).", "note"))
    return out


def _provenance(i: int, r: _Run, target: str) -> list[Block]:
    head: list[Block] = [Heading(3, f"Run {i}: {r.info['period']}")]
    if r.info.get("synthetic"):
        head.append(Banner(f"Run {i}: {_BANNER}"))
    if r.run is None:
        return [*head, Paragraph(f"{r.info['run_dir']}: {r.problem}", "note")]
    m = r.run.manifest
    model, cascade = m["model"], m["model"].get("cascade") or {}
    stac = m.get("stac", {})
    items = m.get("items", [])
    facts = [
        f"Run directory: {r.run.path}",
        f"Created {m.get('created', '?')}; config hash {m.get('config_hash', '?')}",
        f"Model {model['id']} ({model.get('estimator', '?')}), sha256 {model.get('sha256', '?')}; "
        f"training data sha256 {model.get('training_data_sha256', '?')}",
        "Cascade: " + (f"used, threshold {cascade['threshold']:.4g}, cross-validated recall {cascade.get('recall_cv', 0):.4f}"
                       if cascade.get("used") else f"not used ({cascade.get('reason') or 'none in the model'})"),
        f"STAC {stac.get('url', '?')} collection {stac.get('collection', '?')}: {len(items)} scene(s), processing baselines "
        f"{', '.join(sorted({str(it.get('processing_baseline')) for it in items}))}",
        f"Grid {m['grid']['crs']}, {m['grid']['resolution']} m, {m['grid']['shape'][0]} x {m['grid']['shape'][1]} px",
    ]
    versions = Table(("package", "version"), sorted(m.get("versions", {}).items()))
    return [
        *head,
        Bullets(facts),
        Details(f"Scene ids ({len(items)})", "\n".join(f"{it['id']}  {it.get('datetime', '')}" for it in items)),
        Details("Job config", yaml.safe_dump(m.get("config", {}), sort_keys=False)),
        Details("Package versions", table=versions),
        Details("The run's own report", _own_report(r, m, target)),
    ]


def _own_report(r: _Run, m: dict[str, Any], target: str) -> str:
    if is_strata_manifest(m) and r.run is not None:
        # A cold start (model: none): its report of strata and assessed class areas.
        strata = r.run.estimates().get("strata") or []
        return render_strata_report_md(strata, m, records=r.records, assessment=r.assessment)
    return render_report_md(r.records, m, target_class=target, assessment=r.assessment)
