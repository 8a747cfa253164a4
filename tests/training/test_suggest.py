"""Active-learning suggestions: numpy kernels on small seeded arrays, then the demo run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree
from shapely import from_wkt
from shapely.geometry import Point

from estimator.errors import EstimatorError
from estimator.run.rundir import open_run
from training.cli import main
from training.suggest import Candidates, allocate_regions, block_candidates, select_spaced, suggest, uncertainty

RES = (10.0, -10.0)


def _candidates(n: int, seed: int = 0, shape: tuple[int, int] = (200, 200), regions: int = 1) -> Candidates:
    rng = np.random.default_rng(seed)
    flat = rng.choice(shape[0] * shape[1], size=n, replace=False)
    rows, cols = np.divmod(flat, shape[1])
    p = rng.random(n)
    return Candidates(
        rows,
        cols,
        rng.integers(0, regions, n),
        p,
        uncertainty(p),
        rng.random(n),
        np.ones(n, dtype=np.int64),
        np.full(n, 5),
    )


def test_uncertainty_peaks_at_the_decision_boundary():
    u = uncertainty(np.array([0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0, np.nan]))
    np.testing.assert_allclose(u[:7], [0, 0.2, 0.6, 1, 0.6, 0.2, 0])
    assert np.isnan(u[7])


def test_block_candidates_keep_the_most_uncertain_pixel_per_cell():
    rng = np.random.default_rng(3)
    prob = rng.random((40, 40)).astype(np.float32)
    prob[5, 7] = 0.5  # the best pixel of cell (0, 0) with cell = 10
    prob[:, 35:] = np.nan  # not classified
    region = np.zeros((40, 40), dtype=np.int64)
    region[30:, :] = -1  # outside every region
    code = np.ones((40, 40), dtype=np.uint8)
    code[0, :] = 0  # unobserved
    c = block_candidates(prob, region, code, np.full((40, 40), 9), cell=10, row_off=100, col_off=200, rng=rng)
    cells = set(zip((c.rows - 100) // 10, (c.cols - 200) // 10, strict=True))
    assert len(cells) == c.rows.size == 3 * 4  # one per cell; rows 30+ are outside
    assert (100 + 5, 200 + 7) in set(zip(c.rows, c.cols, strict=True))
    assert ((c.rows - 100) < 30).all() and ((c.cols - 200) < 35).all() and (c.rows > 100).all()
    u = uncertainty(prob)
    for r, col, s in zip(c.rows - 100, c.cols - 200, c.score, strict=True):
        r0, c0 = r // 10 * 10, col // 10 * 10
        window = np.where((code > 0) & (region >= 0), u, -1)[r0 : r0 + 10, c0 : min(c0 + 10, 35)]
        assert s == pytest.approx(np.nanmax(window))


def test_selection_ranks_by_uncertainty_without_spacing():
    c = _candidates(500)
    picked = select_spaced(c, [20], 0.0, RES)
    assert picked.size == 20
    assert c.score[picked].min() >= np.sort(c.score)[-20]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 60), dist=st.floats(0, 500))
def test_selection_respects_minimum_distance_and_quotas(seed, n, dist):
    c = _candidates(400, seed, regions=3)
    quota = allocate_regions([1.0, 2.0, 3.0], np.bincount(c.region, minlength=3), n, 2)
    picked = select_spaced(c, quota, dist, RES)
    assert (np.bincount(c.region[picked], minlength=3) <= quota).all()
    if picked.size > 1:
        xy = np.c_[c.cols[picked], c.rows[picked]] * 10.0
        d, _ = cKDTree(xy).query(xy, k=2)
        assert d[:, 1].min() >= dist
    np.testing.assert_array_equal(picked, select_spaced(c, quota, dist, RES))  # deterministic


@settings(max_examples=100, deadline=None)
@given(
    weights=st.lists(st.floats(0, 1e6), min_size=1, max_size=8),
    caps=st.lists(st.integers(0, 300), min_size=8, max_size=8),
    n=st.integers(1, 1000),
    minimum=st.integers(0, 50),
)
def test_region_allocation_sums_to_n_within_caps(weights, caps, n, minimum):
    caps = caps[: len(weights)]
    a = allocate_regions(weights, caps, n, minimum)
    assert a.sum() == min(n, sum(caps))
    assert (a >= 0).all() and (a <= np.array(caps)).all()
    floor = min(minimum, min(n, sum(caps)) // max(sum(c > 0 for c in caps), 1))
    assert (a >= np.minimum(caps, floor)).all()


def test_allocation_follows_weights_with_a_minimum():
    np.testing.assert_array_equal(allocate_regions([1, 1, 8], [1000] * 3, 100, 0), [10, 10, 80])
    np.testing.assert_array_equal(allocate_regions([1, 1, 98], [1000] * 3, 100, 10), [10, 10, 80])
    np.testing.assert_array_equal(allocate_regions([5, 5, 90], [3, 1000, 1000], 100, 10), [3, 10, 87])
    assert allocate_regions([1, 2, 3], [10, 10, 10], 2, 10).sum() == 2  # fewer points than regions


def _validate_geojson(fc):
    """RFC 7946: a FeatureCollection of Features with lon/lat Point geometries and no `crs`."""
    assert fc["type"] == "FeatureCollection" and "crs" not in fc
    for f in fc["features"]:
        assert f["type"] == "Feature" and isinstance(f["properties"], dict)
        assert f["geometry"]["type"] == "Point"
        lon, lat = f["geometry"]["coordinates"]
        assert -180 <= lon <= 180 and -90 <= lat <= 90
        foot = from_wkt(f["properties"]["pixel_wkt"])
        assert foot.is_valid and foot.exterior.is_ccw and foot.contains(Point(lon, lat))


def test_suggestions_on_the_demo_run(run_copy):
    run = open_run(run_copy)
    # 30 points at 200 m: the small world (3 km square) holds few spaced uncertain pixels.
    fc = suggest(run, 30, min_distance_m=200, seed=0)
    json.loads(json.dumps(fc))  # plain JSON
    _validate_geojson(fc)
    props = [f["properties"] for f in fc["features"]]
    assert len(props) == 30 and fc["suggest"]["synthetic"] is True
    assert sorted(p["rank"] for p in props) == list(range(1, 31))
    assert len({p["plot_id"] for p in props}) == 30
    assert all(p["class"] is None and p["observed"] is None and p["interpreter"] is None for p in props)
    assert all(p["source"] == f"suggest:{run.manifest['model']['id']}" and p["synthetic"] for p in props)
    regions = fc["suggest"]["regions"]
    assert [r["suggested"] for r in regions] == [10, 10, 10]

    rows = np.array([p["row"] for p in props])
    cols = np.array([p["col"] for p in props])
    xy = np.c_[cols, rows] * 10.0
    assert cKDTree(xy).query(xy, k=2)[0][:, 1].min() >= 200
    block = next(run.blocks())
    assert block.codes.shape == run.grid.shape.yx  # the small run is one block
    ids = [r.id for r in run.regions]
    for p in props:
        assert block.regions[ids.index(p["region"]), p["row"], p["col"]]
        assert block.codes[p["row"], p["col"]] > 0
        assert run.classes[block.codes[p["row"], p["col"]] - 1] == p["class_mapped"]

    # More uncertain than a random sample of observed pixels inside the regions.
    with rasterio.open(run_copy / "maps/coca_probability.tif") as src:
        u = uncertainty(src.read(1))
    observed = (block.codes > 0) & block.regions.any(axis=0) & np.isfinite(u)
    random = np.random.default_rng(0).choice(u[observed], size=300, replace=False)
    mean_s = float(np.mean([p["uncertainty"] for p in props]))
    assert mean_s > 0.7 and mean_s > 20 * u[observed].mean() and mean_s > 20 * random.mean()
    np.testing.assert_allclose([p["uncertainty"] for p in props], u[rows, cols], atol=1e-5)

    again = suggest(run, 30, min_distance_m=200, seed=0)
    assert [f["properties"]["plot_id"] for f in again["features"]] == [p["plot_id"] for p in props]
    assert [f["geometry"] for f in again["features"]] == [f["geometry"] for f in fc["features"]]


def test_planted_uncertain_pixels_and_assessed_se_drive_the_choice(run_copy):
    path = run_copy / "maps/coca_probability.tif"
    with rasterio.open(path) as src:
        profile, p = src.profile, src.read(1)
    run = open_run(run_copy)
    block = next(run.blocks())
    south = block.regions[[r.id for r in run.regions].index("south")] & (block.codes > 0)
    rr, cc = np.nonzero(south)
    planted = [(rr[i], cc[i]) for i in np.linspace(0, rr.size - 1, 5).astype(int)]
    p = np.where(np.isfinite(p), np.round(p), np.nan).astype(np.float32)  # nothing uncertain...
    for r, c in planted:
        p[r, c] = 0.5  # ...but these five
    profile.pop("blocksize", None)
    with rasterio.open(path, "w", **{**profile, "driver": "GTiff"}) as dst:
        dst.write(p, 1)
    fc = suggest(open_run(run_copy), 20, min_distance_m=0)
    got = {(f["properties"]["row"], f["properties"]["col"]) for f in fc["features"]}
    assert got == {(int(r), int(c)) for r, c in planted}
    assert {f["properties"]["region"] for f in fc["features"]} == {"south"}

    p[:] = np.where(np.isfinite(p), 1.0, np.nan)
    with rasterio.open(path, "w", **{**profile, "driver": "GTiff"}) as dst:
        dst.write(p, 1)
    with pytest.raises(EstimatorError, match="no uncertain pixel"):
        suggest(open_run(run_copy), 20)


def test_se_area_weights_the_allocation(run_copy):
    base = suggest(open_run(run_copy), 60, min_distance_m=50, seed=1)["suggest"]["regions"]
    est = json.loads((run_copy / "estimates.json").read_text())
    for rec in est["records"]:
        if rec["region"] == "north" and rec["class"] == "coca":
            rec["se_area_ha"] = 1000.0
    (run_copy / "estimates.json").write_text(json.dumps(est))
    boosted = suggest(open_run(run_copy), 60, min_distance_m=50, seed=1)["suggest"]["regions"]
    assert boosted[0]["region"] == "north" and boosted[0]["se_area_ha"] == 1000
    assert boosted[0]["allocated"] > base[0]["allocated"]
    assert all(r["allocated"] >= 10 for r in boosted)


def test_cli(run_copy, tmp_path, capsys):
    out = tmp_path / "to_label.geojson"
    assert main(["suggest", str(run_copy), "--n", "30", "--per-region", "--out", str(out), "--quiet"]) == 0
    fc = json.loads(out.read_text())
    _validate_geojson(fc)
    assert [r["suggested"] for r in fc["suggest"]["regions"]] == [10, 10, 10]
    text = capsys.readouterr().out
    assert "30 of 30 suggestions" in text and "SYNTHETIC" in text and "south" in text
    for argv, msg in (
        (["suggest", str(tmp_path / "nope"), "--n", "5"], "not a finished run directory"),
        (["suggest", str(run_copy), "--n", "0"], "--n must be at least 1"),
        (["suggest", str(run_copy), "--n", "5", "--min-distance-m", "-3"], "--min-distance-m"),
    ):
        assert main([*argv, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1


def test_streaming_in_small_blocks_gives_the_same_points(run_copy, monkeypatch):
    import training.suggest

    def points(fc):
        return sorted((f["properties"]["row"], f["properties"]["col"]) for f in fc["features"])

    one = suggest(open_run(run_copy), 30, min_distance_m=100)
    monkeypatch.setattr(training.suggest, "_BLOCK", 40)  # 302 px -> 64 windows of 35 px (cell 7)
    assert points(suggest(open_run(run_copy), 30, min_distance_m=100)) == points(one)


def test_labeled_suggestions_go_back_through_labels_add(run_copy, tmp_path):
    from training.labels import read_label_file

    fc = suggest(open_run(run_copy), 12, min_distance_m=100)
    for f in fc["features"]:
        f["properties"].update(
            {"class": f["properties"]["class_mapped"], "observed": "2024-05-01", "interpreter": "ana"}
        )
    (tmp_path / "labeled.geojson").write_text(json.dumps(fc))
    batch = read_label_file(tmp_path / "labeled.geojson")
    assert batch.counts()["accepted"] == 12 and batch.counts()["without_interpreter"] == 0
    assert {p.plot_id for p in batch.plots} == {f["properties"]["plot_id"] for f in fc["features"]}
    assert {p.source for p in batch.plots} == {f"suggest:{fc['suggest']['model_id']}"}
