"""A first Markdown report of a run: what was estimated, from what, and how much was seen."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from estimator.stages.estimate import FAILED_READS_LIMIT, failed_read_fraction
from estimator.synthetic import SYNTHETIC_BANNER

__all__ = ["md_cell", "render_report_md"]


def md_cell(value: Any) -> str:
    """A value as one Markdown table cell: a newline or ``|`` in an id would end the row."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _tiles_with_failures(manifest: Mapping[str, Any]) -> int:
    return sum(t["status"] == "failed" or bool(t.get("failed_items")) for t in manifest["tiles"])


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
    synthetic = bool(manifest.get("synthetic"))
    failed = failed_read_fraction(records)
    lines: list[str] = []
    if synthetic:
        lines += [f"> **{SYNTHETIC_BANNER}.** Imagery, plots and regions come from the generated demo world.", ""]
    if failed > FAILED_READS_LIMIT:
        lines += [
            f"> **Not a result: {_pct(failed)} of a region's image reads failed.** The figures below count only "
            "the pixels that could be read; rerun when the imagery is reachable (finished tiles are kept).",
            "",
        ]
    lines += [
        f"# {target_class.capitalize()} estimate, {manifest['period']}",
        "",
        f"- STAC: {manifest['stac']['url']} collection `{manifest['stac']['collection']}`; "
        f"{len(manifest['items'])} scenes used ({manifest['stac']['n_too_cloudy']} dropped as too cloudy, "
        f"cloud filter applied on the {manifest['stac']['filter_mode']} side).",
        f"- Grid: {manifest['grid']['crs']}, {manifest['grid']['resolution']} m, "
        f"{manifest['grid']['shape'][0]} x {manifest['grid']['shape'][1]} px in {len(manifest['tiles'])} tile(s) "
        f"({_tiles_with_failures(manifest)} with failed reads; {_pct(failed)} of a region's reads failed at most).",
        f"- Model `{manifest['model']['id']}` ({manifest['model']['estimator']}), classes: {', '.join(manifest['model']['classes'])}.",
        "",
        f"## {target_class.capitalize()} per region",
        "",
        *[f"> **{md_cell(r['id'])}**: {r['note']}" for r in manifest.get("regions", []) if r.get("note")],
        "",
    ]
    head = "| region | region area (ha) | observed | failed reads | mapped (ha) | estimate (ha) | 95 % CI (ha) | estimator |"
    sep = "|---|---:|---:|---:|---:|---:|---|---|"
    if truth:
        head += " true (ha) |"
        sep += "---:|"
    lines += [head, sep]
    for r in records:
        if r["class"] != target_class:
            continue
        ci = (
            f"{r['ci95_low_ha']:,.1f} - {r['ci95_high_ha']:,.1f}"
            if r.get("ci95_low_ha") is not None
            else "none: needs a labeled reference sample"
        )
        row = (
            f"| {md_cell(r['region'])} | {r['region_area_ha']:,.1f} | {_pct(r['observed_fraction'])} | "
            f"{_pct(r['failed_read_fraction'])} | {r['mapped_area_ha']:,.1f} | {r['area_ha']:,.1f} | {ci} | {r['estimator']} |"
        )
        if truth:
            t = truth.get(r["region"], {}).get(target_class)
            row += f" {'n/a' if t is None else f'{t:,.1f}'} |"
        lines.append(row)
    lines += [
        "",
        "Areas are true ground areas (per-pixel geodesic area, not nominal pixel size) of the",
        "observed part of each region: pixels with at least one clear Sentinel-2 observation in",
        "the period. Unobserved pixels are not counted as absent; `observed` says how much of the",
        "region the estimate covers. A mapped area is a pixel count of the classifier's output and",
        "carries its errors; a design-based estimate with a confidence interval needs a labeled",
        "reference sample (`estimator sample`, then `estimator assess`).",
        "",
        *_plots_lines(manifest.get("plots"), target_class),
        *_coverage_lines(records, target_class),
        *_assessment_lines(assessment, target_class),
        "## All classes (estimated ha)",
        "",
    ]
    classes = list(dict.fromkeys(r["class"] for r in records))
    regions = list(dict.fromkeys(r["region"] for r in records))
    lines += ["| region | " + " | ".join(classes) + " |", "|---|" + "---:|" * len(classes)]
    by = {(r["region"], r["class"]): r["area_ha"] for r in records}
    for reg in regions:
        lines.append(f"| {md_cell(reg)} | " + " | ".join(f"{by[(reg, c)]:,.1f}" for c in classes) + " |")
    lines += [
        "",
        "## Provenance",
        "",
        f"- Config hash `{manifest['config_hash'][:16]}`, model sha256 `{manifest['model']['sha256'][:16]}`.",
        f"- Processing baselines: {', '.join(sorted({str(i['processing_baseline']) for i in manifest['items']}))}.",
        f"- Created {manifest['created']} by estimator {manifest['versions'].get('coca-estimator', '?')}.",
        "",
    ]
    if synthetic:
        lines += [f"> **{SYNTHETIC_BANNER}.**", ""]
    return "\n".join(lines)


