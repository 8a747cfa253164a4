"""Assess: a labeled reference sample -> error-adjusted areas with 95 % intervals.

Reads the sample written by ``estimator sample`` after interpreters filled in their labels,
checks it belongs to this run, and replaces each record's ``area_ha`` by the design-based
estimate: per region with Olofsson et al. (2014) when strata are region x map class
(``stratified-olofsson2014``; with Stehman's estimator over the cells of a region that
overlapping regions split), or with Stehman (2014) domain estimators when strata are map
classes only (``stehman2014``). Accuracies, each region's own, and interpreter agreement go
to ``assessment.json`` and the report.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import shapely
from shapely.geometry import Point

from estimator.errors import ReferenceSampleError
from estimator.location import write_json, write_text
from estimator.regions.geometry import to_crs
from estimator.report.run_report import render_report_md
from estimator.report.strata_report import render_strata_report_md
from estimator.run.rundir import Run, RunDir, open_run, read_run, write_estimates
from estimator.stages.estimate import apply_coverage
from estimator.stats.area import AreaSampleError, StehmanResult, olofsson, stehman
from estimator.stats.reference import reference_units_of_run, trained_on
from estimator.stats.sample import LABEL_FIELDS

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["ReferenceLike", "ReferenceSample", "assess_reference", "assess_run", "read_reference"]

#: A labeled sample: the GeoJSON file ``estimator sample`` wrote (labeled), its content, or
#: the GeoDataFrame :func:`estimator.sample` returned (labeled, design in ``attrs["sampling"]``).
ReferenceLike: TypeAlias = "Path | str | Mapping[str, Any] | gpd.GeoDataFrame"


@dataclass(frozen=True)
class ReferenceSample:
    units: list[dict[str, Any]]
    """Per unit: stratum, region, map_class, row, col, reference (the label used)."""
    sampling: dict[str, Any]
    agreement: dict[str, Any]


def _label(props: dict[str, Any]) -> tuple[str | None, str]:
    """The reference label of a unit and where it came from."""
    c = props.get("consensus")
    i1, i2 = props.get("interpreter_1"), props.get("interpreter_2")
    if c not in (None, ""):
        return str(c), "consensus"
    if i1 not in (None, "") and i2 not in (None, ""):
        return (str(i1), "agreement") if i1 == i2 else (None, "disagreement")
    if i1 not in (None, "") or i2 not in (None, ""):
        return str(i1 if i1 not in (None, "") else i2), "single interpreter"
    return None, "missing"


def _as_feature_collection(reference: ReferenceLike) -> tuple[Any, str]:
    """The sample as GeoJSON-like data, and how to name it in messages and ``assessment.json``."""
    if isinstance(reference, (Path, str)):
        try:
            return json.loads(Path(reference).read_text()), str(Path(reference).resolve())
        except FileNotFoundError:
            raise ReferenceSampleError(f"reference sample not found: {reference}") from None
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ReferenceSampleError(f"{reference} is not GeoJSON; give the file written by `estimator sample`, labeled") from None
        except OSError as e:
            raise ReferenceSampleError(f"reference sample {reference} cannot be read ({e.strerror or type(e).__name__})") from None
    if isinstance(reference, Mapping):
        return dict(reference), "reference sample (in memory)"
    gdf: Any = reference
    if hasattr(gdf, "to_json") and hasattr(gdf, "attrs"):  # a GeoDataFrame from estimator.sample
        if "sampling" not in gdf.attrs:
            raise ReferenceSampleError("the GeoDataFrame has no attrs['sampling']; label the frame estimator.sample returned")
        data = json.loads(gdf.to_crs("EPSG:4326").to_json(na="null", drop_id=True))
        data["sampling"] = gdf.attrs["sampling"]
        return data, f"sample of {len(gdf)} units (in memory, seed {gdf.attrs['sampling'].get('seed')})"
    raise ReferenceSampleError(f"cannot read a reference sample from {type(reference).__name__}; give a GeoJSON path or the labeled sample")


def read_reference(path: ReferenceLike, run: RunDir) -> ReferenceSample:
    """Read and check a labeled sample against the run it was drawn from."""
    return _check_reference(*_as_feature_collection(path), run)


def _check_reference(data: Any, path: str, run: RunDir) -> ReferenceSample:
    sampling = data.get("sampling") if isinstance(data, dict) else None
    if not isinstance(sampling, dict) or "strata" not in sampling:
        raise ReferenceSampleError(f"{path} has no 'sampling' design; label the file written by `estimator sample`")
    features = data.get("features")
    if not isinstance(features, list) or not all(isinstance(f, dict) for f in features):
        raise ReferenceSampleError(f"{path} has no list of point features; label the file written by `estimator sample`")
    counts = Counter(str((f.get("properties") or {}).get("sample_id")) for f in features)
    dupes = sorted(i for i, n in counts.items() if n > 1)
    if dupes:
        raise ReferenceSampleError(
            f"{path}: sample_id {', '.join(dupes[:3])} appear(s) more than once; each unit may be counted once, "
            "remove the copies"
        )
    if sampling.get("class_map_sha256") != run.class_map_sha256():
        raise ReferenceSampleError(f"{path} was drawn from another class map than {run.class_map}; sample this run again")
    classes = set(run.reference_classes)
    ny, nx = run.grid.shape.yx
    units: list[dict[str, Any]] = []
    missing: list[str] = []
    disagree: list[str] = []
    misplaced: list[str] = []
    unknown: set[str] = set()
    both = agree = 0
    confusion: dict[str, int] = {}
    with_codes = _read_codes(run, features)
    for f, code in zip(features, with_codes, strict=True):
        p = f.get("properties") or {}
        sid = p.get("sample_id", "?")
        try:
            row, col = int(p.get("row", -1)), int(p.get("col", -1))
        except (TypeError, ValueError):
            row = col = -1
        if not (0 <= row < ny and 0 <= col < nx) or code == 0 or run.classes[code - 1] != p.get("map_class"):
            misplaced.append(sid)
            continue
        i1, i2 = p.get("interpreter_1"), p.get("interpreter_2")
        if i1 not in (None, "") and i2 not in (None, ""):
            both += 1
            agree += i1 == i2
            if i1 != i2:
                key = f"{i1} vs {i2}"
                confusion[key] = confusion.get(key, 0) + 1
        label, source = _label(p)
        if label is None:
            (disagree if source == "disagreement" else missing).append(sid)
            continue
        if label not in classes:
            unknown.add(label)
            continue
        units.append({**{k: p.get(k) for k in ("sample_id", "stratum", "region", "map_class", "row", "col", "x", "y")}, "reference": label, "source": source})
    if misplaced:
        raise ReferenceSampleError(
            f"{len(misplaced)} sample point(s) lie outside this run's map or on another class than recorded "
            f"(e.g. {misplaced[:3]}); do not move points, sample again"
        )
    overlap = trained_on(reference_units_of_run(run.manifest), run.grid, *zip(*[(u["row"], u["col"]) for u in units], strict=True)) if units else []
    if overlap:
        raise ReferenceSampleError(
            f"{len(overlap)} unit(s) of {path} lie on pixels model {run.manifest['model'].get('id')} was trained on "
            f"(e.g. {units[overlap[0][0]]['sample_id']} = {overlap[0][1]}); a model is never assessed on its training "
            "units: draw a new sample from this run (another --seed), or assess a model trained without that batch"
        )
    if unknown:
        raise ReferenceSampleError(
            f"labels {sorted(unknown)} are not classes of this run ({', '.join(run.reference_classes)}); fix the spelling"
        )
    if missing or disagree:
        raise ReferenceSampleError(
            f"{len(missing)} unit(s) have no label (e.g. {missing[:3]}) and {len(disagree)} disagree without a consensus "
            f"(e.g. {disagree[:3]}); fill {', '.join(LABEL_FIELDS)}"
        )
    agreement = {
        "units_labeled_by_both": both,
        "agreement_rate": None if both == 0 else round(agree / both, 4),
        "disagreements": dict(sorted(confusion.items(), key=lambda kv: -kv[1])),
        "label_sources": {s: sum(u["source"] == s for u in units) for s in ("consensus", "agreement", "single interpreter")},
    }
    return ReferenceSample(units, sampling, agreement)


def _read_codes(run: RunDir, features: Sequence[dict[str, Any]]) -> list[int]:
    """The class code under each point (0 when outside the map), read at the point itself."""
    import rasterio
    from pyproj import Transformer

    pts = [(f.get("geometry") or {}).get("coordinates") or [np.nan, np.nan] for f in features]
    lon = np.array([p[0] for p in pts], dtype=float)
    lat = np.array([p[1] for p in pts], dtype=float)
    x, y = Transformer.from_crs("EPSG:4326", run.grid.crs, always_xy=True).transform(lon, lat)
    inv = ~run.grid.affine
    out = []
    ny, nx = run.grid.shape.yx
    with rasterio.open(run.class_map) as src:
        for xi, yi, f in zip(x, y, features, strict=True):
            col, row = (int(np.floor(v)) for v in inv @ (xi, yi)) if np.isfinite(xi) else (-1, -1)
            p = f.get("properties") or {}
            if not (0 <= row < ny and 0 <= col < nx) or (row, col) != (p.get("row"), p.get("col")):
                out.append(0)
                continue
            out.append(int(src.read(1, window=((row, row + 1), (col, col + 1)))[0, 0]))
    return out


def _strata_regions(s: dict[str, Any]) -> list[str]:
    """Regions a stratum's pixels lie in (samples drawn before overlaps were handled name one)."""
    return list(s.get("regions") or [s["region"]])


