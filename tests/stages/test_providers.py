"""Providers on real recorded STAC responses: band mapping, CRS, baseline, tile, offsets,
footprints, errors and URL signing (no network).

Real data: ../shared/data/real/stac (Earth Search v1 and v0, Planetary Computer); skipped
when absent. Variants the recordings lack (``proj:code``, baseline >= 04.00 at Planetary
Computer, CDSE keys) are built by editing copies of recorded items, and say so.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import shapely
from shapely.geometry import Point, box, shape

from estimator.bands import REFLECTANCE_BANDS
from estimator.errors import ConfigError, EstimatorError
from estimator.regions.geometry import to_crs
from estimator.stages.plan import item_info, make_plan
from estimator.stages.providers import (
    REQUIRED_BANDS,
    ItemMetadataError,
    Provider,
    UnknownProviderError,
    get_provider,
    load_providers,
    normalize_item,
    url_patcher,
)

ES = "real/stac/earth_search_v1"
V0 = "real/stac/earth_search_v0"
PC = "real/stac/planetary_computer"
ES_ITEMS = {
    "item_S2A_29RKH_20200219_0_L2A.json": ("02.14", 0.0),
    "item_S2A_13TDE_20231008_0_L2A.json": ("05.09", -0.1),
    "item_S2B_24MUV_20250731_0_L2A.json": ("05.11", -0.1),
    "item_S2B_24MWV_20250731_0_L2A.json": ("05.11", -0.1),
}
PC_ITEMS = (
    "item_S2A_MSIL2A_20190101T000001_R116_T60VUK_20201007T214652.json",
    "item_S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531_raster_ext.json",
)
V0_ITEM = "item_S2A_31NBJ_20190524_0_L2A.json"
PC_KEY = {
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "nir": "B08",
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir08": "B8A",
    "swir16": "B11",
    "swir22": "B12",
    "scl": "SCL",
}


def _json(shared: Path, rel: str) -> dict:
    return json.loads((shared / rel).read_text(encoding="utf-8"))


def _es_search_items(shared: Path) -> list[dict]:
    feats = []
    for page in ("search_cql2_cloud_lte40_page1.json", "search_cql2_cloud_lte40_page2.json"):
        feats += [f for f in _json(shared, f"{ES}/{page}")["features"] if f["collection"] == "sentinel-2-l2a"]
    return feats


def _scalings(item: dict) -> set[tuple[float, float]]:
    return {(round(s, 8), round(o, 8)) for s, o in item_info(item).scaling}


# --- definitions ---------------------------------------------------------------------


def test_shipped_definitions():
    providers = load_providers()
    assert list(providers) == ["earth-search", "earth-search-v0", "planetary-computer", "cdse", "local"]
    for p in providers.values():
        assert set(p.asset_map.values()) == set(REQUIRED_BANDS)
    es, pc, cdse = providers["earth-search"], providers["planetary-computer"], providers["cdse"]
    assert es.url == "https://earth-search.aws.element84.com/v1"
    assert es.collections == ("sentinel-2-l2a", "sentinel-2-c1-l2a")
    assert all(k == v for k, v in es.asset_map.items())
    assert providers["earth-search-v0"].collections == ("sentinel-s2-l2a-cogs",)
    assert pc.sign and not any(p.sign for n, p in providers.items() if n != "planetary-computer")
    assert pc.url == "https://planetarycomputer.microsoft.com/api/stac/v1"
    assert {pc.key_for(b) for b in REQUIRED_BANDS} == set(PC_KEY.values())
    assert cdse.url == "https://stac.dataspace.copernicus.eu/v1"
    assert cdse.key_for("blue") == "B02_10m" and cdse.key_for("nir08") == "B8A_20m" and cdse.key_for("scl") == "SCL_20m"
    assert providers["local"].url is None and providers["local"].asset_map == es.asset_map


def test_unknown_provider_lists_known_names():
    with pytest.raises(
        UnknownProviderError, match="earth-search, earth-search-v0, planetary-computer, cdse, local"
    ) as e:
        get_provider("usgs")
    assert isinstance(e.value, LookupError) and isinstance(e.value, EstimatorError)
    assert "'usgs'" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d["x"].update(signed=True), r"unknown field\(s\) \['signed'\]"),
        (lambda d: d["x"]["asset_map"].pop("SCL"), r"no key for band\(s\) \['scl'\]"),
        (lambda d: d["x"]["asset_map"].update(B01="blue"), r"several keys to \['blue'\]"),
        (lambda d: d["x"]["asset_map"].update(B01="coastal"), r"\['coastal'\] are not band names"),
        (lambda d: d["x"].pop("collections"), r"lacks field\(s\) \['collections'\]"),
        (lambda d: d["x"].update(sign="yes"), "sign must be true or false"),
    ],
)
def test_invalid_definitions_are_config_errors(tmp_path, edit, match):
    import yaml

    spec = {
        "x": {
            "url": None,
            "collections": ["sentinel-2-l2a"],
            "sign": False,
            "asset_map": {v: k for k, v in PC_KEY.items()},
        }
    }
    valid = tmp_path / "valid.yaml"
    valid.write_text(yaml.safe_dump(spec))
    assert load_providers(valid)["x"].key_for("red") == "B04"
    edit(spec)
    path = tmp_path / "providers.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=match):
        load_providers(path)


def test_missing_definitions_file(tmp_path):
    with pytest.raises(ConfigError, match="provider definitions not found"):
        load_providers(tmp_path / "nope.yaml")


# --- Earth Search v1 -----------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), list(ES_ITEMS.items()))
def test_earth_search_v1_items(shared, name, expected):
    baseline, offset = expected
    raw = _json(shared, f"{ES}/{name}")
    before = copy.deepcopy(raw)
    item = normalize_item(raw, get_provider("earth-search"))
    assert raw == before, "the input item must not be modified"
    assert item is not raw and item["assets"] is not raw["assets"]
    # keys were ours already: every asset, mapped or not, is unchanged
    assert item["assets"] == raw["assets"]
    info = item_info(item)
    assert info.processing_baseline == baseline
    assert _scalings(item) == {(1e-4, offset)}
    assert info.tile == raw["properties"]["grid:code"].removeprefix("MGRS-")
    assert item["properties"]["s2:mgrs_tile"] == info.tile
    assert item["properties"]["proj:epsg"] == raw["properties"]["proj:epsg"]


def test_earth_search_v1_search_pages(shared):
    feats = _es_search_items(shared)
    assert len(feats) == 6
    es = get_provider("earth-search")
    for raw in feats:
        item = normalize_item(raw, es)
        assert set(REQUIRED_BANDS) <= set(item["assets"])
        assert _scalings(item) == {(1e-4, -0.1)}  # all 05.11
        tile = raw["id"].split("_")[1]
        assert item_info(item).tile == tile == item["properties"]["s2:mgrs_tile"]
        assert item["properties"]["proj:epsg"] == 32600 + int(tile[:2]) + (100 if tile[2] < "N" else 0)


# --- Planetary Computer --------------------------------------------------------------


def _check_pc(raw: dict, item: dict) -> None:
    for band, key in PC_KEY.items():
        # the same asset, with Earth Search's pixel type where PC declares none
        pixel = {"nodata": 0, "data_type": "uint8" if band == "scl" else "uint16"}
        rb = raw["assets"][key].get("raster:bands", [{}])
        assert item["assets"][band] == {**raw["assets"][key], "raster:bands": [{**pixel, **rb[0]}]}
        assert key not in item["assets"]
    untouched = set(raw["assets"]) - set(PC_KEY.values())
    assert {"AOT", "WVP", "visual", "preview", "tilejson"} <= untouched
    for key in untouched:
        assert item["assets"][key] == raw["assets"][key]
    assert item["properties"]["s2:mgrs_tile"] == raw["properties"]["s2:mgrs_tile"]
    assert item["properties"]["proj:epsg"] == raw["properties"]["proj:epsg"]


def test_planetary_computer_search(shared):
    feats = _json(shared, f"{PC}/search_sentinel-2-l2a_2019-01-01T000001-000010.json")["features"]
    assert len(feats) == 33
    pc = get_provider("planetary-computer")
    for raw in feats:
        item = normalize_item(raw, pc)
        _check_pc(raw, item)
        assert item_info(item).processing_baseline == "02.12"
        # no scale/offset in PC metadata: baseline 02.12 -> no offset
        assert _scalings(item) == {(1e-4, 0.0)}


@pytest.mark.parametrize("name", PC_ITEMS)
def test_planetary_computer_items(shared, name):
    raw = _json(shared, f"{PC}/{name}")
    item = normalize_item(raw, get_provider("planetary-computer"))
    _check_pc(raw, item)
    assert _scalings(item) == {(1e-4, 0.0)}


@pytest.mark.parametrize("baseline", ["04.00", "05.10"])
def test_planetary_computer_new_baseline_offset(shared, baseline):
    # Edited copy: the recordings hold only 02.12 scenes; newer ones differ only here.
    raw = _json(shared, f"{PC}/{PC_ITEMS[0]}")
    raw["properties"]["s2:processing_baseline"] = baseline
    item = normalize_item(raw, get_provider("planetary-computer"))
    assert _scalings(item) == {(1e-4, -0.1)}


def test_planetary_computer_dr_congo_collection(shared):
    feats = _json(shared, f"{PC}/itemcollection_T35MNM_2020-06_07_DRCongo.geojson")["features"]
    assert len(feats) == 13
    pc = get_provider("planetary-computer")
    items = [normalize_item(f, pc) for f in feats]
    for raw, item in zip(feats, items, strict=True):
        _check_pc(raw, item)
        assert item["properties"]["s2:mgrs_tile"] == "35MNM"
        assert item["properties"]["proj:epsg"] == 32735
        assert item_info(item).tile == "35MNM"
    # the normalized items plan like Earth Search ones: 13 dates, 13 time slices
    centre = shapely.intersection_all([shape(i["geometry"]) for i in items]).centroid
    plan = make_plan(items, box(centre.x - 0.05, centre.y - 0.05, centre.x + 0.05, centre.y + 0.05), resolution=100)
    assert len(plan.groups) == 13 and str(plan.grid.crs) == "EPSG:32735"


# --- Earth Search v0 (legacy) --------------------------------------------------------


def test_earth_search_v0_item(shared):
    raw = _json(shared, f"{V0}/{V0_ITEM}")
    item = normalize_item(raw, get_provider("earth-search-v0"))
    for band, key in PC_KEY.items():
        assert item["assets"][band]["href"].endswith(f"/{key}.tif")
    assert {"B01", "B09", "AOT", "WVP", "visual", "thumbnail", "info", "metadata"} <= set(item["assets"])
    props = item["properties"]
    # from sentinel:product_id ..._N0212_... and the sentinel:* tile parts
    assert props["s2:processing_baseline"] == "02.12"
    assert props["s2:mgrs_tile"] == "31NBJ"
    assert props["eo:cloud_cover"] == 0 and props["proj:epsg"] == 32631
    info = item_info(item)
    assert (info.tile, info.processing_baseline) == ("31NBJ", "02.12")
    assert _scalings(item) == {(1e-4, 0.0)}


@pytest.mark.parametrize(("harmonised", "offset"), [(None, -0.1), (False, -0.1), (True, 0.0)])
def test_earth_search_v0_new_baseline(shared, harmonised, offset):
    # Edited copy, as v0 wrote scenes from 2022 on: Element84 subtracted the 04.00 offset
    # from the pixels of scenes flagged sentinel:boa_offset_applied, so those need none.
    raw = _json(shared, f"{V0}/{V0_ITEM}")
    raw["properties"]["sentinel:processing_baseline"] = "04.00"
    raw["properties"]["sentinel:product_id"] = raw["properties"]["sentinel:product_id"].replace("_N0212_", "_N0400_")
    if harmonised is not None:
        raw["properties"]["sentinel:boa_offset_applied"] = harmonised
    item = normalize_item(raw, get_provider("earth-search-v0"))
    assert item["properties"]["s2:processing_baseline"] == "04.00"
    assert _scalings(item) == {(1e-4, offset)}


# --- footprints ----------------------------------------------------------------------


def _all_recorded(shared: Path) -> list[tuple[str, dict]]:
    out = [("earth-search", _json(shared, f"{ES}/{n}")) for n in ES_ITEMS]
    out += [("earth-search", f) for f in _es_search_items(shared)]
    out += [("planetary-computer", _json(shared, f"{PC}/{n}")) for n in PC_ITEMS]
    out += [
        ("planetary-computer", f)
        for f in _json(shared, f"{PC}/search_sentinel-2-l2a_2019-01-01T000001-000010.json")["features"]
    ]
    out += [
        ("planetary-computer", f)
        for f in _json(shared, f"{PC}/itemcollection_T35MNM_2020-06_07_DRCongo.geojson")["features"]
    ]
    out += [("earth-search-v0", _json(shared, f"{V0}/{V0_ITEM}"))]
    return out


def test_footprints_agree_with_projection_metadata(shared):
    checked_centroids = 0
    recorded = _all_recorded(shared)
    assert len(recorded) == 4 + 6 + 2 + 33 + 13 + 1
    for name, raw in recorded:
        item = normalize_item(raw, get_provider(name))
        foot = shape(item["geometry"])
        assert foot.is_valid and not foot.is_empty, item["id"]
        assert foot.intersects(box(*item["bbox"])), item["id"]
        centroid = item["properties"].get("proj:centroid")
        if centroid is not None:
            assert foot.buffer(1e-6).contains(Point(centroid["lon"], centroid["lat"])), item["id"]
            checked_centroids += 1
        # The data footprint lies inside the red band's pixel grid, placed by proj:epsg and
        # proj:transform: checks the CRS the normalization settled on. Footprint edges are
        # straight in lon/lat, so curved in UTM: allow them 1 km beyond the grid.
        red = item["assets"]["red"]
        a, _, x0, _, e, y0 = red["proj:transform"][:6]
        h, w = red["proj:shape"]
        grid = box(x0, y0 + e * h, x0 + a * w, y0)
        foot_xy = to_crs(foot, f"EPSG:{item['properties']['proj:epsg']}")
        assert grid.buffer(1000).contains(foot_xy), item["id"]
        assert foot_xy.intersection(grid).area >= 0.95 * foot_xy.area, item["id"]
    assert checked_centroids == 8  # the Earth Search items that carry proj:centroid


# --- proj:code (STAC projection extension 2.0, as CDSE writes it) ----------------------


def test_proj_code_on_item(shared):
    # Edited copy of a recorded Earth Search item: proj:epsg replaced by proj:code.
    raw = _json(shared, f"{ES}/item_S2A_29RKH_20200219_0_L2A.json")
    del raw["properties"]["proj:epsg"]
    raw["properties"]["proj:code"] = "EPSG:32629"
    item = normalize_item(raw, get_provider("earth-search"))
    assert item["properties"]["proj:epsg"] == 32629
    assert item["properties"]["proj:code"] == "EPSG:32629"


def test_proj_code_on_assets_only(shared):
    raw = _json(shared, f"{ES}/item_S2A_29RKH_20200219_0_L2A.json")
    del raw["properties"]["proj:epsg"]
    for asset in raw["assets"].values():
        asset["proj:code"] = "epsg:32629"
    item = normalize_item(raw, get_provider("earth-search"))
    assert item["properties"]["proj:epsg"] == 32629
    assert {item["assets"][b]["proj:epsg"] for b in REQUIRED_BANDS} == {32629}
    assert {item["assets"][b]["proj:code"] for b in REQUIRED_BANDS} == {"EPSG:32629"}
    assert pystac.Item.from_dict(item).ext.proj.epsg == 32629


def test_cdse_shaped_item(shared):
    # SYNTHETIC: no CDSE response is recorded here. A recorded Earth Search item rewritten
    # the way the CDSE docs describe theirs (keys B04_10m ..., proj:code on the assets, no
    # s2:* baseline or tile) must normalize to what the original gives.
    raw = _json(shared, f"{ES}/item_S2B_24MUV_20250731_0_L2A.json")
    original = normalize_item(raw, get_provider("earth-search"))
    cdse = get_provider("cdse")
    props = raw["properties"]
    props["processing:version"] = props.pop("s2:processing_baseline")
    for key in ("proj:epsg", "mgrs:utm_zone", "mgrs:latitude_band", "mgrs:grid_square"):
        del props[key]
    assets = {}
    for key, asset in raw["assets"].items():
        asset = {k: v for k, v in asset.items() if k != "proj:epsg"}
        asset["proj:code"] = "EPSG:32724"
        assets[cdse.key_for(key) if key in REQUIRED_BANDS else key] = asset
    raw["assets"] = assets
    item = normalize_item(raw, cdse)
    assert item_info(item) == item_info(original)
    assert item["properties"]["s2:mgrs_tile"] == "24MUV" and item["properties"]["proj:epsg"] == 32724
    assert item["assets"]["red"]["href"] == original["assets"]["red"]["href"]


def test_raster_v2_scale_offset_is_used(shared):
    # Edited copy: scale/offset moved to raster:scale/raster:offset (raster extension 2.0),
    # and the baseline set to 02.14 so that only the metadata can give the -0.1.
    raw = _json(shared, f"{ES}/item_S2B_24MUV_20250731_0_L2A.json")
    raw["properties"]["s2:processing_baseline"] = "02.14"
    for band in REQUIRED_BANDS:
        asset = raw["assets"][band]
        rb = asset.pop("raster:bands")[0]
        asset["raster:scale"], asset["raster:offset"] = rb.get("scale", 1.0), rb.get("offset", 0.0)
    item = normalize_item(raw, get_provider("earth-search"))
    assert _scalings(item) == {(1e-4, -0.1)}


# --- errors --------------------------------------------------------------------------


def test_item_without_crs(shared):
    raw = _json(shared, f"{PC}/{PC_ITEMS[0]}")
    del raw["properties"]["proj:epsg"]
    with pytest.raises(ItemMetadataError, match="proj:epsg or proj:code") as e:
        normalize_item(raw, get_provider("planetary-computer"))
    assert raw["id"] in str(e.value) and isinstance(e.value, ValueError) and "\n" not in str(e.value)


def test_item_with_non_epsg_crs(shared):
    raw = _json(shared, f"{ES}/item_S2A_29RKH_20200219_0_L2A.json")
    del raw["properties"]["proj:epsg"]
    raw["properties"]["proj:code"] = "IAU_2015:30100"
    with pytest.raises(ItemMetadataError, match="not an EPSG code"):
        normalize_item(raw, get_provider("earth-search"))


def test_item_missing_bands(shared):
    raw = _json(shared, f"{PC}/{PC_ITEMS[0]}")
    del raw["assets"]["B05"], raw["assets"]["SCL"]
    with pytest.raises(ItemMetadataError, match=r"band\(s\) rededge1, scl \(expected key\(s\) B05, SCL") as e:
        normalize_item(raw, get_provider("planetary-computer"))
    assert raw["id"] in str(e.value)


def test_item_of_another_provider(shared):
    # a Planetary Computer item read as Earth Search: none of our keys are there
    raw = _json(shared, f"{PC}/{PC_ITEMS[0]}")
    with pytest.raises(ItemMetadataError, match="earth-search"):
        normalize_item(raw, get_provider("earth-search"))


# --- what odc-stac sees, and URL signing ---------------------------------------------


@pytest.mark.parametrize(
    ("provider", "rel"),
    [
        ("earth-search", f"{ES}/item_S2A_29RKH_20200219_0_L2A.json"),
        ("earth-search-v0", f"{V0}/{V0_ITEM}"),
        ("planetary-computer", f"{PC}/{PC_ITEMS[0]}"),
    ],
)
def test_odc_stac_reads_our_band_names(shared, provider, rel):
    import odc.stac

    item = pystac.Item.from_dict(normalize_item(_json(shared, rel), get_provider(provider)))
    # chunks={}: a lazy graph only, nothing is read
    ds = odc.stac.load([item], bands=list(REQUIRED_BANDS), chunks={}, resolution=200)
    assert set(ds.data_vars) == set(REQUIRED_BANDS)
    assert {str(ds[b].dtype) for b in REFLECTANCE_BANDS} == {"uint16"} and ds.scl.dtype == np.uint8
    assert {ds[b].attrs.get("nodata") for b in REQUIRED_BANDS} == {0}
    # pystac migrates proj:epsg to proj:code (projection extension 2.0) on reading
    assert (
        ds.odc.geobox.crs.epsg
        == item.ext.proj.epsg
        == normalize_item(_json(shared, rel), get_provider(provider))["properties"]["proj:epsg"]
    )


def test_url_patcher_only_for_signing_providers():
    for name in ("earth-search", "earth-search-v0", "cdse", "local"):
        assert url_patcher(get_provider(name)) is None
    assert callable(url_patcher(get_provider("planetary-computer")))


def test_url_patcher_is_what_odc_stac_calls(shared, monkeypatch):
    import odc.stac

    patch = url_patcher(get_provider("planetary-computer"))
    assert patch is not None
    # imported after url_patcher, which silences the package's pydantic DeprecationWarning
    import planetary_computer

    calls: list[str] = []

    def fake_sign(url: str) -> str:  # stands in for the SAS token request (network)
        calls.append(url)
        return url + "?st=x&se=y&sp=r&sig=z"

    monkeypatch.setattr(planetary_computer, "sign", fake_sign)
    href = "https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/x/B04_10m.tif"
    assert patch(href) == href + "?st=x&se=y&sp=r&sig=z"
    calls.clear()

    item = normalize_item(_json(shared, f"{PC}/{PC_ITEMS[0]}"), get_provider("planetary-computer"))
    ds = odc.stac.load([pystac.Item.from_dict(item)], bands=["red", "scl"], chunks={}, resolution=200, patch_url=patch)
    # Signed inside odc.stac.load, while the graph is built, before anything is computed:
    # once per requested band of each item, never for the other assets.
    assert sorted(calls) == sorted(item["assets"][b]["href"] for b in ("red", "scl"))
    assert ds.red.dtype == np.uint16


def test_provider_is_immutable():
    p = Provider("x", None, ("c",), {"B04": "red"}, False)
    with pytest.raises(AttributeError):
        p.sign = True  # type: ignore[misc]
    source = {"B04": "red"}
    q = Provider("y", None, ("c",), source, False)
    source["B03"] = "green"
    assert dict(q.asset_map) == {"B04": "red"}
