"""Verdicts of claims against estimates: truth tables per kind, growth CI, periods, coverage, the command."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from estimator.claims.compare import (
    NO_CI,
    Estimate,
    compare_runs,
    format_table,
    implied_growth,
    judge_area,
    judge_growth,
    period_relation,
    read_run,
)
from estimator.claims.registry import Claim
from estimator.cli.main import main
from estimator.warnings import ClaimPeriodMismatchWarning, RegionDefinitionWarning

D = dt.date


def est(area=100.0, lo=80.0, hi=120.0, f=1.0, whole=False) -> Estimate:
    return Estimate(area, lo, hi, f, whole, "stratified-olofsson2014")


# ---------------------------------------------------------------- area verdicts (CI [80, 120])

@pytest.mark.parametrize(
    ("kind", "v", "verdict"),
    [
        ("point", 80.0, "consistent"), ("point", 120.0, "consistent"), ("point", 100.0, "consistent"),
        ("point", 79.99, "contradicted"), ("point", 120.01, "contradicted"), ("point", 0.0, "contradicted"),
        ("lower_bound", 120.0, "consistent"),    # the CI reaches v
        ("lower_bound", 50.0, "consistent"),     # "no less than 50": the whole CI is above
        ("lower_bound", 120.01, "contradicted"),  # hi < v: even the top of the CI is below the bound
        ("upper_bound", 80.0, "consistent"),     # lo == v
        ("upper_bound", 500.0, "consistent"),
        ("upper_bound", 79.99, "contradicted"),   # lo > v: even the bottom of the CI is above the bound
    ],
)
def test_area_verdict_truth_table(kind, v, verdict):
    assert judge_area(kind, v, est()).verdict == verdict


@pytest.mark.parametrize(
    ("kind", "v", "verdict"),
    [
        ("point", 100.0, "inconclusive"),      # inside the CI of the observed part: the rest may add coca
        ("point", 150.0, "inconclusive"),      # above: the unobserved part may hold the difference
        ("point", 50.0, "contradicted"),       # below lo: the observed part alone exceeds the claim
        ("lower_bound", 110.0, "consistent"),  # the observed part alone may reach the bound
        ("lower_bound", 150.0, "inconclusive"),
        ("upper_bound", 50.0, "contradicted"),
        ("upper_bound", 150.0, "inconclusive"),
    ],
)
def test_partly_observed_region_only_keeps_evidence_that_survives_the_unobserved_part(kind, v, verdict):
    r = judge_area(kind, v, est(f=0.5))
    assert r.verdict == verdict
    if verdict == "inconclusive":
        assert r.reason is not None and r.reason.startswith("region only partly observed (50.0 % < 90 %)")


def test_observed_fraction_threshold_and_extrapolation():
    assert judge_area("point", 100, est(f=0.9)).verdict == "consistent"
    assert judge_area("point", 100, est(f=0.899)).verdict == "inconclusive"
    assert judge_area("point", 100, est(f=0.5), min_observed=0.4).verdict == "consistent"
    assert judge_area("point", 100, est(f=None)).verdict == "inconclusive"
    assert judge_area("point", 100, est(f=0.5, whole=True)).verdict == "consistent"  # extrapolated figure
    rec = {"area_ha": 50.0, "ci95_low_ha": 40.0, "ci95_high_ha": 60.0, "observed_fraction": 0.5, "estimator": "stehman2014",
           "coverage_policy": "extrapolated", "extrapolated_area_ha": 100.0, "extrapolated_ci95_low_ha": 60.0,
           "extrapolated_ci95_high_ha": 140.0}
    e = Estimate.from_record(rec)
    assert (e.area_ha, e.ci95_low_ha, e.ci95_high_ha, e.whole_region) == (100.0, 60.0, 140.0, True)
    withheld = Estimate.from_record(rec | {"coverage_policy": "withheld"})
    assert (withheld.area_ha, withheld.whole_region) == (50.0, False)


def test_no_ci_and_too_wide_ci_are_inconclusive_but_contradictions_stand():
    assert judge_area("point", 100, est(lo=None, hi=None)) == judge_area("upper_bound", 1, est(lo=None, hi=None))
    assert judge_area("point", 100, est(lo=None, hi=None)).reason == NO_CI
    wide = est(area=10.0, lo=0.0, hi=30.0)  # half-width 150 % of the estimate
    r = judge_area("point", 5.0, wide)
    assert r.verdict == "inconclusive" and "CI too wide" in str(r.reason)
    assert judge_area("point", 5.0, wide, max_rel_half_width=2.0).verdict == "consistent"
    assert judge_area("point", 40.0, wide).verdict == "contradicted"
    assert judge_area("lower_bound", 40.0, wide).verdict == "contradicted"
    assert judge_area("point", 0.0, est(area=0.0, lo=0.0, hi=0.0)).verdict == "consistent"  # exactly none, exactly known
    assert judge_area("point", 0.0, est(area=0.0, lo=0.0, hi=5.0)).verdict == "inconclusive"
    with pytest.raises(ValueError, match="area claim"):
        judge_area("growth_rate", 1.0, est())


# ---------------------------------------------------------------- growth

def test_implied_growth_matches_a_seeded_parametric_bootstrap():
    g = implied_growth(1000.0, 50.0, 1500.0, 60.0, years=2.0)
    assert g.percent_per_year == pytest.approx(100 * (math.sqrt(1.5) - 1))
    rng = np.random.default_rng(0)
    a1, a2 = rng.normal(1000, 50, 200_000), rng.normal(1500, 60, 200_000)
    r = 100 * ((a2 / a1) ** 0.5 - 1)
    lo, hi = np.percentile(r, [2.5, 97.5])
    assert g.ci95_low == pytest.approx(lo, abs=0.3) and g.ci95_high == pytest.approx(hi, abs=0.3)
    assert implied_growth(100.0, None, 400.0, None, 1.0) == type(g)(pytest.approx(300.0), None, None)
    with pytest.raises(ValueError):
        implied_growth(0.0, 1.0, 10.0, 1.0, 1.0)


def test_growth_verdicts():
    e1, e2 = est(100, 90, 110), est(400, 360, 440)  # x4 in one year: +300 %, CI about [+228, +389]
    v, g = judge_growth(300.0, e1, e2, 1.0)
    assert v.verdict == "consistent" and g is not None and g.ci95_low < 300 < g.ci95_high
    assert judge_growth(62.0, e1, e2, 1.0)[0].verdict == "contradicted"
    assert judge_growth(300.0, e1, est(0.0, 0.0, 5.0), 1.0) == (judge_growth(300.0, e1, est(0.0, 0.0, 5.0), 1.0)[0], None)
    assert judge_growth(300.0, e1, est(0.0, 0.0, 5.0), 1.0)[0].reason == "an estimate is zero: growth is undefined"
    v, g = judge_growth(300.0, e1, est(400, None, None), 1.0)
    assert v.reason == NO_CI and g is not None and g.ci95_low is None
    assert judge_growth(300.0, e1, est(400, 0, 1200), 1.0)[0].verdict == "inconclusive"  # relative SE > 50 %
    assert judge_growth(300.0, est(f=0.5), e2, 1.0)[0].verdict == "inconclusive"


# ---------------------------------------------------------------- periods

@pytest.mark.parametrize(
    ("claim", "run", "relation"),
    [
        ((D(2021, 12, 31), D(2021, 12, 31)), (D(2021, 9, 1), D(2022, 8, 31)), "match"),   # cut-off inside the run
        ((D(2022, 12, 31), D(2022, 12, 31)), (D(2021, 9, 1), D(2022, 8, 31)), "none"),
        ((D(2022, 8, 31), D(2022, 8, 31)), (D(2021, 9, 1), D(2022, 8, 31)), "match"),     # closed interval
        ((D(2011, 1, 1), D(2011, 12, 31)), (D(2011, 3, 1), D(2011, 9, 30)), "match"),     # run inside the year
        ((D(2022, 1, 1), D(2022, 12, 31)), (D(2021, 9, 1), D(2022, 8, 31)), "partial"),
        ((D(2011, 1, 1), D(2011, 12, 31)), (D(2021, 9, 1), D(2022, 8, 31)), "none"),
    ],
)
def test_period_relation(claim, run, relation):
    assert period_relation(claim, run) == relation


# ---------------------------------------------------------------- runs and the comparison document

def write_run(d: Path, period: str, records: list[dict], *, synthetic=False, notes=None) -> Path:
    d.mkdir(parents=True)
    recs = [
        {"class": "coca", "period": period, "estimator": "stratified-olofsson2014", "mapped_area_ha": r["area_ha"],
         "observed_fraction": 1.0, "failed_read_fraction": 0.0, "region_area_ha": 1e6, "users_accuracy": 0.9,
         "producers_accuracy": 0.8, "se_area_ha": None, "synthetic": synthetic, "region_name": r["region"].title(), **r}
        for r in records
    ]
    recs.append({**recs[0], "class": "forest", "area_ha": 9e5})
    (d / "estimates.json").write_text(json.dumps({"schema_version": 1, "period": period, "records": recs}))
    (d / "manifest.json").write_text(json.dumps({
        "period": period, "synthetic": synthetic, "model": {"id": "m", "target_class": "coca"},
        "regions": [{"id": r["region"], "name": r["region"].title(), "note": (notes or {}).get(r["region"], "")} for r in records],
    }))
    return d


def claim(cid, region="loreto", kind="point", value=10_000.0, **when) -> Claim:
    unit = "percent_per_year" if kind == "growth_rate" else "ha"
    return Claim(id=cid, region=region, region_label=str(region), kind=kind, value=value, unit=unit, claimant="c",
                 organisation="o", source="s", quote="q", status="st", **(when or {"year": 2021}))


@pytest.fixture
def two_runs(tmp_path):
    a = write_run(tmp_path / "a", "2021-01-01/2021-12-31", [{"region": "loreto", "area_ha": 10_000.0, "ci95_low_ha": 9_000.0, "ci95_high_ha": 11_000.0}])
    b = write_run(tmp_path / "b", "2022-01-01/2022-12-31", [
        {"region": "loreto", "area_ha": 14_000.0, "ci95_low_ha": 13_000.0, "ci95_high_ha": 15_000.0},
        {"region": "vraem", "area_ha": 30_000.0, "ci95_low_ha": 28_000.0, "ci95_high_ha": 32_000.0},
    ], notes={"vraem": "approximation of the DEVIDA zone"})
    return [read_run(a), read_run(b)]


def test_comparison_document(two_runs):
    claims = [
        claim("p2021", value=10_348.0, reference_date=D(2021, 12, 31)),
        claim("p2022-3x", value=42_000.0, reference_date=D(2022, 12, 31)),
        claim("lb", kind="lower_bound", value=25_000.0, year=2022),
        claim("ub", kind="upper_bound", value=3_500.0, year=2021),
        claim("old", value=3_000.0, year=2011),
        claim("g40", kind="growth_rate", value=40.0, period="2021/2022"),
        claim("g300", kind="growth_rate", value=300.0, period="2021/2022"),
        claim("vrae", region="vrae", value=19_723.0),
        claim("zone", region=None, value=100.0),
        claim("v22", region="vraem", value=31_000.0, year=2022),
    ]
    named = {"vrae": frozenset({"a"}), "vraem": frozenset({"a", "b"}), "loreto": frozenset({"16"})}
    with pytest.warns(ClaimPeriodMismatchWarning, match="1 claim"), pytest.warns(RegionDefinitionWarning, match="v22"):
        doc = compare_runs(two_runs, claims, named_units=named)
    json.dumps(doc)  # serialisable as is
    assert set(doc) >= {"schema_version", "created", "synthetic", "target_class", "runs", "estimates", "claims", "unmatched"}
    assert doc["runs"][1] | {"run_dir": ""} == {"run_dir": "", "period": "2022-01-01/2022-12-31", "period_start": "2022-01-01",
                                                "period_end": "2022-12-31", "model_id": "m", "synthetic": False}
    assert len(doc["estimates"]) == 3 and {e["region"] for e in doc["estimates"]} == {"loreto", "vraem"}
    assert set(doc["estimates"][0]) >= {"run", "region", "region_name", "period", "estimator", "area_ha", "ci95_low_ha",
                                        "ci95_high_ha", "mapped_area_ha", "observed_fraction", "failed_read_fraction",
                                        "region_area_ha", "users_accuracy", "producers_accuracy"}
    by = {c["id"]: c for c in doc["claims"]}
    assert set(by["p2021"]) >= {"id", "region", "region_name", "kind", "value_ha", "growth_percent_per_year", "original_value",
                                "original_unit", "period_start", "period_end", "claimant", "organisation", "source", "quote",
                                "status", "verdict", "reason", "ratio", "estimate", "implied_growth", "warnings"}
    assert (by["p2021"]["verdict"], by["p2021"]["estimate"]["run"]) == ("consistent", 0)
    assert by["p2021"]["ratio"] == pytest.approx(1.0348)
    assert (by["p2022-3x"]["verdict"], by["p2022-3x"]["estimate"]["run"]) == ("contradicted", 1)
    assert by["p2022-3x"]["ratio"] == pytest.approx(3.0)
    assert by["lb"]["verdict"] == "contradicted" and by["ub"]["verdict"] == "contradicted"
    old = by["old"]
    assert old["verdict"] == "inconclusive" and old["reason"].startswith("period mismatch")
    assert old["estimate"]["run"] == 0 and old["warnings"][0].startswith("period mismatch")  # the nearest run in time
    g = by["g40"]
    assert g["verdict"] == "consistent" and g["implied_growth"]["runs"] == [0, 1] and g["estimate"] is None
    assert g["implied_growth"]["percent_per_year"] == pytest.approx(40.0, abs=0.2)
    assert g["implied_growth"]["ci95_low"] < 40 < g["implied_growth"]["ci95_high"]
    assert by["g300"]["verdict"] == "contradicted" and by["g300"]["value_ha"] is None
    assert by["v22"]["verdict"] == "consistent" and "run region 'vraem': approximation" in by["v22"]["warnings"][0]
    unmatched = {u["id"]: u["reason"] for u in doc["unmatched"]}
    assert unmatched["zone"].startswith("no matching region")
    assert "region 'vrae' is not in the run(s) (regions: loreto, vraem)" in unmatched["vrae"]
    assert "vraem is a different definition" in unmatched["vrae"]
    table = format_table(doc)
    assert "p2022-3x" in table and "contradicted" in table and "SYNTHETIC" not in table
    assert "2 claim(s) not compared: 1 with no matching region, 1 about regions not in the run(s)" in table


def test_growth_needs_two_periods(two_runs):
    doc = compare_runs(two_runs[:1], [claim("g", kind="growth_rate", value=300.0, period="2021/2022")])
    c = doc["claims"][0]
    assert (c["verdict"], c["implied_growth"]) == ("inconclusive", None)
    assert c["reason"].startswith("needs runs of two periods")
    doc = compare_runs([two_runs[0], two_runs[0]], [claim("g", kind="growth_rate", value=300.0, period="2021/2022")])
    assert doc["claims"][0]["reason"].startswith("needs runs of two periods")


def test_partial_period_overlap_warns_and_judges(two_runs):
    c = claim("p", value=14_100.0, period="2022-07-01/2023-06-30")
    with pytest.warns(ClaimPeriodMismatchWarning):
        doc = compare_runs(two_runs, [c])
    got = doc["claims"][0]
    assert got["verdict"] == "consistent" and got["warnings"][0].startswith("period only partly shared")


# ---------------------------------------------------------------- the command, on a real (small, demo) run

@pytest.mark.integration
def test_compare_command_on_an_assessed_demo_run(run_copy, small_world, tmp_path, capsys):
    from estimator.demo.claims import write_demo_claims
    from estimator.demo.oracle import label_with_truth
    from estimator.location import write_json
    from estimator.run.rundir import open_run
    from estimator.stats.assess import assess_run
    from estimator.stats.sample import draw_sample

    truth = {rid: r["area_ha"]["coca"] for rid, r in json.loads(small_world.truth_path.read_text())["regions"].items()}
    claims = write_demo_claims(tmp_path / "claims.yaml", truth, small_world.spec)
    assert all("SYNTHETIC" in c["source"] for c in yaml.safe_load(claims.read_text())["claims"])

    # mapped only: no CI, every area claim is inconclusive and says how to get one
    assert main(["compare", str(run_copy), "--claims", str(claims), "--out", str(tmp_path / "mapped")]) == 0
    doc = json.loads((tmp_path / "mapped" / "comparison.json").read_text())
    assert {c["reason"] for c in doc["claims"] if c["kind"] != "growth_rate"} == {NO_CI}

    sample = label_with_truth(draw_sample(open_run(run_copy), n=900, min_per_stratum=20, seed=1), small_world, seed=1)
    write_json(tmp_path / "labeled.geojson", sample)
    assess_run(run_copy, tmp_path / "labeled.geojson")
    capsys.readouterr()
    assert main(["compare", str(run_copy), "--claims", str(claims)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("SYNTHETIC DEMO DATA")
    doc = json.loads((run_copy / "comparison.json").read_text())
    assert doc["synthetic"] is True and doc["target_class"] == "coca" and not doc["unmatched"]
    verdicts = {c["id"]: c["verdict"] for c in doc["claims"]}
    assert verdicts["demo-point-3x-truth"] == "contradicted"
    assert verdicts["demo-upper-bound-far-below"] == "contradicted"
    assert verdicts["demo-lower-bound-below-truth"] == "consistent"
    assert verdicts["demo-growth-300-percent"] == "inconclusive"
    assert verdicts["demo-point-near-truth"] in ("consistent", "inconclusive")  # a 2 % offset; small world, small sample
    for cid, v in verdicts.items():
        assert cid in out and v in out
