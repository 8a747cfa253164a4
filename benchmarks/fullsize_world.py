"""A full-size SYNTHETIC world for benchmarks: one 10980 x 10980 px tile, several dates.

Run:  python benchmarks/fullsize_world.py --out /tmp/fullsize [--size 10980] [--dates 6]

The demo generator (``estimator.demo.world``) renders a whole date in memory, about 0.7 GB
of working arrays per Mpx-date pair at 2196 px (1.6 GiB peak with 2 dates in flight); at
10980 px that is 25x more (about 40 GiB), beyond a 24 GiB machine. So this script
generates a demo world of ``--base`` px (2196 by default, a fifth of a Sentinel-2 tile),
then tiles it k x k times into COGs of ``--size`` px (each band written with the same
profile as Earth Search v1 COGs: DEFLATE + predictor, 1024 px internal tiles, overviews)
and rewrites the STAC items' geometry, bbox, proj:shape and proj:transform to match.
Swath-edge nodata strips and their footprints are repeated with the pixels.

Layout under ``--out`` (never in the repository)::

    base/                  the small demo world it was made from (cached)
    world/stac/...         collection.json, items.ndjson (hrefs relative to world/)
    world/cogs/<item>/...  10980 px COGs per band (20 m bands 5490 px)
    world/labels.geojson   the base world's labelled plots (they fall in the top-left copy)
    world/regions.geojson  one region covering the whole tile (every pixel is classified)
    world/fullsize.json    spec and timings; written last, marks a complete world

Everything is SYNTHETIC: a benchmark fixture, not Sentinel-2 observations. The k x k copies
repeat the same landscape; that does not change the cost of reading, features or
classification per pixel, which is what the benchmark measures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from shapely.affinity import translate
from shapely.geometry import mapping, shape

from estimator.bands import NATIVE_RESOLUTION
from estimator.demo.landscape import from_lonlat, to_lonlat
from estimator.demo.world import GENERATOR_VERSION, WorldSpec, generate_world

__all__ = ["FullsizeSpec", "FullsizeWorld", "make_fullsize_world"]

#: Bump when the output of this script changes; a cached world of another version is remade.
FULLSIZE_VERSION = "1"
#: Earth Search v1 sentinel-cogs: 1024 px internal tiles, DEFLATE with horizontal predictor.
COG_BLOCKSIZE = 1024


@dataclass(frozen=True)
class FullsizeSpec:
    size_px: int = 10980
    """Edge of the full-size tile in 10 m pixels (a Sentinel-2 tile is 10980)."""
    n_dates: int = 6
    """Acquisitions (items)."""
    base_px: int = 2196
    """Edge of the demo world that is tiled; must divide size_px."""
    seed: int = 7
    """Seed of the base demo world."""


@dataclass(frozen=True)
class FullsizeWorld:
    root: Path
    spec: FullsizeSpec
    base_root: Path
    base_spec: WorldSpec

    @property
    def labels_path(self) -> Path:
        return self.root / "labels.geojson"

    @property
    def regions_path(self) -> Path:
        return self.root / "regions.geojson"


def _base_spec(spec: FullsizeSpec) -> WorldSpec:
    return WorldSpec(size_px=spec.base_px, n_dates=spec.n_dates, seed=spec.seed)


def _record(spec: FullsizeSpec) -> dict[str, Any]:
    return {"fullsize_version": FULLSIZE_VERSION, "demo_generator_version": GENERATOR_VERSION, "spec": asdict(spec)}


def load_fullsize_world(out: Path, spec: FullsizeSpec) -> FullsizeWorld | None:
    """The cached world under ``out`` if it was made from ``spec`` by this version."""
    marker = out / "world" / "fullsize.json"
    if not marker.is_file():
        return None
    rec = json.loads(marker.read_text())
    if {k: rec.get(k) for k in _record(spec)} != _record(spec):
        return None
    return FullsizeWorld(out / "world", spec, out / "base", _base_spec(spec))


def _tile_cog(src_path: Path, dst_path: Path, k: int, resampling: str) -> int:
    """Write ``src`` repeated k x k times as a COG; return bytes written."""
    with rasterio.open(src_path) as src:
        data = src.read(1)
        profile = src.profile
        transform = src.transform
    big = np.tile(data, (k, k))
    dst_path.parent.mkdir(parents=True, exist_ok=True)
    out_profile = {
        "driver": "COG", "count": 1, "dtype": big.dtype.name, "width": big.shape[1], "height": big.shape[0],
        "crs": profile["crs"], "transform": transform, "nodata": 0,
        "compress": "DEFLATE", "predictor": "YES" if big.dtype == np.uint16 else "NO",
        "blocksize": COG_BLOCKSIZE, "overview_resampling": resampling,
        "overview_count": max(1, int(math.log2(min(big.shape) / 256))),
    }  # fmt: skip
    with rasterio.open(dst_path, "w", **out_profile) as dst:
        dst.write(big, 1)
    return dst_path.stat().st_size


def _tiled_footprint(geom_lonlat: dict[str, Any], epsg: int, base_m: float, k: int) -> shapely.Geometry:
    utm = from_lonlat(shape(geom_lonlat), epsg)
    copies = [translate(utm, xoff=i * base_m, yoff=-j * base_m) for i in range(k) for j in range(k)]
    # Adjacent copies share edges; a small buffer closes slivers before the union.
    merged = shapely.union_all([c.buffer(1.0) for c in copies]).buffer(-1.0).simplify(20.0)
    return shapely.orient_polygons(to_lonlat(merged, epsg))


def _rounded(obj: Any, nd: int) -> Any:
    if isinstance(obj, float):
        return round(obj, nd)
    if isinstance(obj, (list, tuple)):
        return [_rounded(v, nd) for v in obj]
    if isinstance(obj, dict):
        return {key: _rounded(v, nd) for key, v in obj.items()}
    return obj


def _full_box(base: WorldSpec, size_px: int) -> shapely.Polygon:
    x0, y0 = base.origin_x, base.origin_y
    return shapely.box(x0, y0 - size_px * 10.0, x0 + size_px * 10.0, y0)


def make_fullsize_world(out: Path, spec: FullsizeSpec = FullsizeSpec(), *, workers: int = 2) -> FullsizeWorld:
    """Generate (once, cached) the base world and its k x k tiling under ``out``."""
    out = Path(out).absolute()
    cached = load_fullsize_world(out, spec)
    if cached is not None:
        print(f"full-size world {cached.root} is up to date")
        return cached
    if spec.size_px % spec.base_px:
        raise SystemExit(f"--size {spec.size_px} must be a multiple of --base {spec.base_px}")
    k = spec.size_px // spec.base_px
    base_spec = _base_spec(spec)
    t0 = time.perf_counter()
    print(f"base demo world {spec.base_px} px x {spec.n_dates} dates in {out / 'base'} ...", flush=True)
    base = generate_world(out / "base", base_spec, progress=True)
    t_base = time.perf_counter() - t0

    root = out / "world"
    if root.exists():
        shutil.rmtree(root)
    (root / "stac").mkdir(parents=True)
    collection = json.loads(base.collection_path.read_text())
    items = [json.loads(line) for line in base.items_path.read_text().splitlines() if line.strip()]
    jobs = []
    for item in items:
        for key, asset in item["assets"].items():
            res = NATIVE_RESOLUTION[key]
            jobs.append(
                (base.root / asset["href"], root / asset["href"], "nearest" if key == "scl" else "average", res)
            )
    t1 = time.perf_counter()
    print(f"tiling {len(jobs)} COGs {k} x {k} into {spec.size_px} px ({workers} at a time) ...", flush=True)
    nbytes = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_tile_cog, src, dst, k, rs) for src, dst, rs, _ in jobs]
        for n, f in enumerate(futures, 1):
            nbytes += f.result()
            if n % 11 == 0 or n == len(futures):
                print(
                    f"  {n}/{len(futures)} COGs, {nbytes / 2**30:.2f} GiB, {time.perf_counter() - t1:.0f} s", flush=True
                )
    t_tile = time.perf_counter() - t1

    base_m = spec.base_px * 10.0
    box_lonlat = shapely.orient_polygons(to_lonlat(_full_box(base_spec, spec.size_px), base_spec.epsg))
    with (root / "stac" / "items.ndjson").open("w") as fh:
        for item in items:
            fp = _tiled_footprint(item["geometry"], base_spec.epsg, base_m, k)
            item["geometry"] = _rounded(mapping(fp), 9)
            item["bbox"] = [round(v, 6) for v in fp.bounds]
            c = fp.centroid
            item["properties"]["proj:centroid"] = {"lat": round(c.y, 5), "lon": round(c.x, 5)}
            item["properties"]["benchmark:fullsize"] = {"base_px": spec.base_px, "copies": k}
            for key, asset in item["assets"].items():
                n = spec.size_px * 10 // NATIVE_RESOLUTION[key]
                asset["proj:shape"] = [n, n]
            fh.write(json.dumps(item, separators=(",", ":")) + "\n")
    collection["extent"]["spatial"]["bbox"] = [[round(v, 6) for v in box_lonlat.bounds]]
    collection["title"] = "Sentinel-2 Level-2A (SYNTHETIC full-size benchmark tile)"
    (root / "stac" / "collection.json").write_text(json.dumps(collection, indent=1))
    shutil.copy(base.labels_path, root / "labels.geojson")
    # One region over the whole tile, densified so its edges follow the UTM grid in lon/lat.
    region = to_lonlat(_full_box(base_spec, spec.size_px).segmentize(100.0), base_spec.epsg)
    regions = {
        "type": "FeatureCollection",
        "features": [{
            "type": "Feature",
            "properties": {"region_id": "tile", "name": "whole tile (SYNTHETIC)", "synthetic": True},
            "geometry": _rounded(mapping(shapely.orient_polygons(region)), 7),
        }],
    }  # fmt: skip
    (root / "regions.geojson").write_text(json.dumps(regions))
    disk = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    rec = {
        **_record(spec),
        "note": "SYNTHETIC benchmark world: a demo world tiled k x k, not Sentinel-2 observations",
        "copies": k,
        "seconds": {"base_world": round(t_base, 1), "tiling": round(t_tile, 1)},
        "disk_bytes": disk,
    }
    (root / "fullsize.json").write_text(json.dumps(rec, indent=1))
    print(
        f"full-size world {root}: base {t_base:.0f} s + tiling {t_tile:.0f} s, {disk / 2**30:.2f} GiB on disk",
        flush=True,
    )
    return FullsizeWorld(root, spec, base.root, base_spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/fullsize"))
    ap.add_argument("--size", type=int, default=10980, help="tile edge, 10 m pixels (default 10980)")
    ap.add_argument("--dates", type=int, default=6, help="acquisitions (default 6)")
    ap.add_argument("--base", type=int, default=2196, help="edge of the demo world that is tiled (divides --size)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workers", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    a = ap.parse_args()
    base = min(a.base, a.size)
    make_fullsize_world(a.out, FullsizeSpec(a.size, a.dates, base, a.seed), workers=a.workers)


if __name__ == "__main__":
    main()
