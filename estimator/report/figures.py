"""Figures for run and comparison reports (matplotlib, Agg backend, PNG bytes).

Shared pieces (a decimated read of a map COG, region outlines with labels, the synthetic
stamp) serve the run's quicklook and the comparison report alike. Every figure of
synthetic data carries the banner inside the image, so a chart copied out of a report
still says what it is.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling

from estimator.synthetic import SYNTHETIC_BANNER

__all__ = [
    "VERDICT_COLOURS",
    "claims_chart",
    "draw_outlines",
    "probability_map",
    "pyplot",
    "read_decimated",
    "stamp_synthetic",
    "timeseries_chart",
    "to_png",
]

VERDICT_COLOURS = {"consistent": "#2e7d32", "contradicted": "#c62828", "inconclusive": "#757575"}
_ESTIMATE_COLOUR = "#1565c0"


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display, no network)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_decimated(cog: Path, max_px: int, resampling: Resampling) -> tuple[np.ndarray, Any]:
    """Band 1 of ``cog`` at most ``max_px`` on its longer side (read from the COG's
    overviews when they fit), and its bounds."""
    with rasterio.open(cog) as src:
        f = max(1, int(np.ceil(max(src.width, src.height) / max_px)))
        arr = src.read(1, out_shape=(max(1, src.height // f), max(1, src.width // f)), resampling=resampling)
        return arr, src.bounds


def draw_outlines(ax: Any, outlines: Sequence[tuple[str, Any]]) -> None:
    """Region outlines (geometries in the map CRS), white under black dashes so they show
    on any background, each labeled at a point inside it."""
    for label, geom in outlines:
        for p in getattr(geom, "geoms", [geom]):
            x, y = p.exterior.xy
            ax.plot(x, y, color="white", lw=1.2)
            ax.plot(x, y, color="black", lw=0.6, ls="--")
        c = geom.representative_point()
        ax.annotate(
            label, (c.x, c.y), color="white", fontsize=9, ha="center", weight="bold",
            bbox={"boxstyle": "round,pad=0.2", "fc": "black", "alpha": 0.45, "lw": 0},
        )


def stamp_synthetic(fig: Any) -> None:
    """The synthetic-data banner as the figure's headline (figures use constrained layout)."""
    fig.suptitle(SYNTHETIC_BANNER, color="#b71c1c", fontsize=12, weight="bold")


def to_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    pyplot().close(fig)
    return buf.getvalue()


def probability_map(cog: Path, outlines: Sequence[tuple[str, Any]], *, title: str, synthetic: bool, max_px: int = 900) -> bytes:
    """The target-class probability map (NaN = not classified, in grey) with region outlines."""
    plt = pyplot()
    arr, b = read_decimated(cog, max_px, Resampling.average)
    cmap = plt.get_cmap("magma_r").with_extremes(bad="#cfd8dc")
    fig, ax = plt.subplots(figsize=(7.5, 7), dpi=100, layout="constrained")
    im = ax.imshow(
        np.ma.masked_invalid(arr), cmap=cmap, vmin=0, vmax=1, extent=(b.left, b.right, b.bottom, b.top), interpolation="nearest"
    )
    draw_outlines(ax, outlines)
    fig.colorbar(im, ax=ax, shrink=0.7, label="probability (grey: not classified)")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    if synthetic:
        stamp_synthetic(fig)
    return to_png(fig)


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


