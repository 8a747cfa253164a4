"""Stratified random sample of pixel centres from a run's class map, for reference labeling.

Strata are map classes, by default crossed with regions (``region|class``) so that each
region gets its own error-adjusted estimate. Regions may overlap (a district inside a
province): strata are then drawn on the partition of the overlaps, one cell per set of
regions a pixel lies in (``province+district|coca``, ``province|coca``), and ``assess``
estimates each region from the cells that make it up. Allocation follows Olofsson et al. (2014):
a minimum number of units per stratum (rare classes such as coca), the rest proportional
to stratum size; without ``n``, the total comes from a target standard error of overall
accuracy (their eq. 13). Drawing is exact and streaming: pass 1 counts pixels per stratum,
then random ranks are drawn per stratum and pass 2 picks those pixels.

The output is a GeoJSON FeatureCollection of points (lon/lat) with empty fields for two
interpreters and a consensus label; its ``sampling`` member records the design (strata
sizes in pixels and true hectares, seed, class-map checksum) that ``assess`` relies on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pyproj import Transformer
from tqdm.auto import tqdm

from estimator.errors import EstimatorError
from estimator.location import check_writable, write_json
from estimator.run.rundir import Run, RunDir, open_run
from estimator.stats.area import allocate, sample_size
from estimator.stats.reference import reference_units_of_run, trained_on

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = [
    "LABEL_FIELDS", "MAX_SAMPLE_N", "SAMPLE_SCHEMA", "Stratum", "draw_ranks", "draw_sample", "keep_allocated", "sample_frame",
    "sample_run", "stratum_id", "stratum_table", "trained_units",
]

SAMPLE_SCHEMA = 1
#: Largest sample drawn: units are labeled by photo-interpreters one by one, and a larger
#: file is a typo (``--n 100000000`` once wrote 469 MB), not a design.
MAX_SAMPLE_N = 100_000
#: Properties interpreters fill in.
LABEL_FIELDS = ("interpreter_1", "interpreter_2", "consensus")
#: Conjectured user's accuracy per map class for the sample-size formula (Olofsson 2014
#: suggest lower values for rare, hard classes).
DEFAULT_EXPECTED_UA = {"coca": 0.7}
DEFAULT_EXPECTED_UA_OTHER = 0.9


@dataclass(frozen=True)
class Stratum:
    id: str
    map_class: str
    region: str | None
    """The cell's label: a region id, or ids joined by ``+`` where regions overlap."""
    pixels: int
    area_ha: float
    regions: tuple[str, ...] = ()
    """Every region the stratum's pixels lie in (empty for map-class strata)."""


def stratum_id(region: str | None, map_class: str) -> str:
    return f"{region}|{map_class}" if region is not None else map_class


#: Up to this many regions, a pixel's region set is an integer below 2**n and cells are
#: found by counting (np.bincount, linear); beyond it, by sorting (np.unique).
_COUNTED_REGIONS = 20


def _cell_keys(regions: np.ndarray) -> np.ndarray:
    """Per pixel, the set of regions it lies in (a bit per region): the cell of the
    partition that overlapping regions make. Integers for up to 62 regions, else bytes."""
    if regions.shape[0] <= 62:
        key = np.zeros(regions.shape[1:], dtype=np.int64)
        for i in range(regions.shape[0]):  # masked writes: 5x faster than packbits across regions
            key[regions[i]] |= 1 << i
        return key
    packed = np.packbits(regions, axis=0, bitorder="little")  # (ceil(R / 8), h, w)
    flat = np.ascontiguousarray(np.moveaxis(packed, 0, -1))
    return flat.view(np.dtype((np.void, packed.shape[0])))[..., 0]


