"""Inputs for forecasting a Loreto-year with ``estimator plan``: a SYNTHETIC item list over
the real Sentinel-2 tiles and a realistically deep forest.

Run (the INEI boundaries must be readable, e.g. ESTIMATOR_BOUNDARIES=../data/real/boundaries):

    python benchmarks/loreto_forecast.py --out /tmp/loreto
    python -m estimator plan configs/jobs/loreto-2023.yaml --items /tmp/loreto/items.json \\
        --set model=/tmp/loreto/model --workers 16

What is real and what is made up:

* The tiles are the real MGRS tiles that meet Loreto (``estimator.regions.named.s2_tiles``,
  as ``regions show loreto`` lists them), with their real footprints: a tile is its 100 km
  MGRS square plus 9.8 km to the east and the south, 10980 px of 10 m in its UTM zone.
* The dates are made up to match Sentinel-2's revisit in 2023: with two satellites every
  tile is imaged every 5 days (73 dates a year); the phase of the 5-day cycle follows the
  tile's longitude (neighbouring orbits cross about 2.3 degrees apart each day). Real tiles
  on two orbits' overlap get more dates, and real footprints at a swath edge are partial:
  both are left out, so the forecast errs towards fewer pixel reads.
* Scene cloud cover is drawn so that its mean is about 70 % (Loreto's scenes are mostly
  cloud): one regional level per date (a Beta(3.5, 1.5) draw, mean 0.70) plus a tile's own
  deviation (normal, sd 10 points), clipped to 0-100. The job's ``max_cloud_cover: 90``
  drops the cloudiest scenes, as it would drop real ones.
* Item metadata other than the above is a real Earth Search v1 item (``--template``) with
  its ids, hrefs, geometry and projection rewritten; assets other than the reflectance bands
  and SCL are dropped to keep the file small.
* The model is 100 trees of depth 20 (scikit-learn, ``balanced_subsample``) fitted on
  SYNTHETIC feature rows whose classes overlap heavily (weak signal, much noise), so the
  trees grow to their full depth as on real, noisy labels. DESIGN.md measured such a forest
  at about 0.1 Mpix/s per core; it is a stand-in until a forest fitted on real labels exists.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import shapely
from shapely.geometry import mapping
from sklearn.ensemble import RandomForestClassifier

from estimator.bands import NATIVE_RESOLUTION, REFLECTANCE_BANDS
from estimator.location import write_json
from estimator.regions.named import resolve_region, s2_tiles
from estimator.stages.features import FEATURE_NAMES
from estimator.stages.model import CARD_SCHEMA
from training.fit import save_model

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "stac" / "earth_search_v1" / "item_S2A_13TDE_20231008_0_L2A.json"
#: Sentinel-2A and 2B together: every tile every 5 days at the equator.
REVISIT_DAYS = 5
TILE_M = 109_800
CLASSES = ("bare", "coca", "forest", "other_crops", "pasture", "regrowth")


def tile_box(tile: str) -> tuple[int, tuple[float, float, float, float]]:
    """EPSG code and UTM bounds (minx, miny, maxx, maxy) of a Sentinel-2 tile."""
    import mgrs

    lat, lon = mgrs.MGRS().toLatLon(tile + "0" * 10)  # the 100 km square's south-west corner
    zone = int(tile[:2])
    epsg = (32600 if tile[2] >= "N" else 32700) + zone
    x, y = pyproj.Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    # Round to the 100 km grid: the conversion of the corner is exact only to a few cm.
    x0, y0 = round(x / 100_000) * 100_000, round(y / 100_000) * 100_000
    top = y0 + 100_000
    return epsg, (x0, top - TILE_M, x0 + TILE_M, top)


def make_items(template: dict[str, Any], tiles: list[str], year: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    start = dt.date(year, 1, 1)
    days = [start + dt.timedelta(days=d) for d in range(0, 365 + REVISIT_DAYS)]
    regional = {d: float(rng.beta(3.5, 1.5)) for d in days}
    keep = {*REFLECTANCE_BANDS, "scl"}
    items = []
    for tile in tiles:
        epsg, (x0, y0, x1, y1) = tile_box(tile)
        to_ll = pyproj.Transformer.from_crs(epsg, 4326, always_xy=True)
        box = shapely.segmentize(shapely.box(x0, y0, x1, y1), 5000)
        geom = shapely.transform(box, lambda xy, t=to_ll: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
        lon = geom.centroid.x
        phase = int(round(-lon / 2.3)) % REVISIT_DAYS
        for k, day in enumerate(d for d in days[phase:] if d.year == year and (d - start).days % REVISIT_DAYS == phase):
            platform = "sentinel-2a" if k % 2 == 0 else "sentinel-2b"
            it = copy.deepcopy(template)
            iid = f"S2{platform[-1].upper()}_{tile}_{day:%Y%m%d}_0_L2A"
            it["id"] = iid
            it["geometry"] = mapping(geom)
            it["bbox"] = list(geom.bounds)
            props = it["properties"]
            # Local solar time about 10:30: UTC = 10:30 - lon / 15 h.
            hours = 10.5 - lon / 15.0
            when = dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(hours=hours)
            cloud = float(np.clip(100 * regional[day] + rng.normal(0, 10), 0, 100))
            props.update({
                "datetime": when.isoformat().replace("+00:00", "Z"),
                "platform": platform,
                "eo:cloud_cover": round(cloud, 3),
                "proj:epsg": epsg,
                "mgrs:utm_zone": int(tile[:2]),
                "mgrs:latitude_band": tile[2],
                "mgrs:grid_square": tile[3:],
                "grid:code": f"MGRS-{tile}",
                "s2:processing_baseline": "05.09",
                "synthetic": True,
            })
            for k2 in [k2 for k2 in props if k2.startswith(("s2:product_uri", "s2:granule_id", "s2:datastrip_id", "earthsearch:"))]:
                del props[k2]
            it["assets"] = {k2: a for k2, a in it["assets"].items() if k2 in keep}
            for key, a in it["assets"].items():
                res = NATIVE_RESOLUTION[key]
                a["href"] = f"https://sentinel-cogs.s3.us-west-2.amazonaws.com/sentinel-s2-l2a-cogs/{int(tile[:2])}/{tile[2]}/{tile[3:]}/{day.year}/{day.month}/{iid}/{Path(a['href']).name}"
                a["proj:shape"] = [TILE_M // res, TILE_M // res]
                a["proj:transform"] = [res, 0, x0, 0, -res, y1]
            it["links"] = []
            items.append(it)
    return items


def make_model(out: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, nf = 20_000, len(FEATURE_NAMES)  # as bench_stages.py fits its 100 x 20 forest
    X = rng.standard_normal((n, nf)).astype(np.float32)
    # Weak signal in a few features, much noise: classes overlap as real land covers do.
    score = X[:, :len(CLASSES)] + 2.5 * rng.standard_normal((n, len(CLASSES)))
    y = np.asarray(CLASSES)[np.argmax(score, axis=1)]
    forest = RandomForestClassifier(
        n_estimators=100, max_depth=20, class_weight="balanced_subsample", random_state=seed, n_jobs=1
    ).fit(X, y)
    card = {
        "card_schema": CARD_SCHEMA,
        "estimator": "RandomForestClassifier",
        "features": list(FEATURE_NAMES),
        "classes": [str(c) for c in forest.classes_],
        "target_class": "coca",
        "synthetic": True,
        "note": "SYNTHETIC benchmark stand-in: 100 trees of depth 20 on noisy synthetic rows (benchmarks/loreto_forecast.py)",
        "nodes": int(sum(e.tree_.node_count for e in forest.estimators_)),
    }
    save_model(out, forest, card)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="directory for items.json and model/ (never the repository)")
    ap.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help="a real Earth Search v1 item JSON")
    ap.add_argument("--year", type=int, default=2023)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not os.environ.get("ESTIMATOR_BOUNDARIES"):
        ap.error("set ESTIMATOR_BOUNDARIES to the directory holding the INEI 2007 boundary files")
    region = resolve_region("loreto")
    tiles = s2_tiles(region.geometry)
    template = json.loads(args.template.read_text())
    items = make_items(template, tiles, args.year, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "items.json", {"type": "FeatureCollection", "features": items})
    clouds = np.array([i["properties"]["eo:cloud_cover"] for i in items])
    print(f"{len(tiles)} tiles, {len(items)} SYNTHETIC items ({len(items) / len(tiles):.0f} per tile), "
          f"mean scene cloud {clouds.mean():.1f} %, {np.mean(clouds > 90) * 100:.0f} % above 90 %")
    if not (args.out / "model" / "model.skops").is_file():
        make_model(args.out / "model", args.seed)
    card = json.loads((args.out / "model" / "card.json").read_text())
    print(f"model: 100 trees, depth 20, {card['nodes']:,} nodes (SYNTHETIC rows) in {args.out / 'model'}")
    print(f"next: python -m estimator plan configs/jobs/loreto-2023.yaml --items {args.out / 'items.json'} "
          f"--set model={args.out / 'model'} --workers 16")


if __name__ == "__main__":
    main()
