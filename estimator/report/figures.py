"""Figures for run and comparison reports (matplotlib, Agg backend, PNG bytes).

Shared pieces (a decimated read of a map COG, region outlines with labels, the synthetic
stamp) serve the run's quicklook and the comparison report alike. Every figure of
synthetic data carries the banner inside the image, so a chart copied out of a report
still says what it is.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from matplotlib import ticker
from rasterio.enums import Resampling

from estimator.report.claim_groups import ClaimGroup, claim_groups, is_other_period, midpoint
from estimator.synthetic import SYNTHETIC_BANNER

__all__ = [
    "LOG_SPAN",
    "VERDICT_COLOURS",
    "claims_chart",
    "claims_figure",
    "draw_outlines",
    "needs_log_scale",
    "place_labels",
    "probability_figure",
    "probability_map",
    "pyplot",
    "read_decimated",
    "stamp_synthetic",
    "to_png",
]

VERDICT_COLOURS = {"consistent": "#2e7d32", "contradicted": "#c62828", "inconclusive": "#757575"}
_ESTIMATE_COLOUR = "#1565c0"
_SERIES_COLOUR = "#546e7a"
_MARKERS = {"point": "D", "lower_bound": "^", "upper_bound": "v"}
#: A panel's value axis is logarithmic when its values span more than this factor.
LOG_SPAN = 10.0
_DODGE_DAYS = 100
_DODGE_SPAN_DAYS = 330  # claims about one year stay inside it
_SERIES_GAP_DAYS = 550


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


_OUTLINE_LABEL = {"color": "white", "fontsize": 9, "weight": "bold",
                  "bbox": {"boxstyle": "round,pad=0.2", "fc": "black", "alpha": 0.45, "lw": 0}}


def draw_outlines(ax: Any, outlines: Sequence[tuple[str, Any]], *, labels: bool = True) -> list[tuple[float, float, str]]:
    """Region outlines (geometries in the map CRS), white under black dashes so they show
    on any background, each labeled at a point inside it. With ``labels=False`` the labels
    are not drawn but returned, ``(x, y, text)``, for :func:`place_labels` (nested regions,
    such as a province inside its department, may share that point)."""
    anchors = []
    for label, geom in outlines:
        for p in getattr(geom, "geoms", [geom]):
            x, y = p.exterior.xy
            ax.plot(x, y, color="white", lw=1.2)
            ax.plot(x, y, color="black", lw=0.6, ls="--")
        c = geom.representative_point()
        anchors.append((c.x, c.y, label))
        if labels:
            ax.annotate(label, (c.x, c.y), ha="center", **_OUTLINE_LABEL)
    return anchors


def stamp_synthetic(fig: Any) -> None:
    """The synthetic-data banner as the figure's headline (figures use constrained layout)."""
    fig.suptitle(SYNTHETIC_BANNER, color="#b71c1c", fontsize=12, weight="bold")


def to_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    pyplot().close(fig)
    return buf.getvalue()


def probability_figure(cog: Path, outlines: Sequence[tuple[str, Any]], *, title: str, synthetic: bool, max_px: int = 900) -> Any:
    """The target-class probability map (NaN = not classified, in grey) with region outlines,
    their labels placed apart (a matplotlib Figure, drawn)."""
    plt = pyplot()
    arr, b = read_decimated(cog, max_px, Resampling.average)
    cmap = plt.get_cmap("magma_r").with_extremes(bad="#cfd8dc")
    fig, ax = plt.subplots(figsize=(7.5, 7), dpi=100, layout="constrained")
    im = ax.imshow(
        np.ma.masked_invalid(arr), cmap=cmap, vmin=0, vmax=1, extent=(b.left, b.right, b.bottom, b.top), interpolation="nearest"
    )
    anchors = draw_outlines(ax, outlines, labels=False)
    fig.colorbar(im, ax=ax, shrink=0.7, label="probability (grey: not classified)")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    if synthetic:
        stamp_synthetic(fig)
    fig.canvas.draw()
    fig.set_layout_engine("none")
    ax.set_autoscale_on(False)
    place_labels(ax, anchors, centre=True, style=_OUTLINE_LABEL)
    return fig


def probability_map(cog: Path, outlines: Sequence[tuple[str, Any]], *, title: str, synthetic: bool, max_px: int = 900) -> bytes:
    """:func:`probability_figure` as PNG bytes."""
    return to_png(probability_figure(cog, outlines, title=title, synthetic=synthetic, max_px=max_px))


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