def _block_strata(
    run: RunDir, codes: np.ndarray, regions: np.ndarray, cells: dict[Any, int] | None, grow: bool = False, k: int | None = None
) -> np.ndarray:
    """Stratum index per pixel of a block (-1 outside regions or unobserved).

    Index = cell_index * n_classes + (code - 1) with ``cells`` (region set -> cell index;
    new sets are added when ``grow``), or code - 1 for map-class strata (``cells=None``).
    ``k``: number of codes (default: the map classes; the target-area design passes its own).
    """
    k = len(run.classes) if k is None else k
    out = np.full(codes.shape, -1, dtype=np.int64)
    sel = regions.any(axis=0) & (codes > 0)
    if cells is None:
        out[sel] = codes[sel].astype(np.int64) - 1
        return out
    if not sel.any():
        return out
    keys = _cell_keys(regions)[sel]
    if regions.shape[0] <= _COUNTED_REGIONS:
        present = np.flatnonzero(np.bincount(keys, minlength=1))
        inverse = keys
    else:
        present, inverse = np.unique(keys, return_inverse=True)
    index = np.full(int(present.max()) + 1 if regions.shape[0] <= _COUNTED_REGIONS else len(present), -1, dtype=np.int64)
    for i, key in enumerate(present.tolist()):
        if key not in cells:
            if not grow:
                raise EstimatorError("the class map or regions changed between the two passes of sampling; sample again")
            cells[key] = len(cells)
        index[key if regions.shape[0] <= _COUNTED_REGIONS else i] = cells[key]
    out[sel] = index[inverse.ravel()] * k + codes[sel].astype(np.int64) - 1
    return out


def _cell_regions(run: RunDir, key: Any) -> tuple[str, ...]:
    if isinstance(key, int):
        return tuple(r.id for i, r in enumerate(run.regions) if key >> i & 1)
    bits = np.unpackbits(np.frombuffer(key, dtype=np.uint8), bitorder="little")[: len(run.regions)]
    return tuple(run.regions[i].id for i in np.flatnonzero(bits))


def stratum_table(run: RunDir, by_region: bool = True, progress: bool = False) -> tuple[list[Stratum], dict[Any, int] | None]:
    """Pass 1: pixels and true hectares of every non-empty stratum, in a fixed order (cells
    by their first region in the run's order, then map class), and the cell index of every
    region set for pass 2 (None for map-class strata)."""
    k = len(run.classes)
    cells: dict[Any, int] | None = {} if by_region else None
    pixels = np.zeros(k, dtype=np.int64)
    area = np.zeros(k, dtype=np.float64)
    for b in tqdm(list(run.blocks()), desc="count strata", unit="block", disable=not progress, leave=False):
        s = _block_strata(run, b.codes, b.regions, cells, grow=True)
        ok = s >= 0
        size = max(k * len(cells or ()), pixels.size)  # new cells may have appeared
        pixels = np.pad(pixels, (0, size - pixels.size))
        area = np.pad(area, (0, size - area.size))
        pixels += np.bincount(s[ok], minlength=size)
        area += np.bincount(s[ok], weights=b.pixel_area_m2[ok], minlength=size) / 1e4
    if cells is None:
        return [
            Stratum(stratum_id(None, c), c, None, int(pixels[i]), float(area[i])) for i, c in enumerate(run.classes) if pixels[i]
        ], None
    order = {rid.id: i for i, rid in enumerate(run.regions)}
    members = {key: _cell_regions(run, key) for key in cells}
    # Cells in the order of their regions, so that regions that do not overlap keep the
    # strata order (and so the draws) of a plain region x class design.
    ranked = sorted(cells, key=lambda key: [order[r] for r in members[key]])
    labels = ["+".join(members[key]) for key in ranked]
    if len(set(labels)) < len(labels):
        raise EstimatorError("region ids that contain '+' make overlapping cells ambiguous; rename those regions")
    out = []
    for key in ranked:
        label = "+".join(members[key])
        for c in range(k):
            i = cells[key] * k + c
            if i < pixels.size and pixels[i]:
                cls = run.classes[c]
                out.append(Stratum(stratum_id(label, cls), cls, label, int(pixels[i]), float(area[i]), members[key]))
    return out, cells


