"""Integration tests for estimator.testing.servers: real servers on loopback, started and stopped here.

Each test builds (or shares) a tiny world in a temporary directory: two small uint16 COGs
and seven STAC items whose hrefs are relative to the world root, as the demo writes them.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from pystac_client import Client
from rasterio.windows import Window

from estimator.testing import servers as serve
from estimator.testing.servers import (
    ServedWorld,
    Server,
    ServerStartError,
    serve_world,
    start_file_server,
    start_stac_server,
)

pytestmark = pytest.mark.integration

COLLECTION_ID = "sentinel-2-l2a-test"
N_ITEMS = 7
N_COGS = 2
BBOX = [-75.0, -10.0, -74.9, -9.9]
THUMBNAIL = "https://example.com/thumbnails/t.png"
# Short HTTP timeouts so a broken server fails a test quickly instead of hanging it.
GDAL_ENV = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_TIMEOUT": 10,
    "GDAL_HTTP_MAX_RETRY": 2,
    "GDAL_HTTP_RETRY_DELAY": 0.5,
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif",
}
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --------------------------------------------------------------------------- world builder


def _item_id(i: int) -> str:
    return f"S2B_18LXM_202301{i + 1:02d}_0_L2A"


def _cog_href(i: int) -> str:
    return f"cogs/{_item_id(i % N_COGS)}/B02.tif"


def _write_cog(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 10_000, size=(1, 300, 300), dtype=np.uint16)
    data[:, :40, :40] = 0  # a nodata corner, as at a swath edge
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "COG",
        "width": 300,
        "height": 300,
        "count": 1,
        "dtype": "uint16",
        "nodata": 0,
        "crs": "EPSG:32718",
        "transform": Affine(10.0, 0.0, 600_000.0, 0.0, -10.0, 8_900_000.0),
        "blocksize": 128,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def _item(i: int) -> dict[str, Any]:
    west, south, east, north = BBOX
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [],
        "id": _item_id(i),
        "collection": COLLECTION_ID,
        "bbox": BBOX,
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]],
        },
        "properties": {"datetime": f"2023-01-{i + 1:02d}T15:20:00Z", "eo:cloud_cover": 10.0 * i},
        "links": [
            {"rel": "self", "href": f"stac/items/{_item_id(i)}.json"},
            {"rel": "collection", "href": "stac/collection.json"},
            {"rel": "license", "href": "LICENSE.txt"},
        ],
        "assets": {
            "blue": {"href": _cog_href(i), "type": "image/tiff; application=geotiff; profile=cloud-optimized"},
            "thumbnail": {"href": THUMBNAIL, "type": "image/png"},
        },
    }


def _collection() -> dict[str, Any]:
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": COLLECTION_ID,
        "description": "Synthetic Sentinel-2 L2A-like test collection",
        "license": "CC-BY-4.0",
        "extent": {
            "spatial": {"bbox": [BBOX]},
            "temporal": {"interval": [["2023-01-01T00:00:00Z", "2023-01-31T23:59:59Z"]]},
        },
        "links": [{"rel": "self", "href": "stac/collection.json"}],
    }


def make_world(root: Path, items: list[dict[str, Any]] | None = None) -> Path:
    """Write a tiny world (COGs + STAC files with relative hrefs) under ``root``."""
    for i in range(N_COGS):
        _write_cog(root / _cog_href(i), seed=i)
    (root / "LICENSE.txt").write_text("synthetic test data\n")
    stac_dir = root / "stac"
    stac_dir.mkdir(parents=True, exist_ok=True)
    (stac_dir / "collection.json").write_text(json.dumps(_collection()))
    items = items if items is not None else [_item(i) for i in range(N_ITEMS)]
    (stac_dir / "items.ndjson").write_text("".join(json.dumps(item) + "\n" for item in items))
    return root


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    with NO_PROXY.open(request, timeout=5) as response:
        return response.status, response.headers, response.read()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def served(world: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedWorld]:
    with serve_world(world, tmp_path_factory.mktemp("served")) as served_world:
        yield served_world


@pytest.fixture
def started_file_servers(monkeypatch: pytest.MonkeyPatch) -> list[Server]:
    """Record the file servers serve_world starts, to check they are stopped on failure."""
    started: list[Server] = []

    def recording(*args: Any, **kwargs: Any) -> Server:
        server = start_file_server(*args, **kwargs)
        started.append(server)
        return server

    monkeypatch.setattr(serve, "start_file_server", recording)
    return started


# --------------------------------------------------------------------------- file server


def test_file_server_honours_range(served: ServedWorld, world: Path) -> None:
    on_disk = (world / _cog_href(0)).read_bytes()
    url = f"{served.files_url}/{_cog_href(0)}"

    status, headers, body = _get(url, {"Range": "bytes=100-299"})

    assert status == 206
    assert headers["Content-Range"] == f"bytes 100-299/{len(on_disk)}"
    assert body == on_disk[100:300]


def test_file_server_serves_whole_file_and_404(served: ServedWorld, world: Path) -> None:
    status, headers, body = _get(f"{served.files_url}/LICENSE.txt")
    assert status == 200
    assert headers["Accept-Ranges"] == "bytes"
    assert body == (world / "LICENSE.txt").read_bytes()
    with pytest.raises(urllib.error.HTTPError) as info:
        _get(f"{served.files_url}/cogs/missing.tif")
    info.value.close()
    assert info.value.code == 404


def test_small_range_requests_are_not_delayed(served: ServedWorld) -> None:
    # Without TCP_NODELAY each small response waits for a delayed ACK: ~40 ms per request,
    # so 25 requests take over 1 s; with it they take a few ms each even on a busy machine.
    port = int(served.files_url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    started = time.perf_counter()
    for i in range(25):
        connection.request("GET", f"/{_cog_href(0)}", headers={"Range": f"bytes={i}-{i + 99}"})
        response = connection.getresponse()
        assert response.status == 206 and len(response.read()) == 100
    elapsed = time.perf_counter() - started
    connection.close()
    assert elapsed < 0.6, f"25 keep-alive Range requests took {elapsed:.2f} s"


def test_gdal_reads_served_cog_window(served: ServedWorld, world: Path) -> None:
    window = Window(100, 90, 64, 70)  # spans four 128 px blocks
    with rasterio.open(world / _cog_href(1)) as local:
        expected = local.read(1, window=window)
        expected_profile = (local.crs, local.transform, local.nodata, local.overviews(1))

    with rasterio.Env(**GDAL_ENV), rasterio.open(f"{served.files_url}/{_cog_href(1)}") as remote:
        got = remote.read(1, window=window)
        got_profile = (remote.crs, remote.transform, remote.nodata, remote.overviews(1))

    assert got_profile == expected_profile
    np.testing.assert_array_equal(got, expected)


# --------------------------------------------------------------------------- STAC API


def test_stac_api_conformance(served: ServedWorld) -> None:
    _, _, body = _get(served.stac_url + "/")
    conforms_to = set(json.loads(body)["conformsTo"])
    assert "https://api.stacspec.org/v1.0.0/core" in conforms_to
    assert "https://api.stacspec.org/v1.0.0/item-search" in conforms_to
    # The search stage relies on this being honest: rustac ignores query/filter.
    assert not any("filter" in c or "item-search#query" in c for c in conforms_to)


@pytest.mark.parametrize(("limit", "n_pages"), [(2, 4), (3, 3)])
def test_pystac_client_pages_through_all_items(
    served: ServedWorld, limit: int, n_pages: int
) -> None:
    client = Client.open(served.stac_url)
    search = client.search(
        collections=[served.collection_id],
        bbox=[-75.5, -10.5, -74.5, -9.5],
        datetime="2023-01-01/2023-01-31",
        limit=limit,
    )

    pages = list(search.pages())

    assert [len(page) for page in pages][:-1] == [limit] * (n_pages - 1)
    assert len(pages) == n_pages
    ids = [item.id for page in pages for item in page]
    assert sorted(ids) == sorted(_item_id(i) for i in range(N_ITEMS))


def test_hrefs_point_at_servers(served: ServedWorld) -> None:
    items = list(Client.open(served.stac_url).search(collections=[served.collection_id]).items())
    assert len(items) == N_ITEMS
    index = {_item_id(i): i for i in range(N_ITEMS)}
    for item in items:
        assert item.assets["blue"].href == f"{served.files_url}/{_cog_href(index[item.id])}"
        assert item.assets["thumbnail"].href == THUMBNAIL
        links = {link.rel: link.href for link in item.links}
        assert links["self"].startswith(served.stac_url + "/")
        assert links["collection"] == f"{served.stac_url}/collections/{COLLECTION_ID}"
        assert links["license"] == f"{served.files_url}/LICENSE.txt"
        assert sum(link.rel == "self" for link in item.links) == 1
    status, _, _ = _get(items[0].assets["blue"].href, {"Range": "bytes=0-15"})
    assert status == 206


# --------------------------------------------------------------------------- lifecycle


def test_stop_leaves_no_process(world: Path, tmp_path: Path) -> None:
    served_world = serve_world(world, tmp_path)
    pids = [server.pid for server in served_world.servers]
    for pid in pids:
        assert not _gone(pid)
        # The servers must not fork: stopping a PID has to stop everything.
        children = Path(f"/proc/{pid}/task/{pid}/children")
        if children.exists():
            assert children.read_text().split() == []

    served_world.stop()
    served_world.stop()  # idempotent

    assert all(_gone(pid) for pid in pids)


def test_server_is_a_context_manager(tmp_path: Path) -> None:
    with start_stac_server(_collection(), [_item(0)], tmp_path) as server:
        assert _get(f"{server.url}/")[0] == 200
    assert _gone(server.pid)
    server.stop()


def test_servers_left_running_are_stopped_at_exit(tmp_path: Path) -> None:
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from estimator.testing.servers import start_stac_server\n"
        "collection, item, workdir = json.loads(sys.argv[1]), json.loads(sys.argv[2]), Path(sys.argv[3])\n"
        "print(start_stac_server(collection, [item], workdir).pid)\n"
    )
    args = [json.dumps(_collection()), json.dumps(_item(0)), str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(Path(serve.__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert _gone(int(done.stdout.strip()))


def test_two_worlds_at_once(served: ServedWorld, world: Path, tmp_path: Path) -> None:
    with serve_world(world, tmp_path) as other:
        urls = {served.stac_url, served.files_url, other.stac_url, other.files_url}
        assert len(urls) == 4
        for served_world in (served, other):
            search = Client.open(served_world.stac_url).search(
                collections=[served_world.collection_id], limit=5
            )
            assert len(list(search.items())) == N_ITEMS


# --------------------------------------------------------------------------- failures


def test_broken_collection_raises_with_log_tail(tmp_path: Path) -> None:
    broken = {**_collection(), "extent": "everywhere"}

    with pytest.raises(ServerStartError) as info:
        start_stac_server(broken, [_item(0)], tmp_path, ready_timeout=10)

    first, *tail = str(info.value).splitlines()
    assert first.startswith("stac server failed to start: process exited with code")
    assert "rustac serve --addr 127.0.0.1:" in first
    assert tail and all(line.startswith("  ") for line in tail)
    assert any("ERROR" in line for line in tail)
    assert isinstance(info.value, RuntimeError)


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def test_taken_port_raises(world: Path, tmp_path: Path, taken_port: int) -> None:
    with pytest.raises(ServerStartError, match=r"(?i)address already in use"):
        start_stac_server(_collection(), [_item(0)], tmp_path, port=taken_port)
    with pytest.raises(ServerStartError, match=r"(?i)address already in use"):
        start_file_server(world, port=taken_port, log_path=tmp_path / "files.log")


def test_port_taken_meanwhile_is_retried(
    tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = iter([taken_port, serve.free_port()])
    monkeypatch.setattr(serve, "free_port", lambda: next(ports))

    with start_stac_server(_collection(), [_item(0)], tmp_path) as server:
        assert not server.url.endswith(f":{taken_port}")
        assert _get(f"{server.url}/")[0] == 200


def test_stac_failure_stops_file_server(
    tmp_path: Path, started_file_servers: list[Server]
) -> None:
    world = make_world(tmp_path / "world")
    (world / "stac" / "collection.json").write_text(json.dumps({**_collection(), "extent": 1}))

    with pytest.raises(ServerStartError, match="stac server"):
        serve_world(world, tmp_path / "work")

    assert len(started_file_servers) == 1
    assert _gone(started_file_servers[0].pid)


def test_href_outside_world_is_rejected(
    tmp_path: Path, started_file_servers: list[Server]
) -> None:
    item = _item(0)
    item["assets"]["blue"]["href"] = "../elsewhere/B02.tif"
    world = make_world(tmp_path / "world", items=[item])

    with pytest.raises(ValueError, match="outside the world directory"):
        serve_world(world, tmp_path / "work")

    assert started_file_servers == []


def test_items_of_another_collection_are_rejected(tmp_path: Path) -> None:
    world = make_world(tmp_path / "world", items=[{**_item(0), "collection": "other"}])
    with pytest.raises(ValueError, match="other"):
        serve_world(world, tmp_path / "work")


def test_missing_rustac_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServerStartError, match="pip install rustac"):
        start_stac_server(_collection(), [], tmp_path)


def test_cli_rejects_missing_root(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        serve.main(["files", "--root", str(tmp_path / "nope"), "--port", "0"])
    assert info.value.code == 2