def _olofsson_by_region(run: RunDir, ref: ReferenceSample, z: float, adjust: bool) -> dict[str, dict[str, Any]]:
    """Strata are region x map class, or map class x cell of overlapping regions. A region
    that is one cell is estimated with Olofsson's estimator on its own strata; a region made
    of several cells (a province holding a district) with Stehman's estimator on the strata
    of its cells, which partition it, so no unit outside the region enters its estimate."""
    classes = list(run.classes)
    k = len(classes)
    out = {}
    for region in run.regions:
        strata = [s for s in ref.sampling["strata"] if region.id in _strata_regions(s)]
        if not strata:
            continue
        ids = {s["id"] for s in strata}
        units = [u for u in ref.units if u["stratum"] in ids]
        if run.strata_only:
            # Strata are not classes: Stehman's estimator over the region's own strata.
            out[region.id] = _stehman_over_cells(
                region.id, strata, units, list(run.reference_classes), z, adjust, scope="region: strata lie inside the region"
            )
            continue
        # Target-area strata are not map classes: Stehman's estimator even in one cell.
        if len({s["region"] for s in strata}) > 1 or ref.sampling.get("kind") == "target-area":
            scope = (
                "region: strata are target-probability bins and a buffer within the region's cells"
                if ref.sampling.get("kind") == "target-area"
                else "region: strata are the cells of overlapping regions that make it up"
            )
            out[region.id] = _stehman_over_cells(region.id, strata, units, classes, z, adjust, scope)
            continue
        N = np.zeros(k)
        area = 0.0
        for s in strata:
            N[classes.index(s["map_class"])] = s["pixels"]
            area += s["area_ha"]
        counts = np.zeros((k, k))
        for u in units:
            counts[classes.index(u["map_class"]), classes.index(u["reference"])] += 1
        try:
            r = olofsson(N, counts, pixel_area_ha=area / N.sum(), z=z, adjust_zero_cells=adjust)
        except AreaSampleError as e:
            raise ReferenceSampleError(f"region {region.id}: {e}") from None
        out[region.id] = {
            "estimator": "stratified-olofsson2014",
            "accuracy_scope": "region: strata lie inside the region",
            "area_ha": r.area_ha, "se_area_ha": r.se_area_ha,
            "ci_low_ha": np.maximum(r.area_ha - r.area_ci95_ha, 0.0), "ci_high_ha": r.area_ha + r.area_ci95_ha,
            "users_accuracy": r.users_accuracy, "producers_accuracy": r.producers_accuracy,
            "users_ci95": r.users_ci95, "producers_ci95": r.producers_ci95,
            "overall_accuracy": r.overall_accuracy, "overall_ci95": r.overall_ci95, "n": len(units),
            "n_mapped": counts.sum(axis=1).astype(int), "n_reference": counts.sum(axis=0).astype(int),
        }
    return out