def trained_units(run: RunDir) -> list[dict[str, Any]]:
    """The reference units the run's model was trained on (``assess`` refuses them)."""
    return reference_units_of_run(run.manifest)


def draw_ranks(rng: np.random.Generator, sizes: Sequence[int], alloc: Sequence[int] | np.ndarray, spare: int) -> list[np.ndarray]:
    """Per stratum, the running indices of the pixels to pick, in the order drawn.

    ``spare`` more than the allocation are drawn where the stratum has them, so that units
    on pixels the model was trained on can be replaced by the next ones drawn (see
    :func:`keep_allocated`); without such pixels (``spare`` 0) the draw is the plain one."""
    return [rng.choice(int(n), size=int(min(a + spare, n)) if spare else int(a), replace=False) for n, a in zip(sizes, alloc, strict=True)]


def keep_allocated(
    run: RunDir, trained: Sequence[Mapping[str, Any]], draws: Sequence[np.ndarray], alloc: Sequence[int] | np.ndarray,
    row: np.ndarray, col: np.ndarray, sidx: np.ndarray, rank: np.ndarray,
) -> tuple[np.ndarray, int]:
    """Which picked pixels to keep: per stratum the first ``alloc`` in draw order that are not
    pixels the model was trained on. Returns the mask and how many of the first ``alloc``
    drawn were such pixels (replaced by the next ones drawn).

    Dropping a drawn unit and taking the next one drawn is simple random sampling from the
    stratum without those pixels; the stratum's size still counts them (a handful of pixels
    in strata of thousands), which the sample's ``sampling.excluded_trained`` records."""
    if not trained:
        return np.ones(row.size, dtype=bool), 0
    bad = np.zeros(row.size, dtype=bool)
    bad[[i for i, _ in trained_on(trained, run.grid, row.tolist(), col.tolist())]] = True
    keep = np.zeros(row.size, dtype=bool)
    replaced = 0
    for j, a in enumerate(alloc):
        mine = np.flatnonzero(sidx == j)
        if not mine.size:
            continue
        by_value = np.argsort(draws[j])
        position = by_value[np.searchsorted(draws[j][by_value], rank[mine])]  # where each pick came in the draw
        replaced += int((bad[mine] & (position < int(a))).sum())  # in the plain draw, refused by assess
        ok = mine[~bad[mine]]
        ok_pos = position[~bad[mine]]
        keep[ok[np.argsort(ok_pos, kind="stable")[: int(a)]]] = True
    return keep, replaced