def claims_chart(claims: Sequence[Mapping[str, Any]], *, synthetic: bool) -> bytes:
    """One row per claim: the estimate (dot) with its 95 % interval (whisker) and the claim
    (diamond for a figure, an arrow for "at least"/"at most"), coloured by verdict. Area
    claims share a hectare axis (logarithmic when they span orders of magnitude); growth
    claims get their own panel in percent per year."""
    plt = pyplot()
    area = [c for c in claims if c["kind"] != "growth_rate"]
    growth = [c for c in claims if c["kind"] == "growth_rate"]
    panels = [(rows, unit) for rows, unit in ((area, "ha"), (growth, "% per year")) if rows]
    heights = [max(1.2, 0.45 * len(rows) + 0.6) for rows, _ in panels] or [1.0]
    fig, axes = plt.subplots(len(heights), 1, figsize=(9, sum(heights) + 1.4), dpi=100, squeeze=False,
                             height_ratios=heights, layout="constrained")
    for ax, (rows, unit) in zip(axes[:, 0], panels, strict=False):
        pts = [_claim_points(c) for c in rows]
        values = [v for p in pts for v in p if v is not None and (unit != "ha" or v > 0)]
        log = unit == "ha" and bool(values) and max(values) / min(values) > 50
        floor = min(values) / 3 if log else None
        values += [_arrow_end(c["kind"], p[3], log) for c, p in zip(rows, pts, strict=True) if p[3] is not None]
        for y, (c, (est, lo, hi, claim)) in enumerate(zip(rows, pts, strict=True)):
            colour = VERDICT_COLOURS.get(c["verdict"], "#757575")
            if lo is not None and hi is not None:
                lo_ = max(lo, floor) if floor else lo
                ax.plot([lo_, hi], [y, y], color=_ESTIMATE_COLOUR, lw=2.5, solid_capstyle="butt")
                ax.vlines([lo_, hi], y - 0.15, y + 0.15, color=_ESTIMATE_COLOUR, lw=1.5)
            if est is not None:
                ax.plot(max(est, floor) if floor else est, y, "o", color=_ESTIMATE_COLOUR, ms=7, zorder=3)
            if claim is not None:
                _claim_marker(ax, c["kind"], claim, y, colour, log)
            ax.annotate(c["verdict"], (1.01, y), xycoords=("axes fraction", "data"), va="center", fontsize=8, color=colour)
        ax.set_yticks(range(len(rows)), [f"{c['id']} ({c.get('region_name') or c['region']})" for c in rows], fontsize=8)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        if log:
            ax.set_xscale("log")
        if values:
            lo_v, hi_v = min([*values, *([floor] if floor else [])]), max(values)
            pad = (hi_v / lo_v) ** 0.04 if log else 0.05 * (hi_v - lo_v or 1.0)
            ax.set_xlim(lo_v / pad, hi_v * pad) if log else ax.set_xlim(lo_v - pad, hi_v + pad)
        if not log:
            ax.ticklabel_format(axis="x", useOffset=False, style="plain")  # no "+3e2" offset labels
        ax.set_xlabel(f"coca, {unit}" + (" (log scale)" if log else ""), fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    handles = [
        plt.Line2D([], [], color=_ESTIMATE_COLOUR, marker="o", lw=2.5, label="estimate, 95 % CI"),
        plt.Line2D([], [], color="#424242", marker="D", ls="none", label="claim"),
        plt.Line2D([], [], color="#424242", marker="$\\rightarrow$", ms=12, ls="none", label="claim: at least / at most"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    if synthetic:
        stamp_synthetic(fig)
    else:
        fig.suptitle("Claims beside the estimates", fontsize=11)
    return to_png(fig)


def _claim_points(c: Mapping[str, Any]) -> tuple[float | None, float | None, float | None, float | None]:
    """(estimate, CI low, CI high, claim) on the claim's axis."""
    if c["kind"] == "growth_rate":
        g = c.get("implied_growth") or {}
        return _num(g.get("percent_per_year")), _num(g.get("ci95_low")), _num(g.get("ci95_high")), _num(c.get("growth_percent_per_year"))
    e = c.get("estimate") or {}
    return _num(e.get("area_ha")), _num(e.get("ci95_low_ha")), _num(e.get("ci95_high_ha")), _num(c.get("value_ha"))


def _claim_marker(ax: Any, kind: str, value: float, y: float, colour: str, log: bool) -> None:
    bound = kind in ("lower_bound", "upper_bound")
    ax.plot(value, y, "|" if bound else "D", color=colour, ms=14 if bound else 9, mew=2, zorder=4)
    if bound:
        ax.annotate("", (_arrow_end(kind, value, log), y), (value, y), arrowprops={"arrowstyle": "-|>", "color": colour, "lw": 2})


def _arrow_end(kind: str, value: float, log: bool) -> float:
    """Where the half-line of a bound ends: "at least" points right, "at most" left."""
    sign = {"lower_bound": 1, "upper_bound": -1}.get(kind, 0)
    return value * (3.0**sign) if log else value + sign * 0.15 * max(abs(value), 1.0)


def _mid(start: str, end: str) -> date:
    a, b = date.fromisoformat(start[:10]), date.fromisoformat(end[:10])
    return date.fromordinal((a.toordinal() + b.toordinal()) // 2)


def timeseries_chart(
    estimates: Sequence[Mapping[str, Any]], claims: Sequence[Mapping[str, Any]], *, synthetic: bool
) -> bytes:
    """Estimate and 95 % interval per period, one line per region; area claims as markers at
    the middle of the period they speak of."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100, layout="constrained")
    regions = list(dict.fromkeys(e["region"] for e in estimates))
    colours = dict(zip(regions, plt.get_cmap("tab10").colors, strict=False))
    for rid in regions:
        rows = sorted((e for e in estimates if e["region"] == rid), key=lambda e: e["period"])
        x = [_mid(*e["period"].split("/")) for e in rows]
        y = [e["area_ha"] for e in rows]
        ax.plot(x, y, "o-", color=colours[rid], label=rows[0].get("region_name") or rid)
        with_ci = [(xi, e) for xi, e in zip(x, rows, strict=True) if e.get("ci95_low_ha") is not None]
        if with_ci:
            ax.vlines([xi for xi, _ in with_ci], [e["ci95_low_ha"] for _, e in with_ci],
                      [e["ci95_high_ha"] for _, e in with_ci], color=colours[rid], lw=2, alpha=0.6)
    for c in claims:
        if c["kind"] == "growth_rate" or c.get("value_ha") is None or not c.get("period_start") or not c.get("period_end"):
            continue
        when = _mid(c["period_start"], c["period_end"])
        colour = colours.get(c["region"], "#424242")
        ax.plot(when, c["value_ha"], {"point": "D", "lower_bound": "^", "upper_bound": "v"}[c["kind"]], color=colour, mfc="none", ms=8)
        ax.annotate(c["id"], (when, c["value_ha"]), xytext=(4, 4), textcoords="offset points", fontsize=7, color=colour)
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylabel("coca, ha (symmetric log scale)", fontsize=9)
    marks = [plt.Line2D([], [], color="#424242", marker=m, mfc="none", ls="none", label=t)
             for m, t in (("D", "claim"), ("^", "claim: at least"), ("v", "claim: at most"))]
    ax.legend(handles=[*ax.get_legend_handles_labels()[0], *marks], fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(alpha=0.3)
    ax.set_title("Estimates (dot, 95 % CI bar) per period and region", fontsize=10)
    if synthetic:
        stamp_synthetic(fig)
    return to_png(fig)