def _plots_lines(plots: Mapping[str, Any] | None, target_class: str) -> list[str]:
    if not plots:
        return []
    return [
        f"Plots (`plots.geoparquet`, `plots.geojson`): {plots['n_plots']:,} connected {target_class} patches, "
        f"{plots['area_ha']:,.2f} ha. {plots['n_below_mmu']:,} patches under the minimum mapping unit of "
        f"{plots['min_patch_ha']:g} ha, {plots['below_mmu_area_ha']:,.2f} ha, are flagged (`below_mmu`) and not "
        f"counted in the map's {target_class} area.",
        "",
    ]


def _coverage_lines(records: Sequence[Mapping[str, Any]], target_class: str) -> list[str]:
    rows = [r for r in records if r["class"] == target_class]
    policy = rows[0].get("coverage_policy", "withheld") if rows else "withheld"
    lines = ["## Unobserved part of each region", ""]
    if policy == "withheld":
        lines += [
            "Policy: **withheld**. Pixels never observed clear (persistent cloud, or failed reads) are",
            "not counted as absence and no figure is given for them; the estimates above cover the",
            "observed part only.",
            "",
        ]
        return lines
    lines += [
        "Policy: **extrapolated**. The observed part's density is transferred to the unobserved",
        "part, with an interval widened for that assumption (see `estimate.apply_coverage`).",
        "",
        "| region | observed | whole-region estimate (ha) | 95 % CI (ha) |",
        "|---|---:|---:|---|",
    ]
    for r in rows:
        ci = (
            f"{r['extrapolated_ci95_low_ha']:,.1f} - {r['extrapolated_ci95_high_ha']:,.1f}"
            if r.get("extrapolated_ci95_low_ha") is not None
            else "none"
        )
        tot = r.get("extrapolated_area_ha")
        lines.append(f"| {md_cell(r['region'])} | {_pct(r['observed_fraction'])} | {'n/a' if tot is None else f'{tot:,.1f}'} | {ci} |")
    return [*lines, ""]


def _assessment_lines(assessment: Mapping[str, Any] | None, target_class: str) -> list[str]:
    if not assessment:
        return []
    lines = [
        "## Accuracy (reference sample)",
        "",
        f"Design: {assessment['design']}; {assessment['n_units']} labeled units; estimator "
        f"`{assessment['estimator']}`; intervals at z = {assessment['z']}.",
        "",
        f"| region | units | overall accuracy | {target_class} user's accuracy | {target_class} producer's accuracy |",
        "|---|---:|---|---|---|",
    ]

    def fmt(v: float | None, ci: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}" + ("" if ci is None else f" ± {ci:.3f}")

    for rid, r in assessment["regions"].items():
        c = r["per_class"].get(target_class, {})
        lines.append(
            f"| {md_cell(rid)} | {r['n']} | {fmt(r['overall_accuracy'], r['overall_ci95'])} | "
            f"{fmt(c.get('users_accuracy'), c.get('users_ci95'))} | {fmt(c.get('producers_accuracy'), c.get('producers_ci95'))} |"
        )
    ia = assessment["interpreters"]
    lines += ["", "Interpreters: "]
    if ia["units_labeled_by_both"]:
        lines[-1] += (
            f"{ia['units_labeled_by_both']} units labeled by both, agreement {100 * ia['agreement_rate']:.1f} %"
            + (f"; disagreements: {', '.join(f'{k} ({v})' for k, v in list(ia['disagreements'].items())[:5])}." if ia["disagreements"] else ".")
        )
    else:
        lines[-1] += "no unit was labeled by two interpreters; agreement cannot be reported."
    return [*lines, ""]