def draw_sample(
    run: RunDir,
    *,
    n: int | None = None,
    target_se: float = 0.01,
    expected_ua: Mapping[str, float] | None = None,
    min_per_stratum: int = 50,
    by_region: bool = True,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Draw the sample and return it as a GeoJSON FeatureCollection (dict)."""
    if min_per_stratum < 2:
        raise EstimatorError("--min-per-stratum must be at least 2: a stratum variance needs two units")
    if n is not None and not 1 <= n <= MAX_SAMPLE_N:
        raise EstimatorError(f"--n must be between 1 and {MAX_SAMPLE_N:,} (got {n:,}); each unit is labeled by people")
    if n is None and not 0 < target_se < 1:
        raise EstimatorError(f"--target-se must lie between 0 and 1 (got {target_se:g}), e.g. 0.01")
    bad_ua = {c: v for c, v in (expected_ua or {}).items() if c not in run.classes or not 0 < v <= 1}
    if bad_ua:
        raise EstimatorError(
            f"--expected-ua {bad_ua}: give CLASS=ACCURACY with a class of this run ({', '.join(run.classes)}) and 0 < ACCURACY <= 1"
        )
    strata, cells = stratum_table(run, by_region, progress)
    if not strata:
        raise EstimatorError(f"{run.path}: no observed pixel inside the regions; nothing to sample")
    sizes = np.array([s.pixels for s in strata])
    if n is None:
        ua = {**{c: DEFAULT_EXPECTED_UA_OTHER for c in run.classes}, **DEFAULT_EXPECTED_UA, **(expected_ua or {})}
        weights = np.array([s.area_ha for s in strata])
        n = sample_size(weights, [ua[s.map_class] for s in strata], target_se)
    else:
        # The minimums alone would exceed a smaller n: allocate() would silently draw more.
        floor = int(np.minimum(sizes, min_per_stratum).sum())
        if n < floor:
            raise EstimatorError(
                f"--n {n:,} is below the {floor:,} units the minimum of {min_per_stratum} per stratum needs "
                f"({len(strata)} strata); raise --n or lower --min-per-stratum"
            )
        if n > int(sizes.sum()):
            raise EstimatorError(f"--n {n:,} exceeds the {int(sizes.sum()):,} observed pixels inside the regions; lower --n")
    alloc = allocate(sizes, n, min_per_stratum)
    rng = np.random.default_rng(seed)
    trained = trained_units(run)
    draws = draw_ranks(rng, [s.pixels for s in strata], alloc, sum(len(t.get("units") or ()) for t in trained))
    ranks = [np.sort(d) for d in draws]

    # Pass 2: walk the same blocks in the same order, counting each stratum's pixels, and
    # keep those whose running index was drawn.
    k = len(run.classes)
    cell_of = {"+".join(_cell_regions(run, key)): i for key, i in (cells or {}).items()}
    index_of = {}
    for j, st in enumerate(strata):
        c = cell_of[st.region] if st.region is not None else 0
        index_of[c * k + run.classes.index(st.map_class)] = j
    seen = np.zeros(len(strata), dtype=np.int64)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    which: list[np.ndarray] = []
    picked_ranks: list[np.ndarray] = []
    for b in tqdm(list(run.blocks()), desc="draw sample", unit="block", disable=not progress, leave=False):
        block_strata = _block_strata(run, b.codes, b.regions, cells)
        for raw, j in index_of.items():
            rr, cc = np.nonzero(block_strata == raw)
            if rr.size == 0:
                continue
            pos = seen[j] + np.arange(rr.size)
            hit = np.isin(pos, ranks[j])
            seen[j] += rr.size
            if hit.any():
                rows.append(rr[hit] + b.row_off)
                cols.append(cc[hit] + b.col_off)
                which.append(np.full(int(hit.sum()), j))
                picked_ranks.append(pos[hit])
    row = np.concatenate(rows)
    col = np.concatenate(cols)
    sidx = np.concatenate(which)
    keep, excluded = keep_allocated(run, trained, draws, alloc, row, col, sidx, np.concatenate(picked_ranks))
    row, col, sidx = row[keep], col[keep], sidx[keep]
    order = np.lexsort((col, row, sidx))
    row, col, sidx = row[order], col[order], sidx[order]
    x, y = run.pixel_xy(row, col)
    lon, lat = Transformer.from_crs(run.grid.crs, "EPSG:4326", always_xy=True).transform(x, y)

    features = []
    for i in range(len(row)):
        s = strata[sidx[i]]
        props = {
            "sample_id": f"s{i:05d}",
            "stratum": s.id,
            "region": s.region,
            "regions": list(s.regions),
            "map_class": s.map_class,
            "row": int(row[i]),
            "col": int(col[i]),
            "x": float(x[i]),
            "y": float(y[i]),
            **dict.fromkeys(LABEL_FIELDS),
        }
        features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [float(lon[i]), float(lat[i])]}, "properties": props})
    kind = "label-free stratum" if run.strata_only else "map class"
    sampling_extra: dict[str, Any] = {}
    if run.strata_only:
        # No model made these strata: the sample estimates every class of the job's legend
        # (Stehman 2014) and may train the first model (training labels add).
        sampling_extra = {
            "model": "none",
            "strata_map": run.manifest["model"]["strata"],
            "map_class_note": "map_class holds each unit's label-free stratum: there is no model, so no map class",
        }
    return {
        "type": "FeatureCollection",
        "features": features,
        "sampling": {
            "schema": SAMPLE_SCHEMA,
            "design": "stratified random sample of pixel centres; strata = "
            + (
                (f"region x {kind}" if not any(len(s.regions) > 1 for s in strata) else f"{kind} x cell of overlapping regions")
                if by_region
                else kind
            ),
            "by_region": by_region,
            "overlapping_regions": any(len(s.regions) > 1 for s in strata),
            "run": str(run.path),
            "class_map_sha256": run.class_map_sha256(),
            "grid_crs": str(run.grid.crs),
            "seed": seed,
            "n": int(len(features)),
            "min_per_stratum": min_per_stratum,
            "strata": [
                {
                    "id": s.id, "map_class": s.map_class, "region": s.region, "regions": list(s.regions),
                    "pixels": s.pixels, "area_ha": round(s.area_ha, 6), "n": int(a),
                }
                for s, a in zip(strata, alloc, strict=True)
            ],
            "synthetic": run.synthetic,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "instructions": "Label each point's reference class (one of the classes listed here) in interpreter_1 "
            "and interpreter_2 independently; set consensus where they disagree.",
            "classes": list(run.reference_classes),
            "excluded_trained": excluded,
            **sampling_extra,
        },
    }


def label_counts(features: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in features:
        c = f["properties"]["map_class"]
        out[c] = out.get(c, 0) + 1
    return out


def sample_frame(fc: Mapping[str, Any]) -> gpd.GeoDataFrame:
    """A sample FeatureCollection as a GeoDataFrame (lon/lat), its design in ``attrs["sampling"]``."""
    import geopandas as gpd
    import pandas as pd

    cols = ["sample_id", "stratum", "region", "regions", "map_class", "row", "col", "x", "y", *LABEL_FIELDS]
    props = pd.DataFrame([f["properties"] for f in fc["features"]], columns=cols)
    for c in LABEL_FIELDS:  # labels are text; unfilled ones are None
        props[c] = props[c].astype(object)
    geometry = gpd.points_from_xy([f["geometry"]["coordinates"][0] for f in fc["features"]],
                                  [f["geometry"]["coordinates"][1] for f in fc["features"]])
    gdf = gpd.GeoDataFrame(props, geometry=geometry, crs="EPSG:4326")
    gdf.attrs["sampling"] = dict(fc["sampling"])
    return gdf


def sample_run(
    run: Run | Path | str,
    *,
    n: int | None = None,
    target_se: float = 0.01,
    expected_ua: Mapping[str, float] | None = None,
    min_per_stratum: int = 50,
    strata: Literal["region-class", "class"] = "region-class",
    seed: int = 0,
    out: Path | str | None = None,
    progress: bool = False,
) -> gpd.GeoDataFrame:
    """The map-class design of :func:`estimator.sample` (``design="class"``; see there for
    the parameters and an example): strata are region x map class (or map classes only),
    allocated as Olofsson et al. (2014) recommend."""
    if strata not in ("region-class", "class"):
        raise EstimatorError(f"strata must be 'region-class' or 'class', not {strata!r}")
    if out is not None:  # before drawing, as ``estimator sample --out`` does
        check_writable(Path(out), "out")
    rd = open_run(run.run_dir if isinstance(run, Run) else run)
    fc = draw_sample(
        rd, n=n, target_se=target_se, expected_ua=expected_ua, min_per_stratum=min_per_stratum,
        by_region=strata == "region-class", seed=seed, progress=progress,
    )
    if out is not None:
        write_json(Path(out), fc)
    return sample_frame(fc)
