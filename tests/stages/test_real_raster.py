"""Real Sentinel-2 L2A pixels through plan -> load -> mask -> features, over HTTP.

The real rasters of tile 29RKH (2020-02-19, baseline 02.14, desert in Western Sahara) are
served read-only from ../shared/data/real/rasters by a Range-capable loopback server, and
read through the recorded Earth Search v1 item that describes them. They are the Earth
Search COGs downsampled 10x (10 m bands at 100 m, 20 m bands at 200 m). Expected values come
from the files themselves, read with rasterio over the same window. Skipped when the shared
data is absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import dask
import numpy as np
import pystac
import pytest
import rasterio
from rasterio.windows import Window, from_bounds
from shapely.geometry import box

from estimator.bands import REFLECTANCE_BANDS, S2_BAND_ID, SCL, SCL_CLEAR_DEFAULT
from estimator.run.tiles import tile_features
from estimator.stages.load import configure_gdal, load_tile
from estimator.stages.plan import Plan, Tile, make_plan
from estimator.stages.providers import REQUIRED_BANDS, get_provider, normalize_item
from estimator.testing.servers import start_file_server

pytestmark = pytest.mark.integration

RASTERS = "real/rasters/s2_l2a_T29RKH_2020-02-19_earthsearch_downsampled"
ITEM = "real/stac/earth_search_v1/item_S2A_29RKH_20200219_0_L2A.json"
#: About 0.2 degree inside the tile (-11.98..-10.87 E, 24.30..25.30 N), by the cloud edge in
#: its north-east: mostly bare ground (SCL 5) with some cirrus and cloud.
AREA = box(-11.15, 24.95, -10.95, 25.15)
CRS = "EPSG:32629"
RESOLUTION = 200


@dataclass(frozen=True)
class Run:
    plan: Plan
    tile: Tile
    reflectance: np.ndarray
    """(band, time, y, x) as loaded."""
    scl: np.ndarray
    """(time, y, x) as loaded."""
    features: np.ndarray
    n_clear: np.ndarray
    root: Path


def _file(band: str) -> str:
    return f"{S2_BAND_ID[band]}.tif"  # SOURCES.md: asset red -> B04.tif, scl -> SCL.tif, ...


def _window_pixels(path: Path, bounds: tuple[float, float, float, float], pad: int = 0) -> np.ndarray:
    with rasterio.open(path) as src:
        w = from_bounds(*bounds, transform=src.transform).round_offsets().round_lengths()
        w = Window(w.col_off - pad, w.row_off - pad, w.width + 2 * pad, w.height + 2 * pad)
        return src.read(1, window=w)


@pytest.fixture(scope="module")
def run(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = shared / RASTERS
    missing = [_file(b) for b in REQUIRED_BANDS if not (root / _file(b)).is_file()]
    if missing:
        pytest.skip(f"real rasters incomplete in {root}: missing {missing}")
    raw = json.loads((shared / ITEM).read_text(encoding="utf-8"))
    with start_file_server(root, log_path=tmp_path_factory.mktemp("files") / "files.log") as server:
        for band in REQUIRED_BANDS:
            asset = raw["assets"][band]
            asset["href"] = f"{server.url}/{_file(band)}"
            # The item describes the full-resolution COGs (10980 px at 10 m); these files
            # cover the same extent with 10x larger pixels. The reader georeferences from
            # the file, but odc-stac plans from this metadata (source grid, footprint,
            # native resolution), so it must describe the file actually served, as a
            # catalog of these files would.
            with rasterio.open(root / _file(band)) as src:
                asset["proj:shape"] = [src.height, src.width]
                asset["proj:transform"] = list(src.transform)[:6]
        item = normalize_item(raw, get_provider("local"))
        plan = make_plan([item], AREA, resolution=RESOLUTION, crs=CRS)
        assert len(plan.tiles) == 1
        tile = plan.tiles[0]
        items = {item["id"]: pystac.Item.from_dict(item)}
        configure_gdal()
        with dask.config.set(scheduler="threads"):
            stack = load_tile(tile, plan, items)
            assert stack is not None
            reflectance, scl = dask.compute(stack.reflectance, stack.scl)
            result = tile_features(tile, plan, items, SCL_CLEAR_DEFAULT)
            assert result is not None
            features, n_clear = (a.compute() for a in result)
    return Run(plan, tile, np.asarray(reflectance), np.asarray(scl), np.asarray(features), np.asarray(n_clear), root)


def test_plan_uses_item_scaling(run: Run) -> None:
    (info,) = run.plan.items.values()
    assert info.processing_baseline == "02.14"
    assert set(info.scaling) == {(1e-4, 0.0)}
    assert run.reflectance.shape[:2] == (len(REFLECTANCE_BANDS), 1)
    assert run.scl.shape == (1, *run.reflectance.shape[2:])
    assert run.tile.geobox.shape.yx == run.reflectance.shape[2:]


def test_reflectance_is_physical_and_unshifted(run: Run) -> None:
    refl = run.reflectance
    assert np.isfinite(refl).all(), "the window lies inside the scene: no pixel may be missing"
    assert refl.min() >= 0.0 and refl.max() < 2.0
    red = refl[REFLECTANCE_BANDS.index("red"), 0]
    median_red = float(np.median(red))
    assert 0.0 < median_red < 0.6
    # Baseline 02.14 has no BOA offset: reflectance = DN / 10000 (B04 mean DN is 3410 over
    # the tile). A wrongly applied -0.1 would put the median 0.1 lower.
    dn = _window_pixels(run.root / _file("red"), run.tile.geobox.boundingbox)
    assert dn.min() > 0
    assert abs(median_red - float(np.median(dn)) / 10000) < 0.05


def test_scl_matches_the_file(run: Run) -> None:
    bounds = run.tile.geobox.boundingbox
    expected = _window_pixels(run.root / _file("scl"), bounds)
    loaded = run.scl[0]
    codes = np.arange(len(SCL))
    exp_frac = np.bincount(expected.ravel(), minlength=len(SCL)) / expected.size
    got_frac = np.bincount(loaded.ravel(), minlength=len(SCL)) / loaded.size
    # desert: mostly "not vegetated", no vegetation, no missing data
    assert exp_frac[SCL.NOT_VEGETATED] > 0.7
    assert got_frac[SCL.NOT_VEGETATED] > 0.7
    assert got_frac[SCL.VEGETATION] == 0 and got_frac[SCL.NO_DATA] == 0
    # some cloud and cirrus in this window, so that masking is exercised
    assert got_frac[[SCL.CLOUD_MEDIUM, SCL.CLOUD_HIGH, SCL.THIN_CIRRUS]].sum() > 0.1
    # Same histogram as the file over the window; the output grid need not share the file's
    # 200 m pixel edges, so allow the border row/column to differ.
    np.testing.assert_allclose(got_frac, exp_frac, atol=0.02, err_msg=f"SCL codes {codes.tolist()}")
    padded = _window_pixels(run.root / _file("scl"), bounds, pad=1)
    assert set(np.unique(loaded)) <= set(np.unique(padded))


def test_clear_counts_and_features(run: Run) -> None:
    n_clear = run.n_clear
    assert set(np.unique(n_clear)) <= {0, 1}
    scl = run.scl[0]
    expected_clear = np.isin(scl, SCL_CLEAR_DEFAULT) & np.isfinite(run.reflectance[:, 0]).all(axis=0)
    np.testing.assert_array_equal(n_clear == 1, expected_clear)
    assert 0.5 < expected_clear.mean() < 0.95
    feats = run.features
    assert feats.shape[1:] == n_clear.shape
    assert np.isfinite(feats[:, n_clear == 1]).all()
    assert np.isnan(feats[:, n_clear == 0]).all()
