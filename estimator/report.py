"""A first Markdown report of a run: what was estimated, from what, and how much was seen."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .outputs import SYNTHETIC_BANNER

__all__ = ["render_report_md"]


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def render_report_md(
    records: Sequence[Mapping[str, Any]],
    manifest: Mapping[str, Any],
    *,
    target_class: str,
    truth: Mapping[str, Mapping[str, float]] | None = None,
) -> str:
    """Render ``report.md`` from estimate records and the manifest."""
    synthetic = bool(manifest.get("synthetic"))
    lines: list[str] = []
    if synthetic:
        lines += [f"> **{SYNTHETIC_BANNER}.** Imagery, plots and regions come from the generated demo world.", ""]
    lines += [
        f"# {target_class.capitalize()} estimate, {manifest['period']}",
        "",
        f"- STAC: {manifest['stac']['url']} collection `{manifest['stac']['collection']}`; "
        f"{len(manifest['items'])} scenes used ({manifest['stac']['n_too_cloudy']} dropped as too cloudy, "
        f"cloud filter applied on the {manifest['stac']['filter_mode']} side).",
        f"- Grid: {manifest['grid']['crs']}, {manifest['grid']['resolution']} m, "
        f"{manifest['grid']['shape'][0]} x {manifest['grid']['shape'][1]} px in {len(manifest['tiles'])} tile(s) "
        f"({sum(t['status'] == 'failed' for t in manifest['tiles'])} failed).",
        f"- Model `{manifest['model']['id']}` ({manifest['model']['estimator']}), classes: {', '.join(manifest['model']['classes'])}.",
        "",
        f"## {target_class.capitalize()} per region",
        "",
    ]
    head = "| region | region area (ha) | observed | failed reads | mapped " + target_class + " (ha) | 95 % CI |"
    sep = "|---|---:|---:|---:|---:|---|"
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
            else "none (mapped area; needs a reference sample)"
        )
        row = (
            f"| {r['region']} | {r['region_area_ha']:,.1f} | {_pct(r['observed_fraction'])} | "
            f"{_pct(r['failed_read_fraction'])} | {r['area_ha']:,.1f} | {ci} |"
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
        "reference sample.",
        "",
        "## All classes (mapped ha)",
        "",
    ]
    classes = list(dict.fromkeys(r["class"] for r in records))
    regions = list(dict.fromkeys(r["region"] for r in records))
    lines += ["| region | " + " | ".join(classes) + " |", "|---|" + "---:|" * len(classes)]
    by = {(r["region"], r["class"]): r["area_ha"] for r in records}
    for reg in regions:
        lines.append(f"| {reg} | " + " | ".join(f"{by[(reg, c)]:,.1f}" for c in classes) + " |")
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