def _day(s: str) -> date:
    return date.fromisoformat(s[:10])


def needs_log_scale(values: Iterable[float]) -> bool:
    """True when the positive values span more than :data:`LOG_SPAN` times: on a linear axis
    the small ones would sit on top of each other at the bottom."""
    pos = [v for v in values if v > 0]
    return bool(pos) and max(pos) / min(pos) > LOG_SPAN


def claims_figure(estimates: Sequence[Mapping[str, Any]], claims: Sequence[Mapping[str, Any]], *, synthetic: bool) -> Any:
    """Claims and estimates over time, one panel per region (a matplotlib Figure, drawn).

    Each panel shows the estimate of every run as a line over its period inside its 95 %
    interval band (runs joined by a dotted line), and every area claim at the date it speaks
    of (a year's figure at mid-year, with a bar over the year), shaped by kind (diamond: a
    figure, up: at least, down: at most), coloured by verdict, hollow when it is about a
    period no run covers. Claims of one source form a series joined by a line. The value
    axis is logarithmic where a panel's values span more than :data:`LOG_SPAN` times. Each
    claim or series carries a number, placed where it overlaps no other number, and the
    key beside the panel says who said what (see :func:`estimator.report.claim_groups.claim_groups`).
    """
    plt = pyplot()
    groups = claim_groups(claims)
    regions = list(dict.fromkeys([*(e["region"] for e in estimates), *groups]))
    names = {x["region"]: x.get("region_name") or x["region"] for x in [*claims, *estimates]}
    # Room for the key beside each panel: about 0.2 inch per entry.
    heights = [max(2.4, 0.21 * len(groups.get(r, [])) + 1.0) for r in regions]
    fig = plt.figure(figsize=(12, sum(heights) + 1.6), dpi=100, layout="constrained")
    axes = fig.subplots(len(regions), 1, sharex=True, squeeze=False, height_ratios=heights)[:, 0]
    anchors = [_region_panel(ax, rid, names[rid], [e for e in estimates if e["region"] == rid], groups.get(rid, []))
               for ax, rid in zip(axes, regions, strict=True)]
    axes[-1].set_xlabel("date the figure speaks of (a statement about a year: at mid-year, its bar spanning the year)",
                        fontsize=9)
    fig.legend(handles=_legend_handles(plt), loc="outside lower center", ncol=5, fontsize=8, frameon=False)
    if synthetic:
        stamp_synthetic(fig)
    else:
        fig.suptitle("Claims beside the estimates, by region", fontsize=12)
    fig.canvas.draw()
    # Numbers are placed in screen space, so the layout must not move the axes afterwards.
    fig.set_layout_engine("none")
    for ax in axes:
        ax.set_autoscale_on(False)  # leader lines must not move the limits the labels were placed in
    for ax, (labels, markers) in zip(axes, anchors, strict=True):
        place_labels(ax, labels, markers)
    return fig


def claims_chart(estimates: Sequence[Mapping[str, Any]], claims: Sequence[Mapping[str, Any]], *, synthetic: bool) -> bytes:
    """:func:`claims_figure` as PNG bytes."""
    return to_png(claims_figure(estimates, claims, synthetic=synthetic))


