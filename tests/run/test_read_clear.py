"""Reading only what can be used (SCL first, reflectance where a clear pixel lies inside a
region) gives the same classification inside the regions as reading everything."""

from __future__ import annotations

import dask
import numpy as np
import pytest

from estimator.config import PeriodConfig, StacConfig
from estimator.regions.geometry import load_regions
from estimator.run.tiles import classify_tile, inside_regions, usable_blocks
from estimator.stages.classify import make_predictor
from estimator.stages.load import configure_gdal, keep_blocks
from estimator.stages.mask import block_any
from estimator.stages.plan import make_plan
from estimator.stages.search import search_items

pytestmark = pytest.mark.integration

CLEAR = (4, 5, 6, 7, 11)


def test_keep_blocks_zeroes_dropped_blocks_and_drops_their_tasks():
    a = dask.array.ones((2, 4, 4), chunks=(1, 2, 2), dtype=np.uint16)
    keep = np.zeros((2, 2, 2), dtype=bool)
    keep[1, 0, 1] = True
    out = keep_blocks(a, keep)
    got = out.compute()
    assert got.sum() == 4 and (got[1, :2, 2:] == 1).all()
    with pytest.raises(ValueError, match="blocks"):
        keep_blocks(a, keep[0])
    # Only the kept block's source task remains once the graph is culled for the result.
    (opt,) = dask.optimize(out)
    sources = [k for k in dict(opt.__dask_graph__()) if isinstance(k, tuple) and k[0] == a.name]
    assert len(sources) <= 1


def test_block_any():
    m = np.zeros((5, 5), dtype=bool)
    m[4, 0] = True
    assert block_any(m, 2).tolist() == [[False, False, False], [False, False, False], [True, False, False]]


def test_reading_only_clear_blocks_in_regions_is_bit_identical_inside(small_world, served_world, trained_model):
    found = search_items(
        StacConfig(url=served_world.stac_url, max_cloud_cover=100),
        (-180, -90, 180, 90), PeriodConfig(start=small_world.spec.start, end=small_world.spec.end), progress=False,
    )
    items = {i.id: i for i in found.items}
    all_regions = load_regions(small_world.regions_path, "region_id")
    # One region of several on the grid of all: chunks of the others lie outside it.
    regions = all_regions[:1]
    # Small chunks so that some lie wholly outside the regions and some dates of some
    # chunks hold no clear pixel inside.
    plan = make_plan([i.to_dict() for i in found.items], all_regions, resolution=10, tile_size=4096, chunk_size=64)
    tile = plan.tiles[0]
    configure_gdal()
    predictor = make_predictor(trained_model)
    inside = inside_regions(regions, tile.geobox)
    with dask.config.set(scheduler="threads"):
        keep = usable_blocks(tile, plan, items, regions, CLEAR)
        full = classify_tile(tile, plan, items, regions, trained_model, predictor, CLEAR)
        part = classify_tile(tile, plan, items, regions, trained_model, predictor, CLEAR, read_clear_only=True)
    assert keep is not None and full is not None and part is not None
    # The test means something only if blocks were skipped, whole chunks and single dates.
    outside_chunks = ~block_any(inside, plan.chunk_size)
    assert outside_chunks.any() and not keep[:, outside_chunks].any()
    assert 0 < keep[:, ~outside_chunks].mean() < 1
    np.testing.assert_array_equal(part.raw_codes, full.raw_codes)
    np.testing.assert_array_equal(part.target, full.target)  # NaN where not classified, in both
    np.testing.assert_array_equal(part.n_clear[inside], full.n_clear[inside])
    np.testing.assert_array_equal(part.span[:, inside], full.span[:, inside])
    assert (part.n_clear[~inside] == -1).all()
    assert part.groups == full.groups
