"""The embedded default, full size: what a new user runs first (slow; CI runs it once)."""

from __future__ import annotations

import json
import shutil

import pytest

from estimator.demo.oracle import label_with_truth
from estimator.demo.runner import DEMO_SAMPLE_N, run_demo
from estimator.demo.world import load_world
from estimator.location import write_json
from estimator.run.rundir import open_run
from estimator.stats.assess import assess_run
from estimator.stats.sample import draw_sample

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo") / "demo"
    return d, run_demo(d, progress=False)


def test_default_demo_maps_coca_within_15_percent_of_truth(demo):
    _, out = demo
    checked = 0
    for r in out["mapped_records"]:
        true = out["truth"][r["region"]]["coca"] if r["class"] == "coca" else 0
        if r["class"] == "coca" and true >= 50:
            assert r["mapped_area_ha"] == pytest.approx(true, rel=0.15), r["region"]
            checked += 1
    assert checked >= 2


def test_demo_prints_estimates_with_intervals_beside_truth(demo, capsys):
    d, out = demo
    again = run_demo(d, progress=False)  # cached world, model and tiles
    printed = capsys.readouterr().out
    assert "SYNTHETIC" in printed and "reusing demo model" in printed and "in CI" in printed
    assert again["records"] == out["records"]
    for r in again["records"]:
        if r["class"] == "coca":
            assert f"{r['area_ha']:,.1f}" in printed
            assert r["estimator"] == "stratified-olofsson2014" and r["ci95_low_ha"] is not None


def test_interval_covers_true_coca_in_at_least_17_of_20_samples(demo, tmp_path):
    d, out = demo
    world = load_world(d / "world")
    scratch = tmp_path / "run"
    shutil.copytree(d / "run", scratch, ignore=shutil.ignore_patterns("tiles"))
    run = open_run(scratch)
    covered: dict[str, int] = {}
    for seed in range(20):
        write_json(tmp_path / "s.geojson", label_with_truth(draw_sample(run, n=DEMO_SAMPLE_N, seed=100 + seed), world, seed=seed))
        for r in assess_run(scratch, tmp_path / "s.geojson")["records"]:
            true = out["truth"][r["region"]]["coca"]
            if r["class"] == "coca" and true >= 50:
                covered[r["region"]] = covered.get(r["region"], 0) + (r["ci95_low_ha"] <= true <= r["ci95_high_ha"])
    print(json.dumps(covered))
    assert len(covered) >= 2 and all(v >= 17 for v in covered.values()), covered
