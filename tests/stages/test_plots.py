"""Probable plots as vectors: patches across tile edges, the minimum mapping unit, true
areas, CRS, and the small demo run's plots against its map and estimates."""

from __future__ import annotations

import datetime as dt
import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from odc.geo.geobox import GeoBox

from estimator.grid import pixel_area_m2
from estimator.stages.classify import sieve_codes
from estimator.stages.plots import (
    DAY_EPOCH,
    PLOT_FIELDS,
    TileLayers,
    make_plots,
    plots_summary,
    slice_days,
    write_plots,
)

RES = 10.0
GRID = Affine(RES, 0, 600_000, 0, -RES, 8_900_000)  # UTM 18S, about 9 S
CRS = "EPSG:32718"


def _day(iso: str) -> int:
    return (dt.date.fromisoformat(iso) - DAY_EPOCH).days


def _tile(r0, c0, target, raw=None, prob=0.8, first="2024-02-01", last="2024-06-01", regions=None, area=None):
    target = np.asarray(target, dtype=bool)
    shape = target.shape
    return TileLayers(
        row_off=r0, col_off=c0, target=target, target_raw=target if raw is None else np.asarray(raw, bool),
        prob=np.broadcast_to(np.asarray(prob, np.float32), shape).copy(),
        first_day=np.full(shape, _day(first), np.uint16), last_day=np.full(shape, _day(last), np.uint16),
        pixel_area=np.full(shape, 100.0) if area is None else area,
        region_masks=np.ones((1, *shape), bool) if regions is None else regions,
    )


def _plots(tiles, region_ids=("R1",)):
    return make_plots(tiles, grid_affine=GRID, crs=CRS, region_ids=list(region_ids), synthetic=False)


def test_a_patch_crossing_tile_edges_is_one_plot():
    # A 4x4 block centred on the corner of four 6x6 tiles, plus one plot inside a tile.
    full = np.zeros((12, 12), bool)
    full[4:8, 4:8] = True
    full[0:3, 0:3] = True
    probs = np.linspace(0.5, 0.9, 144, dtype=np.float32).reshape(12, 12)
    tiles = [
        _tile(r, c, full[r : r + 6, c : c + 6], prob=probs[r : r + 6, c : c + 6],
              first="2024-01-05" if (r, c) == (6, 6) else "2024-02-01")
        for r in (0, 6) for c in (0, 6)
    ]
    gdf = _plots(tiles).frame
    assert list(gdf.columns) == [*PLOT_FIELDS, "geometry"]
    assert len(gdf) == 2 and not gdf["below_mmu"].any()
    big = gdf.iloc[0]
    assert big["plot_id"] == 1 and big["n_pixels"] == 16 and big["area_ha"] == pytest.approx(0.16)
    assert big.geometry.geom_type == "Polygon" and big.geometry.is_valid
    assert big.geometry.area == pytest.approx(16 * RES * RES)
    assert len(big.geometry.exterior.coords) == 5  # a clean square, tile-edge vertices dropped
    assert big.geometry.bounds == (600_040, 8_899_920, 600_080, 8_899_960)
    block = probs[4:8, 4:8]
    assert big["prob_mean"] == pytest.approx(block.mean(), abs=1e-4)
    assert big["prob_max"] == pytest.approx(block.max(), abs=1e-4)
    assert (big["first_seen"], big["last_seen"]) == ("2024-01-05", "2024-06-01")


def test_a_small_patch_removed_by_the_mmu_is_flagged_and_its_area_reported():
    codes = np.full((12, 12), 2, np.uint8)  # 2 = forest, 1 = coca
    codes[1:5, 1:5] = 1  # 16 px: kept
    codes[8, 8:11] = 1  # 3 px: under a 10-pixel unit
    sieved, changed = sieve_codes(codes, 10)
    assert changed == 3
    plots = _plots([_tile(0, 0, sieved == 1, raw=codes == 1)])
    gdf = plots.frame
    assert gdf["below_mmu"].tolist() == [False, True]
    flagged = gdf[gdf["below_mmu"]].iloc[0]
    assert flagged["n_pixels"] == 3 and flagged["area_ha"] == pytest.approx(0.03)
    s = plots_summary(plots, 0.1)
    assert (s["n_plots"], s["area_ha"], s["n_below_mmu"], s["below_mmu_area_ha"]) == (1, 0.16, 1, 0.03)
    # the map's area is the plots' area; the flagged patch is not counted in it
    assert s["area_ha"] == pytest.approx((sieved == 1).sum() * 100 / 1e4)


