"""Search against a real STAC API on loopback (rustac): paging, cloud filter, errors."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pystac_client import Client

from estimator.config import PeriodConfig, StacConfig
from estimator.errors import NoScenesFoundError, StacConnectionError
from estimator.stages.search import cloud_filter_mode, search_items
from estimator.testing.servers import free_port

pytestmark = pytest.mark.integration
WORLD_BBOX = (-180.0, -90.0, 180.0, 90.0)


def _items(world) -> list[dict]:
    return [json.loads(line) for line in world.items_path.read_text().splitlines() if line.strip()]


def _period(world) -> PeriodConfig:
    return PeriodConfig(start=world.spec.start, end=world.spec.end)


@pytest.mark.parametrize(("name", "mode"), [("earth_search_v1", "query"), ("planetary_computer", "filter")])
def test_filter_mode_follows_real_conformance(shared, name, mode):
    landing = json.loads((shared / f"real/stac/{name}/landing_page.json").read_text())
    assert cloud_filter_mode(Client.from_dict(landing)) == mode


def test_pages_through_every_item_and_filters_clouds_on_the_client(small_world, served_world):
    items = _items(small_world)
    limit = 40.0
    cfg = StacConfig(url=served_world.stac_url, page_size=2, max_cloud_cover=limit)
    found = search_items(cfg, WORLD_BBOX, _period(small_world), progress=False)
    assert found.filter_mode == "client"  # rustac advertises no query/filter conformance
    assert found.pages >= len(items) // 2
    assert found.n_returned == len(items)
    cloudy = {i["id"] for i in items if i["properties"]["eo:cloud_cover"] > limit}
    assert 0 < len(cloudy) < len(items)  # the small world has both kinds of date
    assert found.n_too_cloudy == len(cloudy)
    assert {i.id for i in found.items} == {i["id"] for i in items} - cloudy


def test_period_and_bbox_restrict_the_search(small_world, served_world):
    cfg = StacConfig(url=served_world.stac_url, page_size=3, max_cloud_cover=100)
    start = dt.date.fromisoformat(small_world.spec.start)
    period = PeriodConfig(start=start, end=start + dt.timedelta(days=60))
    found = search_items(cfg, WORLD_BBOX, period, progress=False)
    want = [i for i in _items(small_world) if i["properties"]["datetime"][:10] <= period.end.isoformat()]
    assert {i.id for i in found.items} == {i["id"] for i in want}
    with pytest.raises(NoScenesFoundError, match="no scene intersects"):
        search_items(cfg, (10.0, 10.0, 10.1, 10.1), _period(small_world), progress=False)


def test_no_scenes_in_period_is_a_clear_error(served_world):
    cfg = StacConfig(url=served_world.stac_url)
    with pytest.raises(NoScenesFoundError, match="widen the period"):
        search_items(cfg, WORLD_BBOX, PeriodConfig(start="2015-01-01", end="2015-02-01"), progress=False)


def test_all_scenes_too_cloudy_says_so(small_world, served_world):
    cfg = StacConfig(url=served_world.stac_url, max_cloud_cover=0.0)
    with pytest.raises(NoScenesFoundError, match="exceed max_cloud_cover"):
        search_items(cfg, WORLD_BBOX, _period(small_world), progress=False)


def test_unreachable_api_is_a_one_line_error():
    url = f"http://127.0.0.1:{free_port()}/"
    with pytest.raises(StacConnectionError, match="cannot reach the STAC API") as e:
        search_items(StacConfig(url=url, timeout_s=2), WORLD_BBOX, PeriodConfig(start="2022-01-01", end="2022-02-01"))
    assert "\n" not in str(e.value)


def test_a_file_server_is_not_a_stac_api(served_world):
    with pytest.raises(StacConnectionError):
        search_items(
            StacConfig(url=served_world.files_url + "/nothing-here", timeout_s=5),
            WORLD_BBOX, PeriodConfig(start="2022-01-01", end="2022-02-01"), progress=False,
        )
