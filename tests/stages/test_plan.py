"""Planning from real Earth Search v1 JSON: offsets, time slices, grid and tiles (no network)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from estimator.bands import REFLECTANCE_BANDS
from estimator.errors import ConfigError
from estimator.regions.geometry import Region, rasterize_regions
from estimator.stages.plan import auto_chunk_size, band_scaling, dedupe_items, group_items, item_info, make_plan

ES = "real/stac/earth_search_v1"


def _load(shared, name):
    return json.loads((shared / ES / name).read_text())


def _s2l2a_from_pages(shared):
    feats = []
    for page in ("search_cql2_cloud_lte40_page1.json", "search_cql2_cloud_lte40_page2.json"):
        feats += [f for f in _load(shared, page)["features"] if f["collection"] == "sentinel-2-l2a"]
    return feats


@pytest.mark.parametrize(
    ("name", "baseline", "offset"),
    [
        ("item_S2A_29RKH_20200219_0_L2A.json", "02.14", 0.0),
        ("item_S2A_13TDE_20231008_0_L2A.json", "05.09", -0.1),
        ("item_S2B_24MUV_20250731_0_L2A.json", "05.11", -0.1),
    ],
)
def test_offsets_follow_item_metadata(shared, name, baseline, offset):
    info = item_info(_load(shared, name))
    assert info.processing_baseline == baseline
    assert len(info.scaling) == len(REFLECTANCE_BANDS)
    for scale, off in info.scaling:
        assert scale == pytest.approx(1e-4)
        assert off == pytest.approx(offset)


def test_offset_from_baseline_when_metadata_has_no_scaling(shared):
    """Planetary Computer style: no scale/offset in raster:bands, baseline decides (not the date)."""
    item = _load(shared, "item_S2A_29RKH_20200219_0_L2A.json")
    for a in item["assets"].values():
        for rb in a.get("raster:bands", []):
            rb.pop("scale", None)
            rb.pop("offset", None)
    assert band_scaling(item, "red") == (pytest.approx(1e-4), 0.0)
    reprocessed = copy.deepcopy(item)  # an old acquisition reprocessed with baseline 05.00
    reprocessed["properties"]["s2:processing_baseline"] = "05.00"
    assert band_scaling(reprocessed, "red") == (pytest.approx(1e-4), pytest.approx(-0.1))
    item["properties"]["s2:processing_baseline"] = "10.01"  # compare as numbers, not strings
    assert band_scaling(item, "red")[1] == pytest.approx(-0.1)


def test_missing_band_asset_is_a_clear_error(shared):
    item = _load(shared, "item_S2A_29RKH_20200219_0_L2A.json")
    del item["assets"]["swir22"]
    with pytest.raises(ConfigError, match="swir22"):
        item_info(item)


def test_same_solar_day_tiles_form_one_time_slice(shared):
    feats = _s2l2a_from_pages(shared)
    assert len(feats) >= 5
    groups = group_items(item_info(f) for f in feats)
    # all acquired 2025-07-31 over NE Brazil with the same offset: one observation date
    assert len(groups) == 1
    assert sorted(groups[0]) == sorted(f["id"] for f in feats)


def test_duplicate_scenes_keep_the_highest_baseline(shared):
    """The original and a reprocessed copy of one acquisition must not count twice."""
    old = _load(shared, "item_S2A_29RKH_20200219_0_L2A.json")
    new = copy.deepcopy(old)
    new["id"] = "S2A_29RKH_20200219_1_L2A"
    new["properties"]["s2:processing_baseline"] = "05.00"
    for a in new["assets"].values():
        for rb in a.get("raster:bands", []):
            if "offset" in rb:
                rb["offset"] = -0.1
    other_tile = copy.deepcopy(old)
    other_tile["id"] = "S2A_29RKJ_20200219_0_L2A"
    other_tile["properties"]["grid:code"] = "MGRS-29RKJ"
    kept, dropped = dedupe_items(item_info(i) for i in (old, new, other_tile))
    assert dropped == {old["id"]: new["id"]}
    assert {i.id for i in kept} == {new["id"], other_tile["id"]}
    c = shapely.geometry.shape(old["geometry"]).centroid
    plan = make_plan([old, new], [Region("r", box(c.x - 0.01, c.y - 0.01, c.x + 0.01, c.y + 0.01))], resolution=100)
    assert list(plan.items) == [new["id"]] and plan.duplicates == {old["id"]: new["id"]}
    assert plan.groups == ((new["id"],),)


def test_slices_split_on_scaling_and_day(shared):
    old = _load(shared, "item_S2A_29RKH_20200219_0_L2A.json")
    new = copy.deepcopy(old)
    new["id"] = "neighbour-tile-other-baseline"
    new["properties"]["grid:code"] = "MGRS-29RKJ"
    for a in new["assets"].values():
        for rb in a.get("raster:bands", []):
            if "offset" in rb:
                rb["offset"] = -0.1
    later = copy.deepcopy(old)
    later["id"] = "later"
    later["properties"]["datetime"] = "2020-02-24T11:25:00Z"
    groups = group_items(item_info(i) for i in (later, new, old))
    # same day but another offset: separate slices (each slice has one scaling)
    assert sorted(map(set, groups[:2]), key=str) == sorted([{old["id"]}, {"neighbour-tile-other-baseline"}], key=str)
    assert groups[2] == ("later",)


def test_plan_grid_and_tiles_from_real_items(shared):
    feats = _s2l2a_from_pages(shared)
    footprint = shapely.union_all([shapely.geometry.shape(f["geometry"]) for f in feats])
    c = footprint.centroid
    region = Region("r1", box(c.x - 0.05, c.y - 0.05, c.x + 0.05, c.y + 0.05))
    plan = make_plan(feats, [region], resolution=10, tile_size=256, chunk_size=128)
    assert str(plan.grid.crs) == "EPSG:32724"  # UTM 24S, like the items
    ny, nx = plan.grid.shape.yx
    assert 1100 <= ny <= 1130 and 1080 <= nx <= 1130  # ~0.1 degree at 10 m
    assert plan.grid.affine.c % 10 == 0 and plan.grid.affine.f % 10 == 0  # snapped to the pixel grid
    assert len(plan.tiles) == len({t.id for t in plan.tiles}) == 25  # 5 x 5 tiles of 256 px
    from estimator.regions.geometry import to_crs

    for t in plan.tiles:
        tile_box = shapely.box(*t.geobox.boundingbox)
        listed = {i for g in t.groups for i in g}
        touching = {k for k, v in plan.items.items() if to_crs(v.footprint, "EPSG:32724").intersects(tile_box)}
        assert listed == touching  # a tile lists exactly the scenes that touch it
    assert plan.chunk_size == 128


def test_plan_drops_tiles_outside_the_regions(shared):
    feats = _s2l2a_from_pages(shared)
    c = shapely.geometry.shape(feats[0]["geometry"]).centroid
    # an L-shaped pair of small squares: tiles in the empty corner are skipped
    a = box(c.x - 0.05, c.y - 0.05, c.x - 0.03, c.y - 0.03)
    b = box(c.x + 0.03, c.y + 0.03, c.x + 0.05, c.y + 0.05)
    plan = make_plan(feats, [Region("a", a), Region("b", b)], resolution=10, tile_size=256)
    gy, gx = plan.grid.shape.yx
    all_tiles = -(-gy // 256) * -(-gx // 256)
    assert 0 < len(plan.tiles) < all_tiles




@settings(max_examples=40, deadline=None)
@given(
    w=st.floats(0.005, 0.08), h=st.floats(0.005, 0.08), tile=st.sampled_from([64, 100, 256]),
    res=st.sampled_from([10.0, 20.0]),
)
def test_tiles_partition_the_grid_over_the_area(w, h, tile, res):
    """Chunking invariant: kept tiles never overlap, align with the grid, and cover every
    grid pixel whose cell meets the area."""
    area = box(-74.2, -12.6, -74.2 + w, -12.6 + h)
    plan = make_plan([], area, resolution=res, tile_size=tile)
    g = plan.grid.affine
    ny, nx = plan.grid.shape.yx
    covered = 0
    seen = set()
    for t in plan.tiles:
        a = t.geobox.affine
        r0, c0 = round((a.f - g.f) / g.e), round((a.c - g.c) / g.a)
        assert (a.a, a.e) == (g.a, g.e)
        assert r0 % tile == 0 and c0 % tile == 0
        assert (r0, c0) not in seen
        seen.add((r0, c0))
        ty, tx = t.geobox.shape.yx
        assert ty <= tile and tx <= tile and r0 + ty <= ny and c0 + tx <= nx
        covered += ty * tx
    assert covered <= ny * nx
    # every pixel whose centre lies in the area is inside a kept tile
    inside = rasterize_regions([Region("a", area)], plan.grid)[0]
    kept = np.zeros((ny, nx), dtype=bool)
    for r0, c0 in seen:
        kept[r0 : r0 + tile, c0 : c0 + tile] = True
    assert inside.any() and not (inside & ~kept).any()


def test_chunk_size_shrinks_with_the_number_of_dates():
    assert auto_chunk_size(512, 12) == 512
    assert auto_chunk_size(1024, 12) < 1024
    small = auto_chunk_size(1024, 80)
    assert 128 <= small < 1024 and small % 64 == 0
    assert small**2 * 80 * 122 <= 768 * 2**20
    assert auto_chunk_size(1024, 100000) == 128
