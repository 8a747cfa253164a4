"""Labels: read and validate one delivery of labeled plots (a batch) from GeoJSON or GeoPackage.

Choices, so a field team knows what happens to its file:

- Formats. GeoJSON is lon/lat (RFC 7946); a legacy ``crs`` member naming another CRS is
  honoured by reprojecting to lon/lat. A GeoPackage layer must declare its CRS ("missing
  CRS" otherwise) and is reprojected to lon/lat. Coordinates are rounded to 1e-7 degrees
  (about 1 cm) before validation, so what is validated is exactly what the store keeps.
- Properties. ``class`` (or ``class_field``), ``plot_id``, ``observed`` (ISO date of the
  field visit or image interpretation) and ``source`` are required; ``observed`` and
  ``source`` may instead be given once for the whole file (a campaign date, an agency).
  ``interpreter`` is optional; plots without one are counted.
- Nothing is repaired and nothing is dropped silently. A feature with an invalid geometry
  (the GEOS reason is reported, e.g. a bow-tie's self-intersection), an empty or
  non-areal/point geometry, an unknown class, a missing field, a date outside the imagery
  period, a plot id seen before (in the file or in the store) or the same plot delivered
  again under another id (equal geometry, or polygons with IoU > 0.9) is rejected with its
  reason. Any rejection fails the whole file unless ``skip_invalid`` is set; then the
  rejected features travel with the batch (the store writes them to ``rejected.geojson``)
  and every count is reported.
- Known classes are ``DEFAULT_CLASSES`` plus those already in the store; a new class must be
  accepted explicitly (``new_classes``, ``--new-class``) so a typo never becomes a class.
- A labelled reference sample (the file ``estimator sample`` wrote, with its ``sampling``
  member) is a batch too: each unit becomes a point plot whose class is the label ``assess``
  uses (consensus, else the interpreters' common label); a unit without one is rejected
  (``no_reference_label``). Its plot id is ``<sample_id>@<sample key>``, it keeps its
  ``sample_unit`` id, ``observed`` defaults to the last date of the imagery it was
  interpreted from (``sampling.imagery``), and the batch records the sample's provenance
  (``LabelBatch.reference_sample``) so that a model trained on it is never assessed on it
  (:mod:`estimator.stats.reference`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from estimator.config import PeriodConfig
from estimator.errors import LabelFileError
from estimator.stats.reference import reference_label, sample_key
from training.extract import LabelSet

__all__ = [
    "DEFAULT_CLASSES",
    "DUPLICATE_IOU",
    "REASONS",
    "LabelBatch",
    "Plot",
    "Rejected",
    "check_classes",
    "plots_sha256",
    "read_label_file",
]

log = logging.getLogger(__name__)

#: Land-cover classes accepted without ``--new-class`` (the demo world's classes).
DEFAULT_CLASSES: tuple[str, ...] = (
    "coca", "forest", "regrowth", "other_crop", "pasture", "bare_soil", "water", "settlement",
)
#: Two polygons overlapping more than this (intersection over union) are the same plot.
DUPLICATE_IOU = 0.9
#: Why a feature can be rejected (the keys of the rejected counts).
REASONS: tuple[str, ...] = (
    "invalid_geometry", "empty_geometry", "unsupported_geometry", "missing_field", "unknown_class",
    "bad_date", "date_outside_period", "duplicate_plot_id", "duplicate_geometry", "no_reference_label",
)
_AREAL = ("Polygon", "MultiPolygon")
_POINTS = ("Point", "MultiPoint")
_PRECISION = 7


@dataclass(frozen=True)
class Plot:
    """One accepted labeled plot, normalised."""

    plot_id: str
    class_name: str
    geometry: BaseGeometry
    """Lon/lat (EPSG:4326), coordinates rounded to 1e-7 degrees."""
    observed: dt.date
    """Date of the field visit or of the imagery the interpreter labeled."""
    source: str
    """Who delivered it (field campaign, agency, interpretation project)."""
    interpreter: str | None = None
    sample_unit: str | None = None
    """``sample_id`` of the reference-sample unit this plot is (None for ordinary plots)."""

    def feature(self) -> dict[str, Any]:
        """The plot as a GeoJSON Feature (the normalised form that is hashed and stored)."""
        props = {"plot_id": self.plot_id, "class": self.class_name, "observed": self.observed.isoformat(),
                 "source": self.source, "interpreter": self.interpreter}
        if self.sample_unit is not None:
            props["sample_unit"] = self.sample_unit
        return {"type": "Feature", "properties": props, "geometry": mapping(self.geometry)}


@dataclass(frozen=True)
class Rejected:
    """A feature that was not accepted, with the reason."""

    index: int
    """Position of the feature in the file (0-based)."""
    plot_id: str | None
    reason: str
    """One of ``REASONS``."""
    message: str
    feature: dict[str, Any]
    """The feature as read (geometry in lon/lat when it could be read), plus the reason."""

    @property
    def where(self) -> str:
        return f"feature {self.index}" + (f" (plot_id {self.plot_id})" if self.plot_id else "")


@dataclass(frozen=True)
class LabelBatch:
    """One validated delivery of labeled plots."""

    path: Path
    file_sha256: str
    """sha256 of the file as delivered."""
    plots: tuple[Plot, ...]
    """Accepted plots, sorted by plot id."""
    rejected: tuple[Rejected, ...]
    n_read: int
    """Features in the file (after any ``where`` selection)."""
    n_not_selected: int = 0
    """Features left out by the ``where`` selection (not read, not rejected)."""
    reference_sample: dict[str, Any] | None = None
    """Provenance of a labelled reference sample (key, class map, design, run, interpreters);
    None for ordinary plots."""

    @property
    def sha256(self) -> str:
        """sha256 of the normalised accepted plots (independent of file format and order)."""
        return plots_sha256(self.plots)

    def class_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(p.class_name for p in self.plots).items()))

    def counts(self) -> dict[str, Any]:
        """read / accepted / rejected by reason / classes / plots without interpreter."""
        return {
            "read": self.n_read,
            "not_selected": self.n_not_selected,
            "accepted": len(self.plots),
            "rejected": dict(sorted(Counter(r.reason for r in self.rejected).items())),
            "classes": self.class_counts(),
            "without_interpreter": sum(p.interpreter is None for p in self.plots),
        }


def check_classes(classes: Iterable[str], known: Collection[str], where: str | Path) -> None:
    """Refuse class names outside ``known`` as ``labels add`` does: a misspelling (``'Coca '``)
    must not become a class of its own."""
    unknown = sorted(set(classes) - set(known))
    if not unknown:
        return
    norm = {k.strip().casefold(): k for k in known}
    bad = unknown[0]
    hint = f"did you mean {norm[bad.strip().casefold()]!r}? " if bad.strip().casefold() in norm else ""
    raise LabelFileError(
        f"{where}: unknown class {bad!r}" + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
        + f"; known: {sorted(known)}; {hint}fix the label or accept a new class with --new-class NAME"
    )


def plots_sha256(plots: Iterable[Plot]) -> str:
    """sha256 of plots in their normalised GeoJSON form, sorted by plot id."""
    feats = [p.feature() for p in sorted(plots, key=lambda p: p.plot_id)]
    return hashlib.sha256(json.dumps(feats, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _rounded(g: BaseGeometry) -> BaseGeometry:
    # Not shapely.set_precision: it would repair invalid rings, and nothing is repaired silently.
    return shapely.transform(g, lambda xy: np.round(xy, _PRECISION))


def _to_lonlat(crs: CRS | None) -> Transformer | None:
    if crs is None or crs.equals(CRS.from_epsg(4326), ignore_axis_order=True):
        return None
    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True)


def _reproject(g: BaseGeometry, tr: Transformer | None) -> BaseGeometry:
    if tr is None:
        return g
    return shapely.transform(g, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def _crs(value: Any, path: Path) -> CRS:
    try:
        return CRS.from_user_input(value)
    except Exception as e:  # pyproj raises CRSError with a long text
        raise LabelFileError(f"{path}: unreadable CRS {value!r} ({type(e).__name__}); write the file in EPSG:4326") from None


# A record: (index, properties, geometry or None, why the geometry could not be read).
_Record = tuple[int, dict[str, Any], BaseGeometry | None, str]


def _all_degrees(features: Sequence[Any]) -> bool:
    """Whether every coordinate of the features lies within lon/lat range (|x| <= 180, |y| <= 90)."""
    found = False
    for feat in features:
        try:
            b = shape(feat["geometry"]).bounds
        except Exception:  # unreadable geometries are reported per feature later
            continue
        if len(b) != 4 or any(np.isnan(b)):
            continue
        found = True
        if max(abs(b[0]), abs(b[2])) > 180 or max(abs(b[1]), abs(b[3])) > 90:
            return False
    return found


def _geojson_records(path: Path) -> list[_Record]:
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise LabelFileError(f"{path} is not GeoJSON (not valid JSON); export the labels as a GeoJSON FeatureCollection") from None
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection" or not isinstance(data.get("features"), list):
        raise LabelFileError(f"{path} is not a GeoJSON FeatureCollection; export the labels as one")
    crs_member = data.get("crs") or {}
    name = (crs_member.get("properties") or {}).get("name") if isinstance(crs_member, dict) else None
    declared = _crs(name, path) if name and "CRS84" not in name else None
    tr = _to_lonlat(declared)
    if declared is not None and declared.is_projected and _all_degrees(data["features"]):
        raise LabelFileError(
            f"{path} declares {name} (projected, metres) but every coordinate lies within lon/lat degrees; "
            "fix the file's crs member (or drop it for EPSG:4326 lon/lat)"
        )
    out: list[_Record] = []
    for i, feat in enumerate(data["features"]):
        if not isinstance(feat, dict):
            raise LabelFileError(f"{path}: feature {i} is not a GeoJSON Feature object")
        props = feat.get("properties") or {}
        if not isinstance(props, dict):
            raise LabelFileError(f"{path}: feature {i} has properties that are not a JSON object; give class, plot_id, ...")
        try:
            g: BaseGeometry | None = _reproject(shape(feat["geometry"]), tr)
            why = ""
        except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.GEOSException) as e:
            g, why = None, f"unreadable geometry ({type(e).__name__}: {e})"
        out.append((i, dict(props), g, why))
    return out


def _reference_records(data: dict[str, Any], path: Path, source: str | None) -> tuple[list[_Record], dict[str, Any]]:
    """Records of a labelled reference sample's units, and the sample's provenance."""
    sampling = data["sampling"]
    key = sample_key(sampling)
    imagery = sampling.get("imagery") or {}
    names = sampling.get("interpreters") or {}
    out: list[_Record] = []
    for i, feat in enumerate(data["features"]):
        p = (feat or {}).get("properties") or {}
        sid = str(p.get("sample_id", f"unit-{i}"))
        info = p.get("interpretation") or {}
        who = sorted({str(v.get("name")) for v in info.values() if isinstance(v, dict) and v.get("name")} or set(names.values()))
        props = {
            "class": reference_label(p), "plot_id": f"{sid}@{key[:12]}", "sample_unit": sid,
            "observed": p.get("observed") or imagery.get("last"),
            "source": source or f"reference sample {path.name}", "interpreter": "+".join(who) or None,
        }
        try:
            g: BaseGeometry | None = shape(feat["geometry"])
            why = ""
        except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.GEOSException) as e:
            g, why = None, f"unreadable geometry ({type(e).__name__}: {e})"
        out.append((i, props, g, why))
    provenance = {
        "sample_key": key, "file": str(path), "class_map_sha256": sampling.get("class_map_sha256"),
        "design": sampling.get("design"), "seed": sampling.get("seed"), "run": sampling.get("run"),
        "n_units": len(out), "interpreters": names, "imagery": imagery or None,
    }
    return out, provenance


def _gpkg_records(path: Path, layer: str | None) -> list[_Record]:
    import pyogrio
    import pyogrio.raw

    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(path)]
        if layer is None and len(layers) > 1:
            raise LabelFileError(f"{path} has layers {layers}; choose one with --layer")
        meta, _, wkb, fields = pyogrio.raw.read(path, layer=layer, datetime_as_string=True)
    except pyogrio.errors.DataSourceError as e:
        raise LabelFileError(f"{path}: not a readable GeoPackage ({e})") from None
    except pyogrio.errors.DataLayerError as e:
        raise LabelFileError(f"{path}: {e}") from None
    if not meta.get("crs"):
        raise LabelFileError(f"{path}: missing CRS (the layer declares no coordinate reference system); "
                             "assign one (e.g. EPSG:4326) in your GIS and export again")
    tr = _to_lonlat(_crs(meta["crs"], path))
    names = list(meta["fields"])
    out: list[_Record] = []
    for i in range(len(wkb)):
        props = {n: (None if _is_null(col[i]) else col[i].item() if hasattr(col[i], "item") else col[i])
                 for n, col in zip(names, fields, strict=True)}
        try:
            g: BaseGeometry | None = None if wkb[i] is None else _reproject(shapely.from_wkb(wkb[i]), tr)
            why = "no geometry" if g is None else ""
        except shapely.errors.GEOSException as e:
            g, why = None, f"unreadable geometry ({e})"
        out.append((i, props, g, why))
    return out


def _is_null(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def _parse_date(v: Any) -> dt.date | None:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v[:10])
        except ValueError:
            return None
    return None


def _text(v: Any) -> str | None:
    return None if v is None or str(v).strip() == "" else str(v).strip()


def _same_plot(a: BaseGeometry, b: BaseGeometry) -> bool:
    if a.equals(b):
        return True
    if a.geom_type in _AREAL and b.geom_type in _AREAL:
        union = a.union(b).area
        return union > 0 and a.intersection(b).area / union > DUPLICATE_IOU
    return False


class _Checker:
    """Validates records in order; earlier accepted plots (and the store's) win duplicates."""

    def __init__(self, path: Path, class_field: str, known: Collection[str], period: PeriodConfig | None,
                 existing: LabelSet | None, observed: dt.date | None, source: str | None,
                 records: Sequence[_Record], reference: bool = False) -> None:
        self.path, self.class_field, self.known, self.period = path, class_field, known, period
        self.reference = reference
        self.observed, self.source, self.records = observed, source, records
        self.ids: dict[str, str] = {}
        self.geoms: list[tuple[str, BaseGeometry]] = []
        if existing is not None:
            batch_of = existing.batch_ids or ("?",) * len(existing.plot_ids)
            self.ids = {pid: f"store batch {b}" for pid, b in zip(existing.plot_ids, batch_of, strict=True)}
            self.geoms = [(f"{pid} (store batch {b})", g)
                          for pid, g, b in zip(existing.plot_ids, existing.geometries, batch_of, strict=True)]
        self.tree = shapely.STRtree([g for _, g in self.geoms])
        self.file_geoms = [None if g is None else _rounded(g) for _, _, g, _ in records]
        self.in_file = shapely.STRtree(self.file_geoms)
        self.accepted: dict[int, str] = {}
        """Position in ``records`` -> plot id, of the plots accepted so far."""

    def check(self, pos: int) -> Plot | tuple[str, str]:
        """The plot of ``records[pos]``, or (reason, message)."""
        i, props, g, why = self.records[pos]
        if g is None:
            return "invalid_geometry", why or "no geometry"
        g = _rounded(g)
        if g.is_empty:
            return "empty_geometry", "empty geometry"
        if g.geom_type not in _AREAL + _POINTS:
            return "unsupported_geometry", f"{g.geom_type} geometry; labels are polygons or points"
        if not g.is_valid:
            return "invalid_geometry", f"invalid geometry: {shapely.is_valid_reason(g)}; fix it in your GIS (nothing is repaired automatically)"
        if self.reference and _text(props.get(self.class_field)) is None:
            return "no_reference_label", "no reference label: no interpreter answered, or they disagree without a consensus"
        x0, y0, x1, y1 = g.bounds
        if max(abs(x0), abs(x1)) > 180 or max(abs(y0), abs(y1)) > 90:
            return "invalid_geometry", "coordinates outside lon/lat range (projected coordinates without a declared CRS?)"
        missing = [k for k, v in ((self.class_field, props.get(self.class_field)), ("plot_id", props.get("plot_id")))
                   if _text(v) is None]
        observed_raw = props.get("observed")
        source = _text(props.get("source")) or self.source
        if observed_raw in (None, "") and self.observed is None:
            missing.append("observed")
        if source is None:
            missing.append("source")
        if missing or source is None:
            return "missing_field", f"missing {', '.join(repr(m) for m in missing)} (has: {sorted(props)})"
        pid, cls = str(_text(props["plot_id"])), str(_text(props[self.class_field]))
        if cls not in self.known:
            return "unknown_class", f"unknown class {cls!r}; known: {sorted(self.known)} (accept a new class with --new-class {cls})"
        observed = self.observed if observed_raw in (None, "") else _parse_date(observed_raw)
        if observed is None:
            return "bad_date", f"'observed' is not an ISO date (YYYY-MM-DD): {observed_raw!r}"
        if self.period is not None and not self.period.start <= observed <= self.period.end:
            return "date_outside_period", f"observed {observed} is outside the imagery period {self.period.label}"
        if pid in self.ids:
            return "duplicate_plot_id", f"plot_id {pid!r} already used by {self.ids[pid]}"
        for j in self.tree.query(g):
            other_id, other = self.geoms[int(j)]
            if _same_plot(g, other):
                return "duplicate_geometry", f"same plot as {other_id} (equal geometry or IoU > {DUPLICATE_IOU})"
        for j in self.in_file.query(g):  # plots accepted earlier in this file
            prior, prior_g = self.accepted.get(int(j)), self.file_geoms[int(j)]
            if prior is not None and prior_g is not None and _same_plot(g, prior_g):
                return "duplicate_geometry", f"same plot as {prior} (equal geometry or IoU > {DUPLICATE_IOU})"
        self.ids[pid] = f"feature {i}"
        self.accepted[pos] = pid
        unit = _text(props.get("sample_unit")) if self.reference else None
        return Plot(pid, cls, g, observed, source, _text(props.get("interpreter")), unit)


def read_label_file(
    path: Path,
    *,
    class_field: str = "class",
    classes: Collection[str] | None = None,
    new_classes: Sequence[str] = (),
    period: PeriodConfig | None = None,
    existing: LabelSet | None = None,
    observed: dt.date | str | None = None,
    source: str | None = None,
    layer: str | None = None,
    where: Mapping[str, str] | None = None,
    skip_invalid: bool = False,
) -> LabelBatch:
    """Read and validate a GeoJSON (``.geojson``/``.json``) or GeoPackage (``.gpkg``) of labeled plots.

    Parameters
    ----------
    path
        The delivered file.
    class_field
        Property holding the class name.
    classes
        Known classes (default: ``DEFAULT_CLASSES`` plus the classes of ``existing``).
    new_classes
        Classes to accept although unknown (an explicit opt-in).
    period
        The imagery period; plots observed outside it are rejected. ``None``: no check.
    existing
        Plots already in the store: their ids and geometries count as duplicates.
    observed, source
        Values for features that do not carry ``observed``/``source`` themselves.
    layer
        GeoPackage layer (required when the file has several).
    where
        Keep only features whose properties equal these values (e.g. ``{"batch": "1"}``);
        the others are counted as not selected.
    skip_invalid
        Accept the valid features and return the rejected ones with their reasons,
        instead of failing.

    Raises
    ------
    LabelFileError
        One line naming the file, the (first) feature and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise LabelFileError(f"labels file not found: {path}")
    reference: dict[str, Any] | None = None
    if path.suffix.lower() == ".gpkg":
        records = _gpkg_records(path, layer)
    elif path.suffix.lower() in (".geojson", ".json"):
        records = _geojson_records(path)
        head = json.loads(path.read_bytes())
        if isinstance(head.get("sampling"), dict):  # a labelled reference sample
            records, reference = _reference_records(head, path, source)
            class_field = "class"
    else:
        raise LabelFileError(f"{path}: unsupported label format {path.suffix!r}; use GeoJSON (.geojson) or GeoPackage (.gpkg)")
    n_all = len(records)
    if where:
        records = [r for r in records if all(str(r[1].get(k)) == v for k, v in where.items())]
    if not records:
        raise LabelFileError(f"{path} holds no labeled features" + (f" matching {dict(where)}" if where else ""))
    if observed is not None and _parse_date(observed) is None:
        raise LabelFileError(f"observation date {observed!r} for {path} is not an ISO date (YYYY-MM-DD)")
    observed = _parse_date(observed)
    known = set(classes if classes is not None else DEFAULT_CLASSES) | set(new_classes)
    if classes is None and existing is not None:
        known |= set(existing.classes)
    checker = _Checker(path, class_field, known, period, existing, observed, source, records, reference is not None)
    plots: list[Plot] = []
    rejected: list[Rejected] = []
    for pos, (i, props, g, _) in enumerate(records):
        got = checker.check(pos)
        if isinstance(got, Plot):
            plots.append(got)
            continue
        reason, message = got
        feat = {"type": "Feature", "properties": {**props, "rejected_reason": reason, "rejected_message": message},
                "geometry": None if g is None else mapping(g)}
        rejected.append(Rejected(i, _text(props.get("plot_id")), reason, message, json.loads(json.dumps(feat, default=str))))
    batch = LabelBatch(path, hashlib.sha256(path.read_bytes()).hexdigest(), tuple(sorted(plots, key=lambda p: p.plot_id)),
                       tuple(rejected), len(records), n_all - len(records), reference)
    c = batch.counts()
    if rejected and not skip_invalid:
        r = rejected[0]
        raise LabelFileError(
            f"{path}: {r.where}: {r.message} ({len(rejected)} of {len(records)} features rejected: {c['rejected']}); "
            "fix the file, or pass --skip-invalid to add the others and keep the rejected ones in rejected.geojson"
        )
    if not plots:
        raise LabelFileError(f"{path}: all {len(records)} features rejected ({c['rejected']}); nothing to add")
    log.info("%s: read %d, accepted %d, rejected %s, without interpreter %d",
             path.name, c["read"], c["accepted"], c["rejected"], c["without_interpreter"])
    return batch
