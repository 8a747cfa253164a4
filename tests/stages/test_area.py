"""Area arithmetic: true ground area per pixel, region rasterization, per-tile sums."""

from __future__ import annotations

import numpy as np
import pytest
from odc.geo.geobox import GeoBox
from pyproj import Geod, Proj
from shapely.geometry import Polygon, box

from estimator.grid import make_grid, pixel_area_m2, utm_crs_for
from estimator.regions.geometry import Region, rasterize_regions, to_crs
from estimator.stages.aggregate import RegionSums, TilePartial, aggregate_tile, failed_tile, reduce_partials

GEOD = Geod(ellps="WGS84")


def test_utm_zone_lookup():
    assert utm_crs_for(-74.1, -12.6) == "EPSG:32718"  # VRAEM
    assert utm_crs_for(-70.5, -4.0) == "EPSG:32719"  # eastern Loreto
    assert utm_crs_for(10.0, 45.0) == "EPSG:32632"


def test_pixel_area_at_central_meridian_and_off_it():
    # UTM 18S central meridian is -75; scale k0 = 0.9996, so a 10 m pixel is 100/k0^2 m^2.
    cm = GeoBox.from_bbox((500000 - 50, 8600000 - 50, 500000 + 50, 8600000 + 50), "EPSG:32718", resolution=10)
    a = pixel_area_m2(cm)
    assert a.shape == (10, 10)
    assert a.mean() == pytest.approx(100 / 0.9996**2, rel=2e-5)
    # ~330 km east of the meridian the projection stretches: ground area per pixel shrinks
    east = GeoBox.from_bbox((830000, 8600000, 830100, 8600100), "EPSG:32718", resolution=10)
    lon, lat = Proj("EPSG:32718")(830050, 8600050, inverse=True)
    k = Proj("EPSG:32718").get_factors(lon, lat).areal_scale
    assert pixel_area_m2(east).mean() == pytest.approx(100 / k, rel=1e-5)
    assert pixel_area_m2(east).mean() < 99.9


def test_pixel_area_geographic_grid_matches_geodesic_cell():
    gb = GeoBox.from_bbox((-74.0, -12.0, -73.99, -11.99), "EPSG:4326", resolution=0.001)
    a = pixel_area_m2(gb)
    cell = abs(GEOD.polygon_area_perimeter([-74.0, -73.999, -73.999, -74.0], [-12.0, -12.0, -11.999, -11.999])[0])
    assert a[-1, 0] == pytest.approx(cell, rel=1e-6)
    assert a[0, 0] > a[-1, 0]  # row 0 is the northern edge, nearer the equator: larger cells


@pytest.mark.parametrize("lon", [-75.0, -72.4, -69.2])  # central meridian, mid-zone, far side of zone 18
def test_rasterized_region_true_area_matches_geodesic_polygon_area(lon):
    poly = Polygon([(lon, -5.0), (lon + 0.05, -5.01), (lon + 0.06, -4.95), (lon + 0.01, -4.94)])
    region = Region("r", poly)
    crs = "EPSG:32718"
    grid = make_grid(to_crs(poly, crs), crs, 10)
    mask = rasterize_regions([region], grid)[0]
    est = pixel_area_m2(grid)[mask].sum()
    true = abs(GEOD.geometry_area_perimeter(poly)[0])
    assert est == pytest.approx(true, rel=0.005)
    nominal = mask.sum() * 100.0
    if lon > -70:  # far from the central meridian nominal pixel area is visibly wrong
        assert abs(nominal - true) / true > 0.008


def test_aggregate_tile_sums_true_areas_per_region_and_class():
    codes = np.array([[1, 1, 2], [0, 2, 2]], dtype=np.uint8)  # 0 = unobserved
    area = np.array([[100.0, 101.0, 102.0], [103.0, 104.0, 105.0]])
    masks = np.array([[[1, 1, 0], [1, 0, 0]], [[0, 0, 1], [0, 1, 1]]], dtype=bool)
    expected = np.full(codes.shape, 4.0)
    failed = np.zeros(codes.shape)
    failed[0, 0] = 1
    p = aggregate_tile("t", codes, ("coca", "forest"), ("a", "b"), masks, area, expected, failed)
    a, b = p.regions["a"], p.regions["b"]
    assert a.region_area_m2 == 304.0 and a.observed_area_m2 == 201.0
    assert a.class_area_m2 == {"coca": 201.0, "forest": 0.0}
    assert a.class_pixels == {"coca": 2, "forest": 0}
    assert a.failed_obs / a.expected_obs == pytest.approx(100.0 / (4 * 304.0))
    assert b.class_area_m2["forest"] == 311.0 and b.observed_pixels == 3


def test_partials_roundtrip_and_reduce_is_a_plain_sum():
    s1 = RegionSums(10.0, 8.0, {"coca": 3.0}, {"coca": 3}, 10, 8, 40.0, 4.0)
    s2 = RegionSums(5.0, 5.0, {"coca": 1.0, "forest": 4.0}, {"coca": 1, "forest": 4}, 5, 5, 20.0, 0.0)
    p1 = TilePartial.from_json(TilePartial("t1", "done", {"a": s1}).to_json())
    p2 = TilePartial("t2", "done", {"a": s2})
    tot = reduce_partials([p1, p2], ["a", "z"])
    assert tot["a"].region_area_m2 == 15.0 and tot["a"].class_area_m2 == {"coca": 4.0, "forest": 4.0}
    assert tot["z"].region_area_m2 == 0.0


def test_failed_tile_counts_every_expected_observation_as_failed():
    masks = np.ones((1, 2, 2), dtype=bool)
    p = failed_tile("t", ["a"], masks, np.full((2, 2), 100.0), np.full((2, 2), 3.0), "boom")
    s = p.regions["a"]
    assert p.status == "failed" and s.observed_area_m2 == 0 and s.failed_obs == s.expected_obs == 1200.0


def test_region_rasterization_uses_pixel_centres():
    gb = GeoBox.from_bbox((0, 0, 40, 40), "EPSG:32718", resolution=10)
    # a box covering pixel centres (5..15, 25..35): exactly 2 x 2 pixels (the top-left block)
    poly_xy = box(1, 21, 19, 39)
    from pyproj import Transformer

    tr = Transformer.from_crs("EPSG:32718", "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(*poly_xy.exterior.xy)
    m = rasterize_regions([Region("r", Polygon(zip(lon, lat, strict=True)))], gb)[0]
    assert m.sum() == 4 and m[:2, :2].all()