def _pick(r: StehmanResult, classes: list[str], a: np.ndarray, fill: float) -> np.ndarray:
    order = [r.classes.index(c) if c in r.classes else None for c in classes]
    return np.array([a[i] if i is not None else fill for i in order])


def _stehman_record(r: StehmanResult, classes: list[str], z: float, scope: str) -> dict[str, Any]:
    return {
        "estimator": "stehman2014",
        "accuracy_scope": scope,
        "area_ha": _pick(r, classes, r.area, 0.0), "se_area_ha": _pick(r, classes, r.se_area, 0.0),
        "ci_low_ha": _pick(r, classes, r.area_low, 0.0), "ci_high_ha": _pick(r, classes, r.area_high, 0.0),
        "users_accuracy": _pick(r, classes, r.users_accuracy, np.nan),
        "producers_accuracy": _pick(r, classes, r.producers_accuracy, np.nan),
        "users_ci95": z * _pick(r, classes, r.se_users_accuracy, np.nan),
        "producers_ci95": z * _pick(r, classes, r.se_producers_accuracy, np.nan),
        "overall_accuracy": r.overall_accuracy, "overall_ci95": z * r.se_overall_accuracy, "n": r.n_domain,
        "n_mapped": _pick(r, classes, r.n_mapped, 0).astype(int), "n_reference": _pick(r, classes, r.n_reference, 0).astype(int),
    }


