"""The smaller gaps of the bad-input matrix: repaired regions and uncovered regions are
said out loud, and ids cannot break a Markdown table."""

from __future__ import annotations

import json

import pytest
from shapely.geometry import box, mapping

from estimator.regions.geometry import Region, load_regions
from estimator.report.document import Table, render_md
from estimator.stages.plan import warn_uncovered_regions
from estimator.warnings import RegionGeometryWarning, SceneCoverageWarning


def test_a_bow_tie_region_is_repaired_with_a_warning(tmp_path):
    bow_tie = {"type": "Polygon", "coordinates": [[[-74, -12], [-73, -11], [-73, -12], [-74, -11], [-74, -12]]]}
    p = tmp_path / "regions.geojson"
    p.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"region_id": "bow"}, "geometry": bow_tie}]}))
    with pytest.warns(RegionGeometryWarning, match="region bow is not a valid polygon.*Self-intersection"):
        (region,) = load_regions(p, "region_id")
    assert region.geometry.is_valid and region.geometry.area == pytest.approx(0.5)


def test_regions_no_scene_touches_are_named():
    items = [{"geometry": mapping(box(-75, -13, -74, -12))}]
    regions = [Region("seen", box(-74.5, -12.5, -74.4, -12.4)), Region("far", box(-60, -5, -59, -4))]
    with pytest.warns(SceneCoverageWarning, match="region\\(s\\) far:"):
        assert warn_uncovered_regions(regions, items) == ["far"]


@pytest.mark.parametrize("value", ["a|b", "north\nsouth", "x\n|y", "|", "plain"])
def test_an_id_never_breaks_a_markdown_table(value):
    md = render_md([Table(("region", "ha"), [(value, "1.0")])], {})
    rows = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(rows) == 3  # head, rule, one row: no line break inside the cell
    assert all(ln.replace("\\|", "").count("|") == 3 for ln in rows)  # two cells, however the id reads


_COMMANDS = [
    ("estimator", []), ("estimator", ["run"]), ("estimator", ["plan"]), ("estimator", ["sample"]), ("estimator", ["assess"]),
    ("estimator", ["compare"]), ("estimator", ["demo"]), ("estimator", ["demo", "serve"]), ("training", ["fit"]),
    ("training", ["labels", "add"]),
]


@pytest.mark.parametrize(("module", "cmd"), _COMMANDS, ids=[" ".join([m, *c]) for m, c in _COMMANDS])
def test_help_prints_examples_as_written(module, cmd, capsys):
    from estimator.cli.main import build_parser as estimator_parser
    from training.cli import build_parser as training_parser

    parser = estimator_parser() if module == "estimator" else training_parser()
    with pytest.raises(SystemExit) as e:
        parser.parse_args([*cmd, "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert "examples:" in out and f"python -m {module}" in out
    assert "%%" not in out  # a literal percent sign, not argparse's escape
    assert "configs/training/" not in out  # no example names a file that does not exist
