"""``report.md`` of a cold-start run (``model: none``): strata, not classes, until assessed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from estimator.report.document import Banner, Bullets, Heading, Paragraph, Table, render_md
from estimator.synthetic import SYNTHETIC_BANNER

__all__ = ["render_strata_report_md"]


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def render_strata_report_md(
    rows: Sequence[Mapping[str, Any]],
    manifest: Mapping[str, Any],
    *,
    records: Sequence[Mapping[str, Any]] = (),
    truth: Mapping[str, Mapping[str, float]] | None = None,
    assessment: Mapping[str, Any] | None = None,
) -> str:
    """The report of a strata-only run: no model was used, so no class has an area until a
    labelled sample is assessed (``records``: region x class, design-based)."""
    m = manifest["model"]
    s = m["strata"]
    blocks: list[Any] = []
    if manifest.get("synthetic"):
        blocks.append(Banner(f"{SYNTHETIC_BANNER}. Imagery and regions come from the generated demo world."))
    blocks += [
        Heading(1, f"Cold start: label-free strata, {manifest['period']}"),
        Banner(
            "No model was used (model: none). This run holds no class map and no class area: it splits each "
            "region into strata for a reference sample. Next: `estimator sample` this run, label the points "
            "(`estimator interpret`), then `estimator assess` gives the area of every class with its 95 % interval."
        ),
        Bullets([
            f"STAC: {manifest['stac']['url']} collection `{manifest['stac']['collection']}`; {len(manifest['items'])} scenes used.",
            f"Grid: {manifest['grid']['crs']}, {manifest['grid']['resolution']} m, "
            f"{manifest['grid']['shape'][0]} x {manifest['grid']['shape'][1]} px.",
            f"Strata ({s['map']}): {s['method']}; {len(m['classes'])} strata, seed {s['config']['seed']}.",
            f"Legend to label: {', '.join(m['reference_classes'])} (target: {m['target_class']}).",
        ]),
        Heading(2, "How the strata were made"),
        Table(
            ("stratum", "made by", "centre NDVI median", "centre harvest-drop rate"),
            [
                (d["stratum"], d["made_by"], str(d.get("centre_ndvi_median", "")), str(d.get("centre_ndvi_drop_rate", "")))
                for d in s["strata"]
            ],
        ),
        Heading(2, "Strata per region (observed part)"),
    ]
    strata = list(dict.fromkeys(r["stratum"] for r in rows))
    regions = list(dict.fromkeys(r["region"] for r in rows))
    by = {(r["region"], r["stratum"]): r for r in rows}
    first = {r["region"]: r for r in rows}
    blocks.append(
        Table(
            ("region", "observed", *[f"{st} (ha)" for st in strata]),
            [
                (rid, _pct(first[rid]["observed_fraction"]), *[f"{by[(rid, st)]['stratum_area_ha']:,.1f}" for st in strata])
                for rid in regions
            ],
            numeric=frozenset(range(1, len(strata) + 2)),
        )
    )
    blocks.append(
        Paragraph(
            "Strata are groups of pixels that look alike over the period; they are not land-cover classes and "
            "their areas are not estimates of anything. The estimate comes from the labelled sample."
        )
    )
    if records and assessment:
        blocks += _assessed_blocks(records, truth, assessment, str(manifest["model"]["target_class"]))
    return render_md(blocks, {})


def _assessed_blocks(
    records: Sequence[Mapping[str, Any]], truth: Mapping[str, Mapping[str, float]] | None, assessment: Mapping[str, Any], target: str
) -> list[Any]:
    head = ["region", "class", "estimate (ha)", "95 % CI (ha)", "units of the class", "estimator"]
    if truth:
        head.append("true (ha)")
    units = {rid: r.get("per_class", {}) for rid, r in assessment.get("regions", {}).items()}
    out = []
    for r in sorted(records, key=lambda r: (r["region"], r["class"] != target, r["class"])):
        row = [
            r["region"], r["class"], f"{r['area_ha']:,.1f}", f"{r['ci95_low_ha']:,.1f} - {r['ci95_high_ha']:,.1f}",
            str(units.get(r["region"], {}).get(r["class"], {}).get("units_reference", "")), str(r["estimator"]),
        ]
        if truth:
            t = truth.get(r["region"], {}).get(r["class"])
            row.append("n/a" if t is None else f"{t:,.1f}")
        out.append(tuple(row))
    return [
        Heading(2, f"Area of every class, from the labelled sample ({assessment['n_units']} units)"),
        Table(tuple(head), out, numeric=frozenset({2, 4, *([6] if truth else [])})),
        Paragraph(f"{assessment['design']}; interval: {assessment['interval']}. {assessment.get('accuracy_note', '')}"),
    ]