def _stehman_over_cells(
    region: str, strata: list[dict[str, Any]], units: list[dict[str, Any]], classes: list[str], z: float, adjust: bool,
    scope: str = "region: strata are the cells of overlapping regions that make it up",
) -> dict[str, Any]:
    px = {s["id"]: s["pixels"] for s in strata}
    px_area = sum(s["area_ha"] for s in strata) / sum(px.values())
    samples = [(u["stratum"], u["map_class"], u["reference"]) for u in units]
    try:
        r = stehman(px, samples, z=z, pixel_area=px_area, adjust_zero_cells=adjust, classes=classes)
    except AreaSampleError as e:
        raise ReferenceSampleError(f"region {region}: {e}") from None
    return _stehman_record(r, classes, z, scope)


def _stehman_by_domain(run: RunDir, ref: ReferenceSample, z: float, adjust: bool) -> dict[str, dict[str, Any]]:
    """Strata are map classes over all regions; each region is a domain. Areas get the
    Jeffreys interval at the effective sample size (``adjust``) or the textbook Wald
    interval; accuracies count only the region's units."""
    classes = list(run.reference_classes)
    strata = {s["id"]: s["pixels"] for s in ref.sampling["strata"]}
    area_total = sum(s["area_ha"] for s in ref.sampling["strata"])
    px_area = area_total / sum(strata.values())
    samples = [(u["stratum"], u["map_class"], u["reference"]) for u in ref.units]
    crs = str(run.grid.crs)
    out = {}
    for region in run.regions:
        geom = shapely.prepared.prep(to_crs(region.geometry, crs))
        inside = [geom.contains(Point(u["x"], u["y"])) for u in ref.units]
        try:
            r = stehman(
                strata, samples, z=z, pixel_area=px_area, domain=inside, adjust_zero_cells=adjust,
                interval="jeffreys-effective-n" if adjust else "wald", classes=classes if run.strata_only else (),
            )
        except AreaSampleError as e:
            raise ReferenceSampleError(str(e)) from None
        out[region.id] = _stehman_record(r, classes, z, "region as a domain: ratios of the region's units only")
    return out


def _legend_records(est: dict[str, Any], run: RunDir) -> list[dict[str, Any]]:
    """A cold-start run's records: one per region and class of the legend, with the region's
    coverage figures from its strata rows; no mapped area (there is no map)."""
    first: dict[str, dict[str, Any]] = {}
    for row in est.get("strata") or []:
        first.setdefault(row["region"], row)
    keep = ("region", "region_name", "period", "observed_fraction", "failed_read_fraction", "region_area_ha", "observed_area_ha", "synthetic")
    return [
        {
            **{k: row.get(k) for k in keep}, "class": c, "estimator": None, "mapped_area_ha": None, "area_ha": None,
            "ci95_low_ha": None, "ci95_high_ha": None, "mapped_pixels": None, "model_id": "none", "se_area_ha": None,
            "users_accuracy": None, "producers_accuracy": None, "sample_n": None, "model_based_area_ha": None,
        }
        for row in first.values()
        for c in run.reference_classes
    ]


