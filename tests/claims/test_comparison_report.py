"""The comparison report (HTML and Markdown) from a comparison of the small demo run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from estimator.claims.report import HTML_NAME, MD_NAME, write_comparison_reports
from estimator.synthetic import SYNTHETIC_BANNER

NASTY_QUOTE = 'no menos de 25,000 "ha" <script>alert(1)</script> & | más'


def comparison_for(run_dir: Path, *, second_period: bool = True) -> dict[str, Any]:
    """A comparison of ``run_dir`` (and, optionally, the same run relabeled as a later period
    with 1.5x the areas) with claims of every kind and verdict, as `estimator compare` writes it."""
    est = json.loads((run_dir / "estimates.json").read_text())
    period = est["period"]
    runs = [{"run_dir": str(run_dir), "period": period, "period_start": period[:10], "period_end": period[11:],
             "model_id": est["model_id"], "synthetic": True}]
    if second_period:
        runs.append({**runs[0], "period": "2022-09-01/2023-08-31", "period_start": "2022-09-01", "period_end": "2023-08-31"})
    keys = ("region", "region_name", "period", "estimator", "area_ha", "ci95_low_ha", "ci95_high_ha", "mapped_area_ha",
            "observed_fraction", "failed_read_fraction", "region_area_ha", "users_accuracy", "producers_accuracy")
    estimates = []
    for i, run in enumerate(runs):
        scale = 1.0 + 0.5 * i
        for r in est["records"]:
            if r["class"] != "coca":
                continue
            e = {k: r.get(k) for k in keys} | {"run": i, "period": run["period"]}
            for k in ("area_ha", "ci95_low_ha", "ci95_high_ha", "mapped_area_ha"):
                e[k] = None if e[k] is None else e[k] * scale
            estimates.append(e)
    first = {e["region"]: e for e in estimates if e["run"] == 0}
    reg = [*first] * 3  # regions 0, 1, 2 (repeated when the run has fewer)

    def claim(cid: str, region: str, kind: str, value: float | None, verdict: str, **kw: Any) -> dict[str, Any]:
        e = first[region]
        return {
            "id": cid, "region": region, "region_name": e["region_name"], "kind": kind, "value_ha": value,
            "growth_percent_per_year": None, "original_value": value, "original_unit": "ha",
            "period_start": runs[0]["period_start"], "period_end": runs[0]["period_end"],
            "claimant": "Demo claimant", "organisation": "Demo regional government (SYNTHETIC)",
            "source": "https://example.org/news/1", "quote": "about 40,000 ha", "status": "demo",
            "verdict": verdict, "reason": None, "ratio": None if value is None else value / e["area_ha"],
            "estimate": {"run": 0, "area_ha": e["area_ha"], "ci95_low_ha": e["ci95_low_ha"],
                         "ci95_high_ha": e["ci95_high_ha"], "estimator": e["estimator"]},
            "implied_growth": None, "warnings": [],
        } | kw

    claims = [
        claim("demo-point-high", reg[1], "point", 40_000.0, "contradicted", reason="far above the 95 % interval"),
        claim("demo-point-ok", reg[0], "point", first[reg[0]]["area_ha"] * 1.1, "consistent"),
        claim("demo-at-least", reg[1], "lower_bound", 25_000.0, "contradicted", quote=NASTY_QUOTE,
              source="javascript:alert(1)", warnings=["claim period differs from the estimate's"]),
        claim("demo-at-most", reg[2], "upper_bound", 3_000.0, "consistent"),
        claim("demo-growth", reg[1], "growth_rate", None, "inconclusive", growth_percent_per_year=12.0,
              original_unit="%/yr", original_value=12, ratio=None, estimate=None,
              implied_growth={"percent_per_year": 50.0, "ci95_low": -20.0, "ci95_high": 160.0, "runs": [0, 1]},
              reason="the interval includes the claim"),
    ]
    return {"schema_version": 1, "created": "2026-01-01T00:00:00+00:00", "synthetic": True, "target_class": "coca",
            "runs": runs, "estimates": estimates, "claims": claims,
            "unmatched": [{"id": "demo-elsewhere", "reason": "region not in any run"}]}


def _render(comparison: dict[str, Any], out: Path) -> tuple[str, str, list[Path]]:
    paths = write_comparison_reports(comparison, out)
    return (out / HTML_NAME).read_text(), (out / MD_NAME).read_text(), paths


@pytest.mark.integration
def test_report_shows_claims_tables_maps_and_is_self_contained(run_copy, small_world, tmp_path):
    from estimator.demo.oracle import label_with_truth
    from estimator.location import write_json
    from estimator.run.rundir import open_run
    from estimator.stats.assess import assess_run
    from estimator.stats.sample import draw_sample

    sample = label_with_truth(draw_sample(open_run(run_copy), n=300, min_per_stratum=10, seed=1), small_world, seed=1)
    write_json(tmp_path / "lab.geojson", sample)
    assess_run(run_copy, tmp_path / "lab.geojson")
    comparison = comparison_for(run_copy)
    html, md, paths = _render(comparison, tmp_path / "cmp")
    assert [p.name for p in paths[:2]] == [HTML_NAME, MD_NAME] and all(p.is_file() for p in paths)
    for c in comparison["claims"]:
        assert c["id"] in html and c["id"] in md
    for word in ("contradicted", "consistent", "inconclusive"):
        assert f'class="verdict-{word}"' in html
    # banner at the top, per run, and at the bottom; charts carry it inside the image
    assert html.count(SYNTHETIC_BANNER) >= 2 + len(comparison["runs"])
    assert md.startswith(f"> **{SYNTHETIC_BANNER}")
    for anchor in ("summary", "claims", "verdicts", "unmatched", "maps", "coverage", "accuracy", "provenance"):
        assert f'id="{anchor}"' in html
    for img in ("claims", "map_run0", "map_run1"):
        assert re.search(rf'<img id="{img}" alt="[^"]*" src="data:image/png;base64,', html), img
        assert f"(report_{img}.png)" in md and (tmp_path / "cmp" / f"report_{img}.png").is_file()
    for table in ("verdicts", "coverage", "accuracy"):
        assert f'<table class="{table} stack">' in html
    assert "stratified-olofsson2014" in html and "user&#x27;s accuracy" in html and " ± " in html
    assert "Scene ids (" in html and "Job config" in html and "<details>" in html
    # plain language, numbers from the comparison
    e = comparison["estimates"][1]
    assert "Imagery supports" in html and "times the estimate" in html
    assert "said at least 25,000 ha" in html and "said at most 3,000 ha" in html
    assert re.search(r"<td[^>]*>demo-elsewhere</td><td[^>]*>region not in any run</td>", html)
    # nothing loaded from anywhere: only the claim's source is a link, quotes are escaped
    assert "default-src &#x27;none&#x27;" not in html and "default-src 'none'" in html
    assert not re.search(r"<script|<link|<iframe|<object|@import|url\(", html, flags=re.IGNORECASE)
    srcs = re.findall(r'\ssrc="([^"]*)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert set(re.findall(r'href="([^"#][^"]*)"', html)) == {"https://example.org/news/1"}
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "javascript:alert(1)" not in re.findall(r'href="([^"]*)"', html)
    assert "<script>" not in md and "\\|" in md
    assert e["region_name"] in md and "| # | who | claimed |" in md and "said at least 25,000 ha" in md
    # every figure of the page, drawn again: no two texts overlap
    from estimator.regions.geometry import to_crs
    from estimator.report.figures import claims_figure, probability_figure, pyplot

    from .test_report_scale import text_overlaps

    run = open_run(run_copy)
    outlines = [(g.id, to_crs(g.geometry, str(run.grid.crs))) for g in run.regions]
    for fig in (claims_figure(comparison["estimates"], comparison["claims"], synthetic=True),
                probability_figure(run_copy / "maps" / "coca_probability.tif", outlines, title="t", synthetic=True)):
        assert text_overlaps(fig) == []
        pyplot().close(fig)


def test_report_without_run_directories_still_renders(tmp_path):
    """A comparison moved away from its runs: text and tables, and a note where the maps were."""
    run = tmp_path / "gone"
    (run).mkdir()
    (run / "estimates.json").write_text(json.dumps({
        "period": "2021-09-01/2022-08-31", "model_id": "m", "records": [
            {"region": "r1", "region_name": "Region one", "class": "coca", "estimator": "mapped", "area_ha": 120.0,
             "ci95_low_ha": None, "ci95_high_ha": None, "mapped_area_ha": 120.0, "observed_fraction": 0.62,
             "failed_read_fraction": 0.01, "region_area_ha": 1000.0}]}))
    comparison = comparison_for(run, second_period=False)
    comparison["claims"] = [c for c in comparison["claims"] if c["region"] == "r1" and c["kind"] != "growth_rate"]
    html, _, paths = _render(comparison, tmp_path / "out")
    assert "No probability map to show for 1 run(s)" in html and "not a finished run directory" in html
    assert "The classifier maps 120 ha" in html and "62 % of the region seen clear" in html
    assert "No labeled reference sample" in html
    assert 'id="timeseries"' not in html
    assert [p.name for p in paths] == [HTML_NAME, MD_NAME, "report_claims.png"]
