"""A run's own report (``report.md``): what was estimated, from what, and how much was seen.

Built from the same document model as the comparison report (:mod:`estimator.report.document`),
so Markdown and HTML renderings cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from estimator.report.document import Banner, Block, Bullets, Heading, Paragraph, Table, render_md
from estimator.stages.estimate import FAILED_READS_LIMIT, failed_read_fraction, map_outside_interval
from estimator.synthetic import SYNTHETIC_BANNER

__all__ = ["render_report_md", "run_report_blocks"]


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def render_report_md(
    records: Sequence[Mapping[str, Any]],
    manifest: Mapping[str, Any],
    *,
    target_class: str,
    truth: Mapping[str, Mapping[str, float]] | None = None,
    assessment: Mapping[str, Any] | None = None,
) -> str:
    """Render ``report.md`` from estimate records, the manifest and (after ``assess``) the
    accuracy assessment."""
    return render_md(run_report_blocks(records, manifest, target_class=target_class, truth=truth, assessment=assessment), {})


def run_report_blocks(
    records: Sequence[Mapping[str, Any]],
    manifest: Mapping[str, Any],
    *,
    target_class: str,
    truth: Mapping[str, Mapping[str, float]] | None = None,
    assessment: Mapping[str, Any] | None = None,
) -> list[Block]:
    """The run report as document blocks (render with ``render_md`` or ``render_html``)."""
    synthetic = bool(manifest.get("synthetic"))
    failed = failed_read_fraction(records)
    blocks: list[Block] = []
    if synthetic:
        blocks.append(Banner(f"{SYNTHETIC_BANNER}. Imagery, plots and regions come from the generated demo world."))
    if failed > FAILED_READS_LIMIT:
        blocks.append(Banner(
            f"Not a result: {_pct(failed)} of a region's image reads failed. The figures below count only the "
            "pixels that could be read; rerun when the imagery is reachable (finished tiles are kept)."
        ))
    tiles = manifest["tiles"]
    blocks += [
        Heading(1, f"{target_class.capitalize()} estimate, {manifest['period']}"),
        Bullets([
            f"STAC: {manifest['stac']['url']} collection `{manifest['stac']['collection']}`; "
            f"{len(manifest['items'])} scenes used ({manifest['stac']['n_too_cloudy']} dropped as too cloudy, "
            f"cloud filter applied on the {manifest['stac']['filter_mode']} side).",
            f"Grid: {manifest['grid']['crs']}, {manifest['grid']['resolution']} m, "
            f"{manifest['grid']['shape'][0]} x {manifest['grid']['shape'][1]} px in {len(tiles)} tile(s) "
            f"({sum(t['status'] == 'failed' or bool(t.get('failed_items')) for t in tiles)} with failed reads; "
            f"{_pct(failed)} of a region's reads failed at most).",
            f"Model `{manifest['model']['id']}` ({manifest['model']['estimator']}), classes: {', '.join(manifest['model']['classes'])}.",
        ]),
        Heading(2, f"{target_class.capitalize()} per region"),
        *[Paragraph(f"{r['id']}: {r['note']}", css="note") for r in manifest.get("regions", []) if r.get("note")],
    ]
    head = ["region", "region area (ha)", "observed", "failed reads", "mapped (ha)", "estimate (ha)", "95 % CI (ha)", "estimator"]
    if truth:
        head.append("true (ha)")
    rows = []
    for r in records:
        if r["class"] != target_class:
            continue
        ci = (
            f"{r['ci95_low_ha']:,.1f} - {r['ci95_high_ha']:,.1f}"
            if r.get("ci95_low_ha") is not None
            else "none: needs a labeled reference sample"
        )
        row = [
            r["region"], f"{r['region_area_ha']:,.1f}", _pct(r["observed_fraction"]), _pct(r["failed_read_fraction"]),
            f"{r['mapped_area_ha']:,.1f}", f"{r['area_ha']:,.1f}", ci, r["estimator"],
        ]
        if truth:
            t = truth.get(r["region"], {}).get(target_class)
            row.append("n/a" if t is None else f"{t:,.1f}")
        rows.append(tuple(row))
    blocks += [
        Table(tuple(head), rows, numeric=frozenset({1, 2, 3, 4, 5, *([8] if truth else [])})),
        Paragraph(
            "Areas are true ground areas (per-pixel geodesic area, not nominal pixel size) of the "
            "observed part of each region: pixels with at least one clear Sentinel-2 observation in "
            "the period. Unobserved pixels are not counted as absent; `observed` says how much of the "
            "region the estimate covers. A mapped area is a pixel count of the classifier's output and "
            "carries its errors; a design-based estimate with a confidence interval needs a labeled "
            "reference sample (`estimator sample`, then `estimator assess`)."
        ),
        *(
            [Paragraph("The map lies outside the design-based interval in " + "; ".join(biased) + ".", css="note")]
            if (biased := map_outside_interval(records, target_class)) else []
        ),
        *_plots_blocks(manifest.get("plots"), target_class),
        *_coverage_blocks(records, target_class),
        *_assessment_blocks(assessment, target_class),
        Heading(2, "All classes (estimated ha)"),
    ]
    classes = list(dict.fromkeys(r["class"] for r in records))
    regions = list(dict.fromkeys(r["region"] for r in records))
    by = {(r["region"], r["class"]): r["area_ha"] for r in records}
    blocks += [
        Table(
            ("region", *classes),
            [(reg, *(f"{by[(reg, c)]:,.1f}" for c in classes)) for reg in regions],
            numeric=frozenset(range(1, len(classes) + 1)),
        ),
        Heading(2, "Provenance"),
        Bullets([
            f"Config hash `{manifest['config_hash'][:16]}`, model sha256 `{manifest['model']['sha256'][:16]}`.",
            f"Processing baselines: {', '.join(sorted({str(i['processing_baseline']) for i in manifest['items']}))}.",
            f"Created {manifest['created']} by estimator {manifest['versions'].get('coca-estimator', '?')}.",
        ]),
    ]
    if synthetic:
        blocks.append(Banner(f"{SYNTHETIC_BANNER}."))
    return blocks


def _plots_blocks(plots: Mapping[str, Any] | None, target_class: str) -> list[Block]:
    if not plots:
        return []
    return [
        Paragraph(
            f"Plots (`plots.geoparquet`, `plots.geojson`): {plots['n_plots']:,} connected {target_class} patches, "
            f"{plots['area_ha']:,.2f} ha. {plots['n_below_mmu']:,} patches under the minimum mapping unit of "
            f"{plots['min_patch_ha']:g} ha, {plots['below_mmu_area_ha']:,.2f} ha, are flagged (`below_mmu`) and not "
            f"counted in the map's {target_class} area."
        )
    ]


def _coverage_blocks(records: Sequence[Mapping[str, Any]], target_class: str) -> list[Block]:
    rows = [r for r in records if r["class"] == target_class]
    policy = rows[0].get("coverage_policy", "withheld") if rows else "withheld"
    blocks: list[Block] = [Heading(2, "Unobserved part of each region")]
    if policy == "withheld":
        return [
            *blocks,
            Paragraph(
                "Policy: **withheld**. Pixels never observed clear (persistent cloud, or failed reads) are "
                "not counted as absence and no figure is given for them; the estimates above cover the "
                "observed part only."
            ),
        ]
    table = []
    for r in rows:
        ci = (
            f"{r['extrapolated_ci95_low_ha']:,.1f} - {r['extrapolated_ci95_high_ha']:,.1f}"
            if r.get("extrapolated_ci95_low_ha") is not None
            else "none"
        )
        tot = r.get("extrapolated_area_ha")
        table.append((r["region"], _pct(r["observed_fraction"]), "n/a" if tot is None else f"{tot:,.1f}", ci))
    return [
        *blocks,
        Paragraph(
            "Policy: **extrapolated**. The observed part's density is transferred to the unobserved "
            "part, with an interval widened for that assumption (see `estimate.apply_coverage`)."
        ),
        Table(("region", "observed", "whole-region estimate (ha)", "95 % CI (ha)"), table, numeric=frozenset({1, 2})),
    ]


def _assessment_blocks(assessment: Mapping[str, Any] | None, target_class: str) -> list[Block]:
    if not assessment:
        return []
    blocks: list[Block] = [
        Heading(2, "Accuracy (reference sample)"),
        Paragraph(
            f"Design: {assessment['design']}; {assessment['n_units']} labeled units; estimator "
            f"`{assessment['estimator']}`; intervals at z = {assessment['z']}."
        ),
    ]
    if assessment.get("interval"):
        blocks.append(Paragraph(f"Area intervals: {assessment['interval']}."))
    blocks.append(
        Paragraph(
            "Each region's accuracies come from that region's own sample units. A user's accuracy needs units the "
            f"map calls {target_class} inside the region, a producer's accuracy units that are {target_class} by reference; "
            "where the region has none, the figure is not estimable (n/a) rather than borrowed from other regions."
        )
    )

    def fmt(v: float | None, ci: float | None, units: int | None = None) -> str:
        text = "n/a: not estimable" if v is None else f"{v:.3f}" + ("" if ci is None else f" ± {ci:.3f}")
        return text if units is None else f"{text} ({units})"

    rows = []
    for rid, r in assessment["regions"].items():
        c = r["per_class"].get(target_class, {})
        rows.append((
            rid, str(r["n"]), fmt(r["overall_accuracy"], r["overall_ci95"]),
            fmt(c.get("users_accuracy"), c.get("users_ci95"), c.get("units_mapped")),
            fmt(c.get("producers_accuracy"), c.get("producers_ci95"), c.get("units_reference")),
        ))
    blocks.append(
        Table(
            (
                "region", "units", "overall accuracy",
                f"{target_class} user's accuracy (units mapped {target_class})",
                f"{target_class} producer's accuracy (units {target_class} by reference)",
            ),
            rows,
            numeric=frozenset({1}),
        )
    )
    ia = assessment["interpreters"]
    if ia["units_labeled_by_both"]:
        text = (
            f"Interpreters: {ia['units_labeled_by_both']} units labeled by both, agreement {100 * ia['agreement_rate']:.1f} %"
            + (f"; disagreements: {', '.join(f'{k} ({v})' for k, v in list(ia['disagreements'].items())[:5])}." if ia["disagreements"] else ".")
        )
    else:
        text = "Interpreters: no unit was labeled by two interpreters; agreement cannot be reported."
    return [*blocks, Paragraph(text)]