def test_a_plot_and_a_flagged_patch_touching_across_a_tile_edge_stay_apart():
    left = np.zeros((4, 4), bool)
    left[1:3, 2:4] = True
    right_raw = np.zeros((4, 4), bool)
    right_raw[1:3, 0] = True  # removed by the unit in its own tile
    gdf = _plots([_tile(0, 0, left), _tile(0, 4, np.zeros((4, 4), bool), raw=right_raw)]).frame
    assert gdf["below_mmu"].tolist() == [False, True] and gdf["n_pixels"].tolist() == [4, 2]


def test_areas_are_true_pixel_areas_and_regions_take_the_largest_share():
    gb = GeoBox((6, 8), GRID, CRS)
    area = pixel_area_m2(gb)
    target = np.zeros((6, 8), bool)
    target[1:5, 2:7] = True  # 20 px
    regions = np.zeros((2, 6, 8), bool)
    regions[0, :, :4] = True
    regions[1, :, 4:] = True
    plots = _plots([_tile(0, 0, target, area=area, regions=regions)], region_ids=("west", "east"))
    p = plots.frame.iloc[0]
    assert p["area_ha"] == pytest.approx(area[target].sum() / 1e4, rel=1e-12)
    assert p["area_ha"] != pytest.approx(0.2, rel=1e-4)  # not the nominal 100 m2 per pixel
    assert (p["region"], p["regions"]) == ("east", "east;west")  # 12 px east, 8 px west
    assert plots.region_m2["west"][0] == pytest.approx(area[target & regions[0]].sum())
    assert sum(v[0] for v in plots.region_m2.values()) / 1e4 == pytest.approx(p["area_ha"])


def test_written_files_carry_their_crs_and_valid_lon_lat(tmp_path):
    target = np.zeros((8, 8), bool)
    target[2:6, 2:4] = True
    target[2, 4:6] = True  # an L shape
    plots = _plots([_tile(0, 0, target)])
    write_plots(tmp_path, plots.frame)
    back = gpd.read_parquet(tmp_path / "plots.geoparquet")
    assert back.crs.to_epsg() == 32718 and list(back.columns) == [*PLOT_FIELDS, "geometry"]
    assert back.geometry.is_valid.all()
    gj = json.loads((tmp_path / "plots.geojson").read_text())
    assert gj["type"] == "FeatureCollection" and "crs" not in gj  # RFC 7946: WGS84 implied
    ring = np.asarray(gj["features"][0]["geometry"]["coordinates"][0])
    assert ((ring[:, 0] > -76) & (ring[:, 0] < -74) & (ring[:, 1] > -11) & (ring[:, 1] < -9)).all()
    assert shapely.Polygon(ring).exterior.is_ccw  # RFC 7946 right-hand rule
    assert gj["features"][0]["properties"]["first_seen"] == "2024-02-01"
    assert not list(tmp_path.glob(".*part"))


def test_no_plots_still_writes_empty_files_with_a_crs(tmp_path):
    plots = _plots([_tile(0, 0, np.zeros((4, 4), bool))])
    write_plots(tmp_path, plots.frame)
    assert len(gpd.read_parquet(tmp_path / "plots.geoparquet")) == 0
    assert gpd.read_parquet(tmp_path / "plots.geoparquet").crs.to_epsg() == 32718
    assert json.loads((tmp_path / "plots.geojson").read_text())["features"] == []
    assert plots_summary(plots, 0.1)["area_ha"] == 0


def test_slice_days_maps_first_and_last_clear_slices_to_dates():
    dates = [dt.date(2024, 1, 3), dt.date(2024, 2, 7), dt.date(2024, 3, 1)]
    span = np.array([[[0, 1, -1]], [[2, 1, -1]]], np.int16)
    first, last = slice_days(span, dates)
    assert first.dtype == np.uint16
    assert first.tolist() == [[_day("2024-01-03"), _day("2024-02-07"), 0]]
    assert last.tolist() == [[_day("2024-03-01"), _day("2024-02-07"), 0]]


# The shared small demo run (read-only).


