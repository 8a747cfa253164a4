"""The embedded default, full size: what a new user runs first (slow; CI runs it once)."""

from __future__ import annotations

import pytest

from estimator.demo.runner import run_demo


@pytest.mark.slow
@pytest.mark.integration
def test_default_demo_estimates_coca_within_15_percent_of_truth(tmp_path, capsys):
    out = run_demo(tmp_path / "demo", progress=False)
    printed = capsys.readouterr().out
    assert "SYNTHETIC" in printed
    checked = 0
    for r in out["records"]:
        if r["class"] != "coca":
            continue
        true = out["truth"][r["region"]]["coca"]
        assert f"{r['area_ha']:,.1f}" in printed
        if true >= 50:
            assert r["area_ha"] == pytest.approx(true, rel=0.15), r["region"]
            checked += 1
    assert checked >= 2
    # a second call reuses the cached world and model, and the run's finished tiles
    again = run_demo(tmp_path / "demo", progress=False)
    assert again["records"] == out["records"]
    assert "reusing demo model" in capsys.readouterr().out
