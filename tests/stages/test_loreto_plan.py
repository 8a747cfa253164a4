"""One grid across UTM zones: a Loreto plan from real-format items of zones 18S and 19S."""

from __future__ import annotations

import copy
import json

import mgrs
import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import box, mapping

from estimator.grid import pixel_area_m2
from estimator.regions.geometry import rasterize_regions
from estimator.regions.named import geodesic_area_ha, resolve_region
from estimator.stages.plan import make_plan

TILE_M = 109_800


def _tile_item(template: dict, tile: str, when: str) -> dict:
    """An Earth Search v1 item for MGRS ``tile``, built from a real item's shape."""
    zone = int(tile[:2])
    epsg = 32700 + zone
    lat, lon = mgrs.MGRS().toLatLon(f"{tile}0000000000")
    x0, y0 = Transformer.from_crs("EPSG:4326", epsg, always_xy=True).transform(lon, lat)
    x0, y0 = round(x0, -5), round(y0, -5)
    foot_xy = box(x0, y0, x0 + TILE_M, y0 + TILE_M)
    back = Transformer.from_crs(epsg, "EPSG:4326", always_xy=True)
    foot = shapely.transform(shapely.segmentize(foot_xy, 5000), lambda xy: np.column_stack(back.transform(xy[:, 0], xy[:, 1])))
    item = copy.deepcopy(template)
    item["id"] = f"S2B_{tile}_{when.replace('-', '')}_0_L2A"
    item["geometry"] = mapping(foot)
    item["bbox"] = list(foot.bounds)
    item["properties"].update({"proj:epsg": epsg, "grid:code": f"MGRS-{tile}", "datetime": f"{when}T15:20:00Z"})
    for a in item["assets"].values():
        if "proj:transform" in a:
            res = a["proj:transform"][0]
            a["proj:transform"] = [res, 0, x0, 0, -res, y0 + TILE_M]
    return item


@pytest.fixture(scope="module")
def loreto(shared):
    return resolve_region("loreto", shared / "real/boundaries")


def test_loreto_items_of_two_zones_land_on_one_grid(shared, loreto):
    template = json.loads((shared / "real/stac/earth_search_v1/item_S2B_24MUV_20250731_0_L2A.json").read_text())
    tiles = ["18MXA", "18MYA", "18MZA", "19MBR", "19MCR", "19MDR"]  # Iquitos westwards and the east
    items = [_tile_item(template, t, "2023-08-14") for t in tiles]
    plan = make_plan(items, [loreto], resolution=1000, crs="EPSG:32718", tile_size=256)
    assert str(plan.grid.crs) == "EPSG:32718"
    assert {plan.items[i].footprint.is_valid for i in plan.items} == {True}
    epsg_by_id = {it["id"]: it["properties"]["proj:epsg"] for it in items}
    listed = {i for t in plan.tiles for g in t.groups for i in g}
    assert {epsg_by_id[i] for i in listed} == {32718, 32719}  # both zones feed the one grid
    # the same day in two zones is one observation date, whatever the CRS
    assert len(plan.groups) == 1 and set(plan.groups[0]) == {it["id"] for it in items}
    ny, nx = plan.grid.shape.yx
    assert 800 < nx < 1000 and 900 < ny < 1100  # ~ 880 km x 970 km at 1 km


def test_loreto_true_area_on_the_one_grid(loreto):
    from estimator.grid import make_grid
    from estimator.regions.geometry import to_crs

    grid = make_grid(to_crs(loreto.geometry, "EPSG:32718"), "EPSG:32718", 500)
    mask = rasterize_regions([loreto], grid)[0]
    area_ha = float(pixel_area_m2(grid)[mask].sum()) / 1e4
    assert area_ha == pytest.approx(geodesic_area_ha(loreto.geometry), rel=0.005)
    # nominal 500 m pixels would be off by more than the true-area method, east of the zone
    assert abs(mask.sum() * 25.0 - area_ha) > abs(area_ha - geodesic_area_ha(loreto.geometry))