@pytest.mark.integration
def test_run_plots_match_the_maps_coca_area(small_run):
    job, result = small_run
    d = result.run_dir
    gdf = gpd.read_parquet(d / "plots.geoparquet")
    assert gdf.crs is not None and gdf.crs.to_epsg() == int(job.grid.crs.split(":")[1])
    assert len(gdf) > 0 and gdf.geometry.is_valid.all() and gdf["synthetic"].all()
    assert gdf["plot_id"].is_unique and set(gdf["geometry"].geom_type) <= {"Polygon", "MultiPolygon"}
    kept = gdf[~gdf["below_mmu"]]
    est = json.loads((d / "estimates.json").read_text())["records"]
    coca_records = [r for r in est if r["class"] == "coca"]
    mapped = sum(r["mapped_area_ha"] for r in coca_records)
    assert kept["area_ha"].sum() == pytest.approx(mapped, abs=1e-4 * len(coca_records))  # estimates: 4 decimals
    # ... and equals the coca pixels of the class map COG times their true areas
    with rasterio.open(d / "maps" / "class.tif") as src:
        classes = json.loads(src.tags()["classes"])
        codes = src.read(1)
        gb = GeoBox((src.height, src.width), src.transform, str(src.crs))
    coca = codes == classes.index("coca")
    assert kept["area_ha"].sum() == pytest.approx(pixel_area_m2(gb)[coca].sum() / 1e4, rel=1e-6)
    assert kept["n_pixels"].sum() == coca.sum()
    # polygons cover exactly the plots' pixels (planar area = pixel count x nominal area)
    assert np.allclose(gdf.geometry.area, gdf["n_pixels"] * job.grid.resolution**2)
    manifest = json.loads((d / "manifest.json").read_text())
    m = manifest["plots"]
    assert m["n_plots"] == len(kept) and m["area_ha"] == pytest.approx(mapped, abs=1e-3)
    for r in est:
        if r["class"] == "coca":
            assert m["by_region"][r["region"]]["area_ha"] == pytest.approx(r["mapped_area_ha"], abs=1e-3)
    sieved = sum(t["sieved_pixels"] for t in manifest["tiles"])
    assert m["n_below_mmu"] == int(gdf["below_mmu"].sum()) and gdf.loc[gdf["below_mmu"], "n_pixels"].sum() <= sieved
    start, end = dt.date.fromisoformat(str(job.period.start)), dt.date.fromisoformat(str(job.period.end))
    seen = gdf[["first_seen", "last_seen"]].map(dt.date.fromisoformat)
    assert (seen["first_seen"] <= seen["last_seen"]).all()
    day = dt.timedelta(days=1)  # solar dates may fall a day off the UTC period
    assert start - day <= seen["first_seen"].min() and seen["last_seen"].max() <= end + day
    report = (d / "report.md").read_text()
    assert f"{m['n_below_mmu']:,} patches under the minimum mapping unit" in report
    gj = json.loads((d / "plots.geojson").read_text())
    assert len(gj["features"]) == len(gdf)


@pytest.mark.integration
def test_cutting_the_runs_class_map_into_small_tiles_changes_no_plot(small_run):
    """The run's own class map, vectorized whole and as 64-pixel tiles: the same plots."""
    d = small_run[1].run_dir
    with rasterio.open(d / "maps" / "class.tif") as src:
        coca = src.read(1) == json.loads(src.tags()["classes"]).index("coca")
        transform, crs = src.transform, str(src.crs)
    with rasterio.open(d / "maps" / "coca_probability.tif") as src:
        prob = src.read(1)
    area = pixel_area_m2(GeoBox(coca.shape, transform, crs))

    def tiles(step):
        for r in range(0, coca.shape[0], step):
            for c in range(0, coca.shape[1], step):
                w = np.s_[r : r + step, c : c + step]
                yield _tile(r, c, coca[w], prob=prob[w], area=area[w], regions=np.ones((1, *coca[w].shape), bool))

    def plots(step):
        return make_plots(tiles(step), grid_affine=transform, crs=crs, region_ids=["all"], synthetic=True).frame

    whole, cut = plots(10_000), plots(64)
    assert len(cut) == len(whole) > 0
    assert cut["area_ha"].to_numpy() == pytest.approx(whole["area_ha"].to_numpy(), rel=1e-12)
    assert cut["prob_max"].tolist() == whole["prob_max"].tolist()
    assert all(a.equals(b) for a, b in zip(cut.geometry, whole.geometry, strict=True))
    # the cut really went through plots
    c0, r0 = ~transform * (cut.bounds["minx"].to_numpy(), cut.bounds["maxy"].to_numpy())
    c1, r1 = ~transform * (cut.bounds["maxx"].to_numpy(), cut.bounds["miny"].to_numpy())
    crossing = (np.floor(c0 / 64) != np.floor((c1 - 1) / 64)) | (np.floor(r0 / 64) != np.floor((r1 - 1) / 64))
    assert crossing.sum() >= 3
