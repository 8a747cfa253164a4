"""The hard world at full size, end to end, on one development seed (slow; CI runs it once).

A regression guard, not a tuning target: it asserts what the current pipeline reached on
development seed 1 (BENCHMARKS.md, "The decision rule and the model-based area on the hard
world": mapped coca +29 % to +87 % of the truth with the card's coca threshold; the oracle
sample's 95 % intervals covered the truth in 4 of 4 regions), with room for the randomness
of the reference sample, so that a change that makes the map or the intervals worse fails.
"""

from __future__ import annotations

import pytest

from estimator.demo.runner import run_demo

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SEED = 1  # a development seed: the report seeds (101-105) stay unseen by tests


@pytest.mark.filterwarnings("ignore:Number of classes in training fold:RuntimeWarning")
def test_hard_world_seed_1_keeps_its_area_error_and_interval_coverage(tmp_path):
    out = run_demo(tmp_path / "hard", seed=SEED, preset="hard", progress=False)
    truth = {rid: a["coca"] for rid, a in out["truth"].items()}
    mapped = {r["region"]: r["mapped_area_ha"] for r in out["mapped_records"] if r["class"] == "coca"}
    assessed = {r["region"]: r for r in out["records"] if r["class"] == "coca"}
    assert set(mapped) == set(truth) == set(assessed)
    errors = {rid: mapped[rid] / truth[rid] - 1 for rid in truth}
    # reached: +29 % to +87 %; the guard fails beyond +100 % (or a map that loses coca)
    assert all(-0.25 <= e <= 1.0 for e in errors.values()), errors
    covered = sum(a["ci95_low_ha"] <= truth[rid] <= a["ci95_high_ha"] for rid, a in assessed.items())
    assert covered >= 3, {rid: (a["ci95_low_ha"], truth[rid], a["ci95_high_ha"]) for rid, a in assessed.items()}
    # the design-based estimate is far closer than the map: median error below 25 %
    design = sorted(abs(assessed[rid]["area_ha"] / truth[rid] - 1) for rid in truth)
    assert (design[1] + design[2]) / 2 < 0.25, design