def _strata_regions_summary(results: dict[str, dict[str, Any]], classes: list[str]) -> dict[str, Any]:
    """Per region of a cold-start assessment: units and units per reference class (no accuracy)."""
    return {
        rid: {
            "n": r["n"],
            "accuracy_scope": "none: no model, no map class",
            "per_class": {c: {"units_reference": int(r["n_reference"][i])} for i, c in enumerate(classes)},
        }
        for rid, r in results.items()
    }


def _interval_note(by_region: bool, adjust: bool) -> str:
    if not adjust:
        return "Wald: estimate -/+ z SE with the textbook variance"
    if by_region:
        return "Wald: estimate -/+ z SE with the zero-cell adjusted variance"
    return (
        "regions are domains of map-class strata: Jeffreys interval at the Korn-Graubard effective sample size "
        "(docs/intervals.md); se_area_ha is the larger of the SE and the interval's half-width / z"
    )


def _num(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), 6)


def assess_run(
    run_dir: Path,
    reference: ReferenceLike,
    *,
    z: float = 1.96,
    adjust_zero_cells: bool = True,
    truth: dict[str, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Update the run's estimates, assessment and report from a labeled sample.

    ``adjust_zero_cells`` (default on) keeps strata whose sample shows no error from
    contributing zero variance (see :func:`estimator.stats.area.olofsson`) and, where regions are
    domains of map-class strata, bounds each region's area with a Jeffreys interval at the
    effective sample size (:func:`estimator.stats.area.effective_n_interval`); off gives the
    textbook formulas and Wald intervals, which collapse to zero width where the sample
    shows no error.
    """
    run = open_run(run_dir)
    data, reference_name = _as_feature_collection(reference)
    ref = _check_reference(data, reference_name, run)
    by_region = bool(ref.sampling.get("by_region"))
    estimate = _olofsson_by_region if by_region else _stehman_by_domain
    results = estimate(run, ref, z, adjust_zero_cells)
    est = run.estimates()
    records = _legend_records(est, run) if run.strata_only else est["records"]
    classes = list(run.reference_classes)
    for rec in records:
        res = results.get(rec["region"])
        if res is None:
            continue
        i = classes.index(rec["class"])
        a, se = float(res["area_ha"][i]), float(res["se_area_ha"][i])
        lo, hi = float(res["ci_low_ha"][i]), float(res["ci_high_ha"][i])
        rec.update(
            estimator=res["estimator"],
            area_ha=round(a, 4),
            # An asymmetric interval (Jeffreys) can be wider than z SE, e.g. where the
            # sample shows no coca in the region and SE is 0; the extrapolation to the
            # unobserved part (estimate.apply_coverage) must not be narrower than the interval.
            se_area_ha=round(max(se, (hi - lo) / (2 * z)), 4),
            ci95_low_ha=round(max(lo, 0.0), 4),
            ci95_high_ha=round(hi, 4),
            users_accuracy=None if run.strata_only else _num(res["users_accuracy"][i]),
            producers_accuracy=None if run.strata_only else _num(res["producers_accuracy"][i]),
            sample_n=res["n"],
        )
    cov = run.manifest["config"].get("coverage", {"unobserved": "withhold", "transfer_uncertainty": 0.5})
    apply_coverage(records, cov["unobserved"], cov["transfer_uncertainty"], z)
    assessment = {
        "reference": reference_name,
        "design": ref.sampling["design"],
        "estimator": ", ".join(sorted({r["estimator"] for r in results.values()})) if results else None,
        "n_units": len(ref.units),
        "z": z,
        "variance": "zero cells adjusted: (x+1)/(n+2) where a stratum shows none or all of a class"
        if adjust_zero_cells
        else "textbook (Olofsson 2014 eq. 10 / Stehman 2014 eq. 25)",
        "interval": _interval_note(by_region, adjust_zero_cells),
        "interpreters": ref.agreement,
        "regions": _strata_regions_summary(results, classes) if run.strata_only else {
            rid: {
                "n": r["n"],
                "accuracy_scope": r["accuracy_scope"],
                "overall_accuracy": _num(r["overall_accuracy"]),
                "overall_ci95": _num(r["overall_ci95"]),
                "per_class": {
                    c: {
                        "users_accuracy": _num(r["users_accuracy"][i]), "users_ci95": _num(r["users_ci95"][i]),
                        "producers_accuracy": _num(r["producers_accuracy"][i]), "producers_ci95": _num(r["producers_ci95"][i]),
                        "units_mapped": int(r["n_mapped"][i]), "units_reference": int(r["n_reference"][i]),
                    }
                    for i, c in enumerate(classes)
                },
            }
            for rid, r in results.items()
        },
        "ci_note": "ci95_low_ha is clipped at 0; intervals describe the observed part of each region.",
        "accuracy_note": "Accuracies are each region's own: estimated from the region's sample units only. "
        "A user's accuracy needs units mapped as the class in the region, a producer's accuracy units of that "
        "reference class; where there are none it is null (not estimable), never the whole sample's figure.",
    }
    if run.strata_only:
        assessment["accuracy_note"] = (
            "No accuracy: the run has no model and so no map class to be right or wrong (model: none). The strata "
            "only made the sample efficient; the areas above are design-based (Stehman 2014) for every class."
        )
    meta = {k: v for k, v in est.items() if k != "records"}
    write_estimates(run.path, records, {**meta, "assessment": "assessment.json"})
    write_json(run.path / "assessment.json", assessment)
    target = run.manifest["model"]["target_class"]
    if run.strata_only:
        report = render_strata_report_md(est.get("strata") or [], run.manifest, records=records, truth=truth, assessment=assessment)
    else:
        report = render_report_md(records, run.manifest, target_class=target, truth=truth, assessment=assessment)
    write_text(run.path / "report.md", report)
    return {"records": records, "assessment": assessment}


def assess_reference(
    run: Run | Path | str,
    reference: ReferenceLike,
    *,
    z: float = 1.96,
    adjust_zero_cells: bool = True,
    truth: Mapping[str, Mapping[str, float]] | None = None,
) -> Run:
    """Error-adjusted areas and accuracies of a run from a labeled reference sample.

    This is ``estimator assess``: each record's ``area_ha`` becomes the design-based
    estimate with its 95 % interval (Olofsson et al. 2014 per region, or Stehman 2014 for
    class-only strata); ``estimates.json``/``.csv``, ``assessment.json`` and ``report.md``
    of the run directory are updated.

    Parameters
    ----------
    run
        A :class:`~estimator.Run` or the path of a local run directory.
    reference
        The labeled sample: the GeoDataFrame :func:`estimator.sample` returned, with its
        label columns filled, or the labeled GeoJSON file.
    z
        Normal quantile of the intervals (1.96: 95 %).
    adjust_zero_cells
        Keep strata whose sample shows no error from contributing zero variance; ``False``
        gives the textbook formulas.
    truth
        Known true hectares per region and class (demo world only), shown in the report.

    Returns
    -------
    Run
        The run, read again: ``estimates`` hold the error-adjusted areas and
        ``assessment`` the accuracies.

    Examples
    --------
    >>> import estimator
    >>> from estimator.demo import example
    >>> ex = example()
    >>> run = estimator.open_run(ex.run_copy())  # assess updates the run directory
    >>> sample = ex.label(estimator.sample(run, n=600, min_per_stratum=10, seed=2))  # SYNTHETIC oracle labels
    >>> run = estimator.assess(run, sample)
    >>> run.assessment.estimator, run.assessment.n_units
    ('stratified-olofsson2014', 600)
    """
    run_dir = run.run_dir if isinstance(run, Run) else run
    assess_run(Path(run_dir), reference, z=z, adjust_zero_cells=adjust_zero_cells, truth=None if truth is None else {k: dict(v) for k, v in truth.items()})
    return read_run(run_dir)