def _region_panel(
    ax: Any, rid: str, name: str, estimates: Sequence[Mapping[str, Any]], groups: Sequence[ClaimGroup],
) -> tuple[list[tuple[date, float, str]], list[tuple[date, float]]]:
    """Draw one region; return the number labels to place and every marker position."""
    values: list[float] = []
    markers: list[tuple[date, float]] = []
    rows = sorted(estimates, key=lambda e: e["period"])
    mids = []
    for e in rows:
        start, _, end = e["period"].partition("/")
        s, t = _day(start), _day(end)
        lo, hi, a = _num(e.get("ci95_low_ha")), _num(e.get("ci95_high_ha")), float(e["area_ha"])
        if lo is not None and hi is not None:
            ax.fill_between([s, t], [lo, lo], [hi, hi], color=_ESTIMATE_COLOUR, alpha=0.2, lw=0, gid=f"band:{rid}")
            values += [lo, hi]
        ax.plot([s, t], [a, a], color=_ESTIMATE_COLOUR, lw=2.2, solid_capstyle="butt", zorder=3)
        mids.append(date.fromordinal((s.toordinal() + t.toordinal()) // 2))
        values.append(a)
    if len(rows) > 1:
        ax.plot(mids, [float(e["area_ha"]) for e in rows], ":", color=_ESTIMATE_COLOUR, lw=1, gid=f"estimates:{rid}")
    labels = []
    at = _dodged(groups)
    for g in groups:
        xs, ys = [at[c["id"]] for c in g.claims], [float(c["value_ha"]) for c in g.claims]
        if g.is_series:
            # One line per series; a stretch of more than a year and a half without a figure is dashed.
            for k in range(len(xs) - 1):
                gap = (midpoint(g.claims[k + 1]) - midpoint(g.claims[k])).days > _SERIES_GAP_DAYS
                ax.plot(xs[k : k + 2], ys[k : k + 2], "--" if gap else "-", color=_SERIES_COLOUR, lw=1.3, zorder=3,
                        gid=f"series:{rid}:{g.number}")
        for c, x, y in zip(g.claims, xs, ys, strict=True):
            colour = VERDICT_COLOURS.get(c["verdict"], "#757575")
            d0, d1 = _day(c["period_start"]), _day(c["period_end"])
            if d0 != d1:
                ax.plot([d0, d1], [y, y], color=colour, lw=1.2, alpha=0.7, zorder=3)
            ax.plot(x, y, _MARKERS[c["kind"]], ms=7, color=colour, mfc="white" if is_other_period(c) else colour, mew=1.5,
                    zorder=4, gid=f"claim:{c['id']}")
            markers.append((x, y))
        labels.append((xs[-1], ys[-1], str(g.number)))
        values += ys
    markers += [(m, float(e["area_ha"])) for m, e in zip(mids, rows, strict=True)]
    log = needs_log_scale(values)
    pos = [v for v in values if v > 0] or [1.0]
    if log:
        ax.set_yscale("log")
        ax.set_ylim(min(pos) / 1.8, max(pos) * 1.8)
        ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    else:
        ax.set_ylim(0, max(pos) * 1.15)
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_ylabel("coca, ha" + (", log scale" if log else ""), fontsize=9)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=8)
    claims = [c for g in groups for c in g.claims]
    judged = [c for c in claims if not is_other_period(c)]
    counts = ", ".join(f"{sum(c['verdict'] == v for c in judged)} {v}" for v in ("contradicted", "consistent", "inconclusive")
                       if any(c["verdict"] == v for c in judged))
    other = len(claims) - len(judged)
    detail = "; ".join(x for x in (counts, f"{other} about other periods" if other else "") if x)
    ax.set_title(f"{name}: {len(claims)} area claims" + (f" ({detail})" if detail else ""), loc="left", fontsize=10)
    if groups:
        plt = pyplot()
        handles = [_key_handle(plt, g) for g in groups]
        ax.legend(handles, [g.key_text() for g in groups], loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                  frameon=False, handlelength=2.2, borderaxespad=0.0, title="key", title_fontsize=8, alignment="left")
    return labels, markers


def _dodged(groups: Sequence[ClaimGroup]) -> dict[str, date]:
    """Where each claim is drawn: at its date, claims sharing a date spread over a few weeks
    (in order of value) so that their markers do not hide one another."""
    by: dict[date, list[Mapping[str, Any]]] = {}
    for c in (c for g in groups for c in g.claims):
        by.setdefault(midpoint(c), []).append(c)
    out = {}
    for day, cs in by.items():
        cs.sort(key=lambda c: float(c["value_ha"]))
        step = min(_DODGE_DAYS, _DODGE_SPAN_DAYS / max(len(cs) - 1, 1))
        for i, c in enumerate(cs):
            out[c["id"]] = date.fromordinal(day.toordinal() + round((i - (len(cs) - 1) / 2) * step))
    return out


def _key_handle(plt: Any, g: ClaimGroup) -> Any:
    c = g.claims[-1]
    colour = VERDICT_COLOURS.get(c["verdict"], "#757575")
    if g.is_series:
        return plt.Line2D([], [], color=_SERIES_COLOUR, marker=_MARKERS[c["kind"]], ms=6, mfc=_SERIES_COLOUR, lw=1.3)
    return plt.Line2D([], [], ls="none", marker=_MARKERS[c["kind"]], ms=7, color=colour,
                      mfc="white" if is_other_period(c) else colour, mew=1.5)


def _legend_handles(plt: Any) -> list[Any]:
    from matplotlib.patches import Patch

    grey = "#424242"
    return [
        Patch(facecolor=_ESTIMATE_COLOUR, alpha=0.35, edgecolor=_ESTIMATE_COLOUR, label="estimate, 95 % CI (band), per run"),
        plt.Line2D([], [], color=grey, marker="D", ls="none", label="claim: a figure"),
        plt.Line2D([], [], color=grey, marker="^", ls="none", label="claim: at least"),
        plt.Line2D([], [], color=grey, marker="v", ls="none", label="claim: at most"),
        plt.Line2D([], [], color=_SERIES_COLOUR, marker="D", ms=5, lw=1.3, label="figures of one source (series; dashed: gap)"),
        *(plt.Line2D([], [], color=c, marker="s", ls="none", label=v) for v, c in VERDICT_COLOURS.items()),
        plt.Line2D([], [], color=grey, marker="D", mfc="white", ls="none", label="hollow: about another period"),
    ]


def place_labels(ax: Any, labels: Sequence[tuple[Any, float, str]], markers: Sequence[tuple[Any, float]] = (),
                 fontsize: float = 8, *, centre: bool = False, style: Mapping[str, Any] | None = None) -> list[Any]:
    """Write short labels next to their points so that no two overlap and all stay inside
    the axes; a label pushed away from its point gets a thin leader line.

    Candidate positions are tried nearest first (centred on the point when ``centre``, then
    right, left, above, below, then further up and down); a position that covers another
    marker is taken only when no free one is left. ``style`` replaces the text's look
    (colour, size, box). Hand-written because adjustText and textalloc minimise overlaps rather than rule
    them out, and the report promises labels that can be read.
    Call after the figure's layout is final (drawn, layout engine off).
    """
    from matplotlib.transforms import Bbox

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    px_per_pt = fig.dpi / 72.0
    box_ax = ax.get_window_extent(renderer)
    r = 6 * px_per_pt  # keep clear of the marker itself
    dots = [Bbox.from_bounds(x - r / 2, y - r / 2, r, r) for x, y in ax.transData.transform(
        [(ax.convert_xunits(m[0]), m[1]) for m in markers])] if markers else []
    placed: list[Any] = []
    out = []
    for x, y, text in sorted(labels, key=lambda t: (ax.convert_xunits(t[0]), t[1])):
        px, py = ax.transData.transform((ax.convert_xunits(x), y))
        look = dict(style) if style is not None else {
            "fontsize": fontsize, "color": "#212121", "bbox": {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8}}
        t = ax.annotate(text, (x, y), xytext=(0, 0), textcoords="offset points", ha="left", va="bottom", zorder=6, **look)
        ext = t.get_window_extent(renderer)
        w, h = ext.width, ext.height
        dx0, dy0 = ext.x0 - px, ext.y0 - py  # where the text sits at offset 0
        gap = r / 2 + 2
        cands = [(-w / 2, -h / 2)] if centre else []
        cands += [(gap, -h / 2), (-gap - w, -h / 2), (-w / 2, gap), (-w / 2, -gap - h),
                 (gap, gap), (gap, -gap - h), (-gap - w, gap), (-gap - w, -gap - h)]
        for k in range(1, 40):
            for side in (gap, -gap - w):
                cands += [(side, -h / 2 + k * h * 1.1), (side, -h / 2 - k * h * 1.1)]
        best, best_cost = None, None
        for cx, cy in cands:
            box = Bbox.from_bounds(px + cx, py + cy, w, h)
            if not (box_ax.x0 <= box.x0 and box.x1 <= box_ax.x1 and box_ax.y0 <= box.y0 and box.y1 <= box_ax.y1):
                continue
            if any(box.overlaps(p) for p in placed):
                continue
            cost = (sum(box.overlaps(d) for d in dots), abs(cy + h / 2) + abs(cx + w / 2) * 0.1)
            if best_cost is None or cost < best_cost:
                best, best_cost = (cx, cy), cost
                if cost[0] == 0:
                    break
        cx, cy = best if best is not None else (gap, -h / 2)
        t.xyann = ((cx - dx0) / px_per_pt, (cy - dy0) / px_per_pt)
        if abs(cy + h / 2) > h:  # pushed away: a leader line from the point to the label's near edge
            end = ax.transData.inverted().transform((px + cx + (0 if cx > 0 else w), py + cy + h / 2))
            ax.plot([ax.convert_xunits(x), end[0]], [y, end[1]], color="#9e9e9e", lw=0.6, zorder=5)
        placed.append(Bbox.from_bounds(px + cx, py + cy, w, h))
        out.append(t)
    return out
