"""The comparison report at the registry's scale: ~100 claims, three regions, several years.

Synthetic runs (``tests/claims/report_fixture.py``) are compared with the real ``configs/claims.yaml``
by the real ``compare``; expected counts come from ``comparison.json``, not from constants.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest

from estimator.claims.headlines import unmatched_blocks
from estimator.report.claim_groups import claim_groups, is_other_period, period_label
from estimator.report.document import Details, Paragraph
from estimator.report.figures import claims_figure, needs_log_scale, pyplot
from estimator.synthetic import SYNTHETIC_BANNER

from .report_fixture import build

YEARS = (2010, 2011, 2021, 2022)


@pytest.fixture(scope="module")
def real_scale(tmp_path_factory) -> tuple[dict[str, Any], str, str]:
    out = tmp_path_factory.mktemp("scale")
    comparison, _ = build(out, YEARS)
    report = out / "report"
    return comparison, (report / "report.html").read_text(), (report / "report_comparison.md").read_text()


def _section(html: str, anchor: str) -> str:
    start = html.index(f'id="{anchor}"')
    nxt = html.find("<h2", start)
    return html[start : nxt if nxt > 0 else None]


def _headline(html: str, title: str) -> str:
    m = re.search(rf'<section class="headline"><h4>{re.escape(title)}</h4>(.*?)</section>', html)
    assert m, f"no headline {title!r}"
    return m.group(1)


# ---------------------------------------------------------------- headlines


def test_registry_scale_fixture_is_what_the_issue_describes(real_scale):
    comparison, _, _ = real_scale
    assert len(comparison["claims"]) + len(comparison["unmatched"]) >= 100
    assert {e["region"] for e in comparison["estimates"]} == {"loreto", "vrae", "mariscal-ramon-castilla"}
    by = {c["id"]: c for c in comparison["claims"]}
    assert by["news2011-angulo-loreto"]["verdict"] == "contradicted"
    assert by["news2011-angulo-mariscal-ramon-castilla"]["value_ha"] == pytest.approx(2832.8, abs=0.1)
    assert sum(is_other_period(c) for c in comparison["claims"]) >= 10


def test_one_headline_per_region_and_period_with_counts_and_named_claims(real_scale):
    comparison, html, _ = real_scale
    summary = _section(html, "summary")
    runs = comparison["runs"]
    for e in comparison["estimates"]:
        label = period_label(runs[e["run"]]["period_start"], runs[e["run"]]["period_end"])
        body = _headline(summary, f"{e['region_name']}, {label}")
        best = float(f"{e['area_ha']:.3g}")
        assert f"best estimate {best:,.0f} ha" in body
        assert f"{round(100 * e['observed_fraction'])} % of the region seen clear" in body
        here = [c for c in comparison["claims"] if c["region"] == e["region"] and c["kind"] != "growth_rate"
                and not is_other_period(c) and c["estimate"]["run"] == e["run"]]
        if not here:
            assert "No claim about this period." in body
            continue
        for v in ("contradicted", "consistent", "inconclusive"):
            assert f'<span class="verdict-{v}">{sum(c["verdict"] == v for c in here)} {v}</span>' in body
        named = [c for c in here if c["verdict"] != "inconclusive"]
        assert body.count("<li>") >= len(named)
    # the four 2011 claims the story is about, one sentence each, with how far off
    loreto = _headline(summary, "Loreto, 2011")
    assert "Col. PNP Jorge Angulo (DIRANDRO-Loreto) said at least 25,000 ha: even the interval&#x27;s upper end" in loreto
    assert re.search(r"Yván Vásquez Valera \(Gobierno Regional de Loreto\) said 40,000 ha: [\d.]+ times the estimate, "
                     r"[\d,]+ ha above the interval", loreto)
    assert "Ricardo Soberón (DEVIDA) said at most 3,000 ha: even the interval&#x27;s lower end" in loreto
    assert "said 2,833 ha (reported as 7,000 acres): inside the interval" in _headline(summary, "Mariscal Ramón Castilla, 2011")


def test_claims_about_other_periods_are_counted_and_pointed_to_not_narrated(real_scale):
    comparison, html, _ = real_scale
    summary = _section(html, "summary")
    for rid, name in (("loreto", "Loreto"), ("vrae", "VRAE"), ("mariscal-ramon-castilla", "Mariscal Ramón Castilla")):
        n = sum(is_other_period(c) for c in comparison["claims"] if c["region"] == rid)
        assert f"{n} claims about other periods" in summary
        assert f"See the verdict table, {name}, “about other periods”." in summary
    assert "period mismatch" not in summary and "claim about 2019-12-31" not in summary
    assert "DEVIDA coca monitoring&#x27;s series 2017-2024 (8 figures)" not in summary  # two of them are judged here
    words = len(re.sub(r"<[^>]+>", " ", summary).split())
    assert words < 1100, f"the summary has {words} words"


def test_verdict_tables_grouped_by_region_then_verdict_with_folded_sources(real_scale):
    comparison, html, md = real_scale
    verdicts = _section(html, "verdicts")
    regions = [m for m in re.findall(r"<h3>([^<]+)</h3>", verdicts)]
    assert regions == ["Loreto", "VRAE", "Mariscal Ramón Castilla"]
    loreto = verdicts[verdicts.index("<h3>Loreto</h3>") : verdicts.index("<h3>VRAE</h3>")]
    mine = [c for c in comparison["claims"] if c["region"] == "loreto"]
    headings = re.findall(r"<h4>(\w+) \((\d+)\)</h4>", loreto)
    assert headings == [(v.capitalize(), str(sum(c["verdict"] == v and not is_other_period(c) for c in mine)))
                        for v in ("contradicted", "consistent", "inconclusive")
                        if any(c["verdict"] == v and not is_other_period(c) for c in mine)]
    assert f"About other periods ({sum(is_other_period(c) for c in mine)})" in loreto
    folds = re.findall(r'<details class="fold"><summary>source and quote</summary>', verdicts)
    assert len(folds) == len(comparison["claims"])
    for c in comparison["claims"]:
        assert f"claim id: {c['id']}" in verdicts and c["id"] in md
    assert 'href="https://archivo.inforegion.pe/nuevas-cifras-revelan-que-loreto-seria-la-zona-mas-cocalera-del-peru"' in verdicts


def test_unmatched_claims_counted_by_cause(real_scale):
    comparison, html, _ = real_scale
    unmatched = comparison["unmatched"]
    zones = sum(u["reason"].startswith("no matching region") for u in unmatched)
    text = _section(html, "unmatched")
    assert f"{len(unmatched)} claim(s) of the registry were not compared: {zones} about zones with no named region" in text
    assert f"peru: {sum(u['reason'].startswith('region ' + chr(39) + 'peru' + chr(39)) for u in unmatched)}" in text
    blocks = unmatched_blocks(unmatched)
    assert isinstance(blocks[0], Paragraph) and isinstance(blocks[1], Details) and blocks[1].table is not None
    assert len(blocks[1].table.rows) == len(unmatched)


# ---------------------------------------------------------------- the chart


@contextmanager
def drawn_texts() -> Iterator[list[Any]]:
    """Every non-empty text matplotlib draws while the block runs (tick labels, titles, keys, labels)."""
    from matplotlib.text import Text

    drawn: list[Any] = []
    real = Text.draw

    def draw(self: Any, renderer: Any) -> None:
        real(self, renderer)
        if self.get_visible() and self.get_text().strip():
            drawn.append((self, renderer))

    with mock.patch.object(Text, "draw", draw):
        yield drawn


def text_overlaps(fig: Any) -> list[tuple[str, str]]:
    """Pairs of drawn texts whose boxes overlap by more than half a pixel each way."""
    with drawn_texts() as drawn:
        fig.canvas.draw()
    boxes = [(t.get_text(), t.get_window_extent(r)) for t, r in drawn]
    out = []
    for i, (a, ba) in enumerate(boxes):
        for b, bb in boxes[i + 1 :]:
            if min(ba.x1, bb.x1) - max(ba.x0, bb.x0) > 0.5 and min(ba.y1, bb.y1) - max(ba.y0, bb.y0) > 0.5:
                out.append((a, b))
    return out


def test_overlap_check_catches_overlapping_text():
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.text(0.5, 0.5, "devida-dept-loreto-2017")
    ax.text(0.52, 0.5, "devida-dept-loreto-2018")
    assert text_overlaps(fig) == [("devida-dept-loreto-2017", "devida-dept-loreto-2018")]
    plt.close(fig)


def test_log_scale_only_where_values_span_more_than_ten_times():
    assert not needs_log_scale([1_000.0, 10_000.0])
    assert needs_log_scale([999.0, 10_000.0])
    assert not needs_log_scale([0.0, 14_700.0, 24_000.0])  # zero is not a value a log axis can show
    assert not needs_log_scale([])


def test_claims_chart_one_panel_per_region_series_bands_and_no_overlapping_text(real_scale):
    comparison, _, _ = real_scale
    estimates, claims = comparison["estimates"], comparison["claims"]
    fig = claims_figure(estimates, claims, synthetic=True)
    axes = [ax for ax in fig.axes if ax.get_title(loc="left")]
    names = ["Loreto", "VRAE", "Mariscal Ramón Castilla"]
    assert [ax.get_title(loc="left").split(":")[0] for ax in axes] == names
    assert fig._suptitle.get_text() == SYNTHETIC_BANNER
    groups = claim_groups(claims)
    for ax, rid in zip(axes, ("loreto", "vrae", "mariscal-ramon-castilla"), strict=True):
        mine = [e for e in estimates if e["region"] == rid]
        values = [float(c["value_ha"]) for g in groups[rid] for c in g.claims]
        values += [float(e[k]) for e in mine for k in ("area_ha", "ci95_low_ha", "ci95_high_ha")]
        assert ax.get_yscale() == ("log" if needs_log_scale(values) else "linear")
        assert len([c for c in ax.collections if c.get_gid() == f"band:{rid}"]) == len(mine)  # one CI band per run
        key = ax.get_legend()
        assert [t.get_text() for t in key.get_texts()] == [g.key_text() for g in groups[rid]]
    assert [ax.get_yscale() for ax in axes] == ["log", "linear", "log"]  # 3,000-40,000 ha; 14,700-24,000; 250-7,000
    # DEVIDA's Loreto series 2017-2024 is one line through its eight figures
    devida = next(g for g in groups["loreto"] if g.is_series and g.claims[0]["id"] == "devida-dept-loreto-2017")
    lines = [ln for ln in axes[0].lines if ln.get_gid() == f"series:loreto:{devida.number}"]
    ys = sorted({float(y) for ln in lines for y in ln.get_ydata()})
    assert ys == sorted(float(c["value_ha"]) for c in devida.claims) and len(devida.claims) == 8
    assert devida.key_text().endswith("2017-2024 (8 figures)")
    assert text_overlaps(fig) == []
    for ax in axes:  # the number labels stay inside their panel
        box = ax.get_window_extent()
        for t in ax.texts:
            b = t.get_window_extent()
            assert box.x0 <= b.x0 and b.x1 <= box.x1 and box.y0 <= b.y0 and b.y1 <= box.y1, t.get_text()
    pyplot().close(fig)


def test_claims_chart_keeps_labels_apart_when_claims_crowd_one_date():
    """Forty claims of forty sources about the same year in one region: numbered, none on another."""
    claims = [
        {"id": f"c{i}", "region": "r", "region_name": "Crowded", "kind": "point", "value_ha": 1_000.0 + 37.0 * i,
         "period_start": "2011-01-01", "period_end": "2011-12-31", "claimant": f"Source {i}", "organisation": f"Org {i}",
         "verdict": "contradicted", "reason": None, "warnings": []}
        for i in range(40)
    ]
    est = [{"region": "r", "region_name": "Crowded", "run": 0, "period": "2011-01-01/2011-12-31", "area_ha": 1_500.0,
            "ci95_low_ha": 1_300.0, "ci95_high_ha": 1_700.0}]
    fig = claims_figure(est, claims, synthetic=False)
    assert text_overlaps(fig) == []
    ax = fig.axes[0]
    assert sorted(int(t.get_text()) for t in ax.texts) == list(range(1, 41))
    pyplot().close(fig)


def test_series_are_one_source_one_kind_different_dates():
    def c(cid, year, kind="point", who="DEVIDA coca monitoring", org="DEVIDA", value=1.0):
        return {"id": cid, "region": "loreto", "kind": kind, "value_ha": value, "claimant": who, "organisation": org,
                "period_start": f"{year}-12-31", "period_end": f"{year}-12-31"}

    groups = claim_groups([c("a", 2018), c("b", 2017), c("x", 2017, kind="upper_bound"),
                           c("d", 2019, who="DEVIDA coca monitoring (revised)"), c("e", 2011, who="Someone else"),
                           c("f", 2020, org="GOREL"), c("g", 2020, org="GOREL")])["loreto"]
    members = [[x["id"] for x in g.claims] for g in groups]
    assert members == [["e"], ["b", "a", "d"], ["x"], ["f"], ["g"]]  # same date twice: not a series
    assert [g.number for g in groups] == [1, 2, 3, 4, 5] and groups[1].is_series and groups[1].span == "2017-2019"


def test_markdown_twin_has_the_headlines_and_tables(real_scale):
    comparison, _, md = real_scale
    assert md.startswith(f"> **{SYNTHETIC_BANNER}")
    assert "#### Loreto, 2011" in md and "- **contradicted**: Col. PNP Jorge Angulo" in md
    assert "| # | who | claimed | about | estimate [95 % CI] | claim ÷ estimate | source |" in md
    assert "[https://archivo.inforegion.pe/" in md
    assert json.dumps(comparison)  # still plain JSON


def test_probability_map_keeps_labels_of_nested_regions_apart(tmp_path):
    """A province drawn inside its department can share its label point; the map places them apart."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from shapely.geometry import box

    from estimator.report.figures import draw_outlines, probability_figure

    cog = tmp_path / "p.tif"
    with rasterio.open(cog, "w", driver="GTiff", width=60, height=60, count=1, dtype="float32", crs="EPSG:32718",
                       transform=from_origin(500_000, 9_000_000, 100, 100)) as dst:
        dst.write(np.random.default_rng(0).random((1, 60, 60), dtype=np.float32))
    outlines = [("loreto", box(500_500, 8_994_500, 505_500, 8_999_500)),
                ("mariscal-ramon-castilla", box(500_500, 8_994_500, 505_500, 8_999_500))]
    plt = pyplot()
    fig, ax = plt.subplots()
    draw_outlines(ax, outlines)  # labels at their points: on top of each other
    assert text_overlaps(fig) == [("loreto", "mariscal-ramon-castilla")]
    plt.close(fig)
    fig = probability_figure(cog, outlines, title="coca probability, 2011", synthetic=True)
    assert text_overlaps(fig) == [] and {t.get_text() for t in fig.axes[0].texts} == {"loreto", "mariscal-ramon-castilla"}
    plt.close(fig)
