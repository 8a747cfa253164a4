"""Tests of the SYNTHETIC demo world generator (estimator.demo.world)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from scipy import ndimage
from shapely.geometry import shape

from estimator.bands import BASELINE_OFFSET_FROM, BOA_OFFSET_DN, S2_BAND_ID, SCL, SCL_CLOUD
from estimator.demo.world import (
    DEMO_CLASSES,
    GENERATOR_VERSION,
    DemoWorldError,
    World,
    WorldSpec,
    generate_world,
    load_world,
)

SMALL = WorldSpec(size_px=256, n_dates=10)
ASSET_KEYS = ("blue", "green", "red", "nir", "rededge1", "rededge2", "rededge3", "nir08", "swir16", "swir22", "scl")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return generate_world(tmp_path_factory.mktemp("small") / "world", SMALL)


def _items(world: World) -> list[dict[str, Any]]:
    return [json.loads(line) for line in world.items_path.read_text(encoding="utf-8").splitlines()]


def _read(world: World, href: str) -> np.ndarray:
    with rasterio.open(world.root / href) as src:
        return src.read(1)


def _all_cogs(world: World) -> dict[str, np.ndarray]:
    return {a["href"]: _read(world, a["href"]) for item in _items(world) for a in item["assets"].values()}


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


# --------------------------------------------------------------------------- generation and cache


def test_world_layout(world: World) -> None:
    record = json.loads(world.world_json_path.read_text(encoding="utf-8"))
    assert record["generator_version"] == GENERATOR_VERSION
    assert WorldSpec(**record["spec"]) == SMALL
    assert "SYNTHETIC" in record["note"]
    items = _items(world)
    assert [i["id"] for i in items] == record["item_ids"]
    assert len(items) == SMALL.n_dates
    for path in (
        world.collection_path,
        world.labels_path,
        world.regions_path,
        world.truth_path,
        world.truth_class_path,
        world.truth_objects_path,
    ):
        assert path.is_file()
    assert not [p for p in world.root.parent.iterdir() if p.name.startswith(f".{world.root.name}.")]


def test_cache_hit_does_not_rewrite(world: World) -> None:
    before = _mtimes(world.root)
    again = generate_world(world.root, SMALL)
    assert again == world
    assert _mtimes(world.root) == before


def test_deterministic_same_seed(world: World, tmp_path: Path) -> None:
    twin = generate_world(tmp_path / "twin", SMALL)
    assert twin.items_path.read_text() == world.items_path.read_text()
    assert twin.collection_path.read_text() == world.collection_path.read_text()
    for name in ("labels.geojson", "regions.geojson", "truth.json", "truth_objects.geojson"):
        assert (twin.root / name).read_text() == (world.root / name).read_text(), name
    ours, theirs = _all_cogs(world), _all_cogs(twin)
    assert ours.keys() == theirs.keys()
    for href, data in ours.items():
        np.testing.assert_array_equal(data, theirs[href], err_msg=href)
    np.testing.assert_array_equal(_read(world, "truth_class.tif"), _read(twin, "truth_class.tif"))


def test_different_seed_differs(world: World, tmp_path: Path) -> None:
    other = generate_world(tmp_path / "other", WorldSpec(seed=7, size_px=256, n_dates=10), progress=True)
    assert other.items_path.read_text() != world.items_path.read_text()
    assert not np.array_equal(_read(world, "truth_class.tif"), _read(other, "truth_class.tif"))
    first, second = _items(world)[0], _items(other)[0]
    assert not np.array_equal(
        _read(world, first["assets"]["red"]["href"]), _read(other, second["assets"]["red"]["href"])
    )


def test_changed_spec_replaces_world(tmp_path: Path) -> None:
    root = tmp_path / "w"
    generate_world(root, WorldSpec(size_px=128, n_dates=3))
    spec = WorldSpec(size_px=128, n_dates=4)
    world = generate_world(root, spec)
    assert world.spec == spec
    assert len(_items(world)) == 4
    assert len(list((root / "cogs").iterdir())) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["w"]


def test_incomplete_world_is_detected_and_regenerated(tmp_path: Path) -> None:
    spec = WorldSpec(size_px=128, n_dates=3)
    world = generate_world(tmp_path / "w", spec)
    victim = world.root / _items(world)[1]["assets"]["swir16"]["href"]
    victim.unlink()
    with pytest.raises(DemoWorldError, match="incomplete"):
        load_world(world.root)
    generate_world(world.root, spec)
    assert victim.is_file()
    load_world(world.root)


def test_load_world_errors(tmp_path: Path) -> None:
    with pytest.raises(DemoWorldError, match=r"world\.json") as info:
        load_world(tmp_path / "nowhere")
    assert isinstance(info.value, ValueError)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "world.json").write_text("{not json")
    with pytest.raises(DemoWorldError, match="unreadable"):
        load_world(tmp_path / "bad")


def test_refuses_to_overwrite_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    keep = tmp_path / "mine" / "notes.txt"
    keep.write_text("precious")
    with pytest.raises(DemoWorldError, match="not empty"):
        generate_world(tmp_path / "mine", WorldSpec(size_px=128, n_dates=2))
    assert keep.read_text() == "precious"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size_px": 255},
        {"size_px": 32},
        {"n_dates": 0},
        {"start": "2022-09-01"},
        {"epsg": 4326},
        {"mgrs_tile": "XX"},
        {"n_coca_plots": -1},
        {"start": "2021-09-01", "end": "2021-09-03", "n_dates": 5},
    ],
)
def test_spec_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(DemoWorldError):
        WorldSpec(**kwargs)


# --------------------------------------------------------------------------- rasters


def test_cogs_are_valid_and_match_stac(world: World) -> None:
    for item in _items(world):
        assert item["properties"]["proj:epsg"] == SMALL.epsg
        for key in ASSET_KEYS:
            asset = item["assets"][key]
            assert asset["href"] == f"cogs/{item['id']}/{S2_BAND_ID[key]}.tif"
            with rasterio.open(world.root / asset["href"]) as src:
                assert src.driver == "GTiff"
                assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
                # COG layout implies internal tiles; rasterio's "tiled" flag is False when one
                # tile spans the whole width, as in this small world, so check the tile shape.
                assert src.block_shapes[0] == (256, 256)
                assert src.profile["tiled"] or src.width <= 256
                assert src.compression.name.lower() == "deflate"
                assert src.overviews(1), "no overviews"
                assert src.nodata == 0
                assert src.dtypes[0] == asset["raster:bands"][0]["data_type"]
                assert src.crs.to_epsg() == SMALL.epsg
                assert list(src.shape) == asset["proj:shape"]
                assert list(src.transform)[:6] == pytest.approx(asset["proj:transform"])
                assert src.res[0] == asset["gsd"] == asset["raster:bands"][0]["spatial_resolution"]
            expected = SMALL.size_px if asset["gsd"] == 10 else SMALL.size_px // 2
            assert asset["proj:shape"] == [expected, expected]


def test_truth_class_raster(world: World) -> None:
    with rasterio.open(world.truth_class_path) as src:
        assert src.dtypes[0] == "uint8" and src.nodata == 0 and src.crs.to_epsg() == SMALL.epsg
        assert src.shape == (SMALL.size_px, SMALL.size_px)
        assert src.transform.a == 10 and src.transform.c == SMALL.origin_x and src.transform.f == SMALL.origin_y
        codes = np.unique(src.read(1))
    assert set(codes.tolist()) <= set(range(1, len(DEMO_CLASSES) + 1))
    assert {1, 2, 7}.issubset(codes.tolist())  # coca, forest and water are always there


def test_cloud_cover_is_derived_from_scl(world: World) -> None:
    covers = []
    for item in _items(world):
        scl = _read(world, item["assets"]["scl"]["href"])
        counts = np.bincount(scl.ravel(), minlength=len(SCL))
        valid = scl.size - counts[SCL.NO_DATA]
        props = item["properties"]
        expected = 100.0 * sum(counts[c] for c in SCL_CLOUD) / valid
        assert props["eo:cloud_cover"] == pytest.approx(expected, abs=1e-5)
        assert props["s2:vegetation_percentage"] == pytest.approx(100.0 * counts[SCL.VEGETATION] / valid, abs=1e-5)
        assert props["s2:cloud_shadow_percentage"] == pytest.approx(100.0 * counts[SCL.CLOUD_SHADOW] / valid, abs=1e-5)
        assert props["s2:nodata_pixel_percentage"] == pytest.approx(100.0 * counts[SCL.NO_DATA] / scl.size, abs=1e-5)
        assert set(np.unique(scl).tolist()) <= {0, 3, 4, 5, 6, 8, 9, 10}
        covers.append(props["eo:cloud_cover"])
    assert min(covers) < 10 and max(covers) > 50


def test_nodata_is_consistent_across_bands(world: World) -> None:
    for item in _items(world):
        nodata20 = _read(world, item["assets"]["scl"]["href"]) == 0
        nodata10 = nodata20.repeat(2, axis=0).repeat(2, axis=1)
        for key in ("red", "swir16"):
            data = _read(world, item["assets"][key]["href"])
            expected = nodata10 if item["assets"][key]["gsd"] == 10 else nodata20
            np.testing.assert_array_equal(data == 0, expected)


def test_boa_offset_after_baseline_change(world: World) -> None:
    truth = _read(world, "truth_class.tif")
    interior_forest = ndimage.binary_erosion(truth == DEMO_CLASSES.index("forest") + 1, iterations=3)
    before, after = [], []
    for item in _items(world):
        props = item["properties"]
        offset = item["assets"]["red"]["raster:bands"][0]["offset"]
        late = props["datetime"][:10] >= BASELINE_OFFSET_FROM.isoformat()
        assert props["s2:processing_baseline"] == ("04.00" if late else "03.01")
        assert props["earthsearch:boa_offset_applied"] is late
        assert offset == (-0.1 if late else 0)
        assert item["assets"]["red"]["raster:bands"][0]["scale"] == 0.0001
        scl = _read(world, item["assets"]["scl"]["href"]).repeat(2, axis=0).repeat(2, axis=1)
        clear = interior_forest & (scl == SCL.VEGETATION)
        if clear.sum() > 500:
            red = _read(world, item["assets"]["red"]["href"])
            (after if late else before).append(float(np.median(red[clear])))
            # The offset makes scale/offset decoding land on plausible forest reflectance.
            assert 0.01 < np.median(red[clear]) * 0.0001 + offset < 0.04
    assert before and after, "need a clear date on each side of the baseline change"
    assert np.median(after) - np.median(before) == pytest.approx(BOA_OFFSET_DN, abs=60)


# --------------------------------------------------------------------------- STAC


def test_items_look_like_earth_search_v1(world: World) -> None:
    items = _items(world)
    datetimes = [i["properties"]["datetime"] for i in items]
    assert datetimes == sorted(datetimes)
    assert datetimes[0] >= SMALL.start and datetimes[-1][:10] <= SMALL.end
    platforms = [i["properties"]["platform"] for i in items]
    assert platforms[:2] == ["sentinel-2a", "sentinel-2b"] and set(platforms) == {"sentinel-2a", "sentinel-2b"}
    for item in items:
        props = item["properties"]
        day = props["datetime"][:10].replace("-", "")
        assert item["id"] == f"S2{props['platform'][-1].upper()}_{SMALL.mgrs_tile}_{day}_0_L2A"
        assert item["collection"] == "sentinel-2-l2a"
        assert props["demo:synthetic"] is True
        assert props["s2:mgrs_tile"] == SMALL.mgrs_tile and props["grid:code"] == f"MGRS-{SMALL.mgrs_tile}"
        assert (props["mgrs:utm_zone"], props["mgrs:latitude_band"], props["mgrs:grid_square"]) == (18, "L", "XM")
        assert props["datetime"].endswith("Z") and props["datetime"][11:13] == "15"
        assert set(item["assets"]) == set(ASSET_KEYS)
        assert all(not a["href"].startswith(("/", "http")) for a in item["assets"].values())
        footprint = shape(item["geometry"])
        assert footprint.is_valid and -74.2 < footprint.centroid.x < -73.9 and -12.7 < footprint.centroid.y < -12.5
        assert item["bbox"] == pytest.approx(list(footprint.bounds), abs=1e-6)


def test_collection(world: World) -> None:
    collection = json.loads(world.collection_path.read_text(encoding="utf-8"))
    assert collection["type"] == "Collection" and collection["id"] == "sentinel-2-l2a"
    assert collection["demo:synthetic"] is True and "SYNTHETIC" in collection["description"]
    assert set(collection["item_assets"]) == set(ASSET_KEYS)
    assert collection["license"]
    items = _items(world)
    (bbox,) = collection["extent"]["spatial"]["bbox"]
    for item in items:
        assert bbox[0] <= item["bbox"][0] and bbox[1] <= item["bbox"][1]
        assert bbox[2] >= item["bbox"][2] and bbox[3] >= item["bbox"][3]
    ((start, end),) = collection["extent"]["temporal"]["interval"]
    assert (start, end) == (items[0]["properties"]["datetime"], items[-1]["properties"]["datetime"])


# --------------------------------------------------------------------------- labels, regions, truth


def _features(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["type"] == "FeatureCollection"
    return data["features"]


def test_labels(world: World) -> None:
    features = _features(world.labels_path)
    ids = [f["properties"]["plot_id"] for f in features]
    assert len(ids) == len(set(ids))
    footprint = shape(_items(world)[0]["geometry"]).buffer(1e-4)
    for f in features:
        props = f["properties"]
        assert props["class"] in DEMO_CLASSES
        assert props["batch"] in (1, 2)
        assert props["source"] == "synthetic-demo"
        geom = shape(f["geometry"])
        assert f["geometry"]["type"] == "Polygon" and geom.is_valid
        assert geom.exterior.is_ccw  # RFC 7946 right-hand rule
        assert footprint.contains(geom)
    classes = {f["properties"]["class"] for f in features}
    assert {"coca", "forest", "pasture"} <= classes
    batches = [f["properties"]["batch"] for f in features]
    assert 0.45 < batches.count(1) / len(batches) < 0.75


def test_coca_labels_are_truth_objects(world: World) -> None:
    objects = [shape(f["geometry"]) for f in _features(world.truth_objects_path) if f["properties"]["class"] == "coca"]
    labels = [shape(f["geometry"]) for f in _features(world.labels_path) if f["properties"]["class"] == "coca"]
    assert 0.25 * len(objects) <= len(labels) <= 0.55 * len(objects)
    for label in labels:
        assert any(label.equals_exact(o, 1e-6) for o in objects)


def test_regions(world: World) -> None:
    features = _features(world.regions_path)
    assert len(features) == 3
    ids = [f["properties"]["region_id"] for f in features]
    assert len(set(ids)) == 3 and all(f["properties"]["name"] for f in features)
    geoms = [shape(f["geometry"]) for f in features]
    assert all(g.is_valid and g.geom_type == "Polygon" for g in geoms)
    for i in range(3):
        for j in range(i + 1, 3):
            assert geoms[i].intersection(geoms[j]).area == 0.0


def test_truth(world: World) -> None:
    truth = json.loads(world.truth_path.read_text(encoding="utf-8"))
    assert truth["synthetic"] is True and "centre" in truth["method"].lower()
    region_ids = [f["properties"]["region_id"] for f in _features(world.regions_path)]
    assert list(truth["regions"]) == region_ids
    nominal_ha = (SMALL.size_px * 10) ** 2 / 1e4
    assert truth["world"]["region_area_ha"] == pytest.approx(nominal_ha, rel=5e-3)
    assert truth["world"]["area_ha"]["coca"] > 0
    for entry in (truth["world"], *truth["regions"].values()):
        areas = entry["area_ha"]
        assert set(areas) == set(DEMO_CLASSES)
        assert all(v >= 0 for v in areas.values())
        assert sum(areas.values()) == pytest.approx(entry["region_area_ha"], abs=1e-2)
        assert entry["region_area_ha"] > 0
    region_total = sum(r["region_area_ha"] for r in truth["regions"].values())
    assert region_total < truth["world"]["region_area_ha"]
    # Pixel counting and polygon areas agree on coca to within the edge pixels.
    assert truth["coca_polygon_area_ha"]["world"] == pytest.approx(truth["world"]["area_ha"]["coca"], rel=0.05)


@pytest.mark.slow
def test_default_world(tmp_path: Path) -> None:
    world = generate_world(tmp_path / "default")
    truth = json.loads(world.truth_path.read_text(encoding="utf-8"))
    coca = sorted(r["area_ha"]["coca"] for r in truth["regions"].values())
    assert coca[-2] >= 60.0, coca
    covers = [i["properties"]["eo:cloud_cover"] for i in _items(world)]
    assert 25.0 < np.mean(covers) < 45.0
    labels = _features(world.labels_path)
    for cls in DEMO_CLASSES[1:]:
        assert sum(f["properties"]["class"] == cls for f in labels) >= 20, cls
    size = sum(p.stat().st_size for p in world.root.rglob("*") if p.is_file())
    assert size < 300e6
    assert os.path.basename(world.root) == "default"
