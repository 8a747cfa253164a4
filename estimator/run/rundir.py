"""The run directory's layout: its file names, the estimates' writer and every reader.

Sampling, assessment, comparison and active learning work on a run after the fact; this
module is the one place that knows the run layout (``estimates.json``/``.csv``,
``manifest.json``, ``assessment.json``, ``comparison.json``, ``maps/*.tif``,
``plots.geoparquet``, ``quicklook.png``), and streams the class map block by block so memory
stays bounded whatever the region size.

Two views of a run: :class:`RunDir` (local, what sampling and assessment stream through) and
:class:`Run` (what :func:`estimator.open_run` gives an analyst: pandas, xarray and geopandas
objects, read from a local directory or any fsspec URL).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import datetime as dt
import fnmatch
import hashlib
import html
import io
import json
import re
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.errors import RasterioIOError
from rasterio.windows import Window
from scipy import ndimage

from estimator.config import RegionsConfig
from estimator.errors import EstimatorError
from estimator.grid import pixel_area_m2
from estimator.location import OutputLike, RunLocation, as_output, check_writable, is_url, write_json, write_text
from estimator.regions.geometry import Region, rasterize_regions
from estimator.regions.job import job_regions
from estimator.stages.estimate import RECORD_FIELDS, SCHEMA_VERSION
from estimator.synthetic import SYNTHETIC_BANNER

if TYPE_CHECKING:  # imported when used: opening a run for sampling needs none of them
    import geopandas as gpd
    import pandas as pd
    import xarray as xr
    from matplotlib.axes import Axes

__all__ = [
    "ASSESSMENT_FILE",
    "COMPARISON_FILE",
    "DERIVED_FILES",
    "ESTIMATES_FILE",
    "MANIFEST_FILE",
    "RETIRED_DIR",
    "RUN_ID_TAG",
    "RUN_MARKER",
    "Assessment",
    "Block",
    "Comparison",
    "Manifest",
    "Run",
    "RunDir",
    "RunDirError",
    "check_run_location",
    "is_job_key",
    "is_strata_manifest",
    "mark_run_location",
    "new_run_id",
    "open_run",
    "read_estimates",
    "read_manifest",
    "read_run",
    "retire_derived",
    "write_estimates",
]

#: File names of a run directory.
ESTIMATES_FILE = "estimates.json"
MANIFEST_FILE = "manifest.json"
ASSESSMENT_FILE = "assessment.json"
COMPARISON_FILE = "comparison.json"
CLASS_MAP = "maps/class.tif"
COUNT_MAP = "maps/valid_obs_count.tif"
PLOTS_FILE = "plots.geoparquet"
QUICKLOOK_FILE = "quicklook.png"


def probability_map(target_class: str) -> str:
    """The run-relative path of the target-class probability map."""
    return f"maps/{target_class}_probability.tif"
#: The map of a cold-start run (``model: none``): label-free strata in place of classes.
STRATA_MAP = "maps/strata.tif"

#: Marks a directory as written by ``estimator run``: only such a directory is written into
#: when it already holds files, so a mistyped ``--out`` never overwrites or prunes others' files.
RUN_MARKER = ".estimator-run"
#: Files computed from a run's estimates or maps after the fact (assess, compare): a new run
#: into the directory retires them, since they describe the run it replaces.
DERIVED_FILES = ("assessment.json", "comparison.json", "report.html", "report_comparison.md", "report_*.png")
#: Where retired files go, one folder per retirement (``retired/<UTC time>/``).
RETIRED_DIR = "retired"
#: Tag of the class map naming the run that wrote it (the manifest and estimates carry it too).
RUN_ID_TAG = "run_id"

_JOB_KEY = re.compile(r"^[0-9a-f]{16}$")

_BLOCK = 2048


class RunDirError(EstimatorError, ValueError):
    """A directory is not a (complete, consistent) run directory, or may not become one."""


def is_job_key(name: str) -> bool:
    """Whether ``name`` is a checkpoint folder name (:func:`estimator.run.checkpoints.job_key`)."""
    return _JOB_KEY.match(name) is not None


def new_run_id() -> str:
    """A fresh id for one committed set of outputs."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(4)


def check_run_location(location: RunLocation) -> None:
    """Refuse to run into an existing location that holds files and is not a run directory.

    A run directory is one marked by :data:`RUN_MARKER`, or one written before the marker
    existed (``manifest.json`` and ``estimates.json``, or only job-key checkpoint folders).
    """
    if location.local is not None:
        check_writable(location.local, "output", directory=True)
    names = [n for n in location.names() if not n.startswith(".staging-")]
    if not names or RUN_MARKER in names:
        return
    if {MANIFEST_FILE, ESTIMATES_FILE} <= set(names):
        return
    if names == ["tiles"] and all(is_job_key(d) for d in location.subdirs("tiles")):
        return
    shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
    raise RunDirError(
        f"output {location} already holds files ({shown}) and is not a run directory; "
        "choose a new or empty directory with --out (or the job's `output`)"
    )


def mark_run_location(location: RunLocation) -> None:
    """Mark the location as a run directory (before its first checkpoint is written)."""
    if not location.exists(RUN_MARKER):
        text = json.dumps({"written_by": "estimator run", "format": 1}) + "\n"
        location.write_bytes(RUN_MARKER, text.encode())


def retire_derived(location: RunLocation) -> list[str]:
    """Move the files derived from the previous run (:data:`DERIVED_FILES`) to
    ``retired/<UTC time>/``; return their names. Nothing is deleted."""
    names = [n for n in location.names() if any(fnmatch.fnmatchcase(n, pat) for pat in DERIVED_FILES)]
    if names:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        for n in names:
            location.move(n, f"{RETIRED_DIR}/{stamp}/{n}")
    return names


@dataclass(frozen=True)
class Block:
    """One window of the class map with what sampling and assessment need."""

    row_off: int
    col_off: int
    codes: np.ndarray
    """Class codes (0 = unobserved, else 1 + index into ``RunDir.classes``)."""
    regions: np.ndarray
    """``(n_regions, h, w)`` region masks (pixel-centre rule)."""
    pixel_area_m2: np.ndarray
    probability: np.ndarray | None = None
    """Target-class probability (NaN where unobserved), with ``RunDir.blocks(target_buffer=...)``."""
    near_target: np.ndarray | None = None
    """Pixels within ``target_buffer`` pixels (chessboard distance) of a pixel mapped as the
    target class, the pixel itself excluded when it is mapped as the target."""


@dataclass(frozen=True)
class RunDir:
    """A run directory written by ``estimator run``.

    In a cold-start run (``model: none``) ``classes`` are the label-free strata and
    ``class_map`` is the strata map: sampling stratifies by them the same way; assessment
    estimates the areas of :attr:`reference_classes` instead.
    """

    path: Path
    manifest: dict[str, Any]
    regions: tuple[Region, ...]
    classes: tuple[str, ...]
    grid: GeoBox
    class_map: Path

    @property
    def synthetic(self) -> bool:
        return bool(self.manifest.get("synthetic"))

    @property
    def strata_only(self) -> bool:
        """A cold-start run: strata, no model, no class map."""
        return is_strata_manifest(self.manifest)

    @property
    def reference_classes(self) -> tuple[str, ...]:
        """Classes a reference sample of this run is labelled with: the job's legend in a
        cold-start run, the model's classes otherwise."""
        if self.strata_only:
            return tuple(self.manifest["model"].get("reference_classes") or ())
        return self.classes

    def class_map_sha256(self) -> str:
        h = hashlib.sha256()
        with open(self.class_map, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    @property
    def target_class(self) -> str:
        return str(self.manifest["model"]["target_class"])

    @property
    def probability_map(self) -> Path:
        """The target class's probability map (``maps/<target>_probability.tif``)."""
        return self.path / "maps" / f"{self.target_class}_probability.tif"

    def blocks(self, block: int = _BLOCK, target_buffer: int | None = None) -> Iterator[Block]:
        """Windows of the class map in a fixed (row-major) order; with ``target_buffer``
        (pixels), also the target probability and the buffer next to mapped target pixels."""
        ny, nx = self.grid.shape.yx
        if target_buffer is not None and not self.probability_map.is_file():
            raise EstimatorError(f"{self.path}: {self.probability_map.name} missing; rerun the job (the target-area design needs it)")
        target_code = self.classes.index(self.target_class) + 1 if target_buffer is not None else 0
        with rasterio.open(self.class_map) as src, (rasterio.open(self.probability_map) if target_buffer is not None else _nothing()) as psrc:
            for r0 in range(0, ny, block):
                for c0 in range(0, nx, block):
                    h, w = min(block, ny - r0), min(block, nx - c0)
                    codes = src.read(1, window=Window(c0, r0, w, h))
                    gb = self.grid[r0 : r0 + h, c0 : c0 + w]
                    prob = near = None
                    if psrc is not None and target_buffer is not None:
                        prob = psrc.read(1, window=Window(c0, r0, w, h)).astype(np.float64)
                        # A halo so that the buffer crosses block edges.
                        b = target_buffer
                        halo = src.read(1, window=Window(c0 - b, r0 - b, w + 2 * b, h + 2 * b), boundless=True, fill_value=0)
                        grown = ndimage.binary_dilation(halo == target_code, iterations=b, structure=np.ones((3, 3), bool)) if b else halo == target_code
                        near = grown[b : b + h, b : b + w] & (codes != target_code)
                    yield Block(r0, c0, codes, rasterize_regions(self.regions, gb), pixel_area_m2(gb), prob, near)

    def estimates(self) -> dict[str, Any]:
        """The run's ``estimates.json``."""
        return read_estimates(self.path)

    def assessment(self) -> dict[str, Any] | None:
        """The run's ``assessment.json``, or ``None`` before ``estimator assess``."""
        return _read_json(self.path, ASSESSMENT_FILE) if (self.path / ASSESSMENT_FILE).is_file() else None

    def pixel_xy(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid-CRS coordinates of pixel centres."""
        a = self.grid.affine
        return a.c + a.a * (cols + 0.5) + a.b * (rows + 0.5), a.f + a.d * (cols + 0.5) + a.e * (rows + 0.5)


def _nothing() -> contextlib.nullcontext[None]:
    return contextlib.nullcontext()


def is_strata_manifest(manifest: Mapping[str, Any]) -> bool:
    """Whether a manifest describes a cold-start run (``model: none``, strata map)."""
    model = manifest.get("model")
    return isinstance(model, dict) and model.get("id") == "none" and "strata" in model


def write_estimates(run_dir: Path, records: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> None:
    """``estimates.json`` (schema version, metadata, records) and ``estimates.csv``."""
    write_json(run_dir / ESTIMATES_FILE, {"schema_version": SCHEMA_VERSION, **meta, "records": list(records)})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(RECORD_FIELDS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in records:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in RECORD_FIELDS})
    write_text(run_dir / "estimates.csv", buf.getvalue())


def _read_json(path: Path | RunLocation, name: str) -> dict[str, Any]:
    try:
        text = (path / name).read_bytes() if isinstance(path, Path) else path.read_bytes(name)
        data = json.loads(text)
    except FileNotFoundError:
        raise EstimatorError(f"{path} is not a finished run directory ({name} missing); run `estimator run` first") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        why = e.msg if isinstance(e, json.JSONDecodeError) else "not UTF-8"
        raise EstimatorError(f"{path}: {name} is not valid JSON ({why}); rerun the job") from None
    if not isinstance(data, dict):
        raise EstimatorError(f"{path}: {name} is not a JSON object; rerun the job")
    return data


def read_estimates(path: Path | str) -> dict[str, Any]:
    """A run's ``estimates.json``: schema version, period, model id and ``records``; an error
    when the run's manifest is missing or names another run (an interrupted write)."""
    path = Path(path)
    estimates = _read_json(path, ESTIMATES_FILE)
    _same_run(path, ESTIMATES_FILE, estimates.get(RUN_ID_TAG), _read_json(path, MANIFEST_FILE))
    if not isinstance(estimates.get("records"), list):
        raise RunDirError(f"{path}: {ESTIMATES_FILE} has no list of records; rerun the job")
    return estimates


def _same_run(path: Path | RunLocation, name: str, run_id: Any, manifest: Mapping[str, Any]) -> None:
    """Files written before run ids existed carry none; otherwise they must agree."""
    mid = manifest.get(RUN_ID_TAG)
    if (run_id is not None or mid is not None) and run_id != mid:
        raise RunDirError(
            f"{path}: {name} and {MANIFEST_FILE} come from different runs (an interrupted write?); rerun the job"
        )


def read_manifest(path: Path | str) -> dict[str, Any]:
    """A run's ``manifest.json`` (provenance: items, config, model, grid, tiles)."""
    return _read_json(Path(path), MANIFEST_FILE)


def open_run(path: Path | str) -> RunDir:
    """Open a local run directory; a clear error when it is not one.

    Runs written to a remote output (``s3://...``) are read from a local copy: the class
    map is read many times, window by window.
    """
    if is_url(path) and not Path(path).exists():
        url = as_output(path)
        if not isinstance(url, Path):
            raise EstimatorError(
                f"{url} is a remote run; copy it to a local directory first "
                f"(e.g. `aws s3 cp --recursive {url} ./run --exclude 'tiles/*'`) and pass that directory"
            )
        path = url
    path = Path(path)
    mpath = path / MANIFEST_FILE
    manifest = _read_json(path, MANIFEST_FILE) if mpath.is_file() else {}
    strata = is_strata_manifest(manifest)
    cmap, tag = (path / STRATA_MAP, "strata") if strata else (path / CLASS_MAP, "classes")
    if not mpath.is_file() or not cmap.is_file():
        raise EstimatorError(
            f"{path} is not a finished run directory (needs manifest.json and {STRATA_MAP if strata else CLASS_MAP}); "
            "run `estimator run` first"
        )
    try:
        cfg = manifest["config"]
        model_classes = list(manifest["model"]["classes"])
    except (KeyError, TypeError):
        raise RunDirError(f"{mpath} lacks the run's config or model; rerun the job") from None
    regions = job_regions(RegionsConfig.model_validate(cfg["regions"]))
    try:
        with rasterio.open(cmap) as src:
            grid = GeoBox((src.height, src.width), src.transform, src.crs)
            tags = src.tags()
            classes = tuple(json.loads(tags[tag])[1:])
    except (RasterioIOError, KeyError, ValueError):
        raise RunDirError(f"{cmap} is not a readable class map of this run; rerun the job") from None
    if list(classes) != model_classes:
        raise EstimatorError(f"{cmap} does not match the run's manifest (classes differ); rerun the job")
    _same_run(path, CLASS_MAP, tags.get(RUN_ID_TAG), manifest)
    read_estimates(path)
    return RunDir(path, manifest, regions, classes, grid, cmap)


# -- the run as an analyst sees it: pandas, xarray and geopandas objects -------------------

#: Chunks of the lazily opened maps: the streaming block size of the class map.
_MAP_CHUNKS = {"band": 1, "y": _BLOCK, "x": _BLOCK}

#: Columns of the estimates table shown inline for a run.
_SHOWN = ("region", "class", "estimator", "observed_fraction", "mapped_area_ha", "area_ha", "ci95_low_ha", "ci95_high_ha")


class _JsonFile(Mapping[str, Any]):
    """A JSON file of the run: a read-only mapping of its content, with typed accessors.

    Being a mapping keeps ``obj["model"]["id"]`` and ``dict(obj)`` working for code written
    against the plain JSON.
    """

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(sorted(self._data))})"

    def to_dict(self) -> dict[str, Any]:
        """A deep copy of the file's content, as plain JSON types."""
        copied: dict[str, Any] = json.loads(json.dumps(self._data, default=str))
        return copied


class Manifest(_JsonFile):
    """A run's provenance (``manifest.json``): STAC items, job, model, grid, tiles, timings.

    A read-only mapping of the file's content, with typed accessors for what analyses
    most often need.

    Examples
    --------
    >>> from estimator import Manifest
    >>> m = Manifest({"period": "2023-01-01/2023-12-31", "synthetic": False,
    ...               "model": {"id": "3f2a9c01b7de", "classes": ["coca", "forest"], "target_class": "coca"}})
    >>> m.model_id, m.classes, m["period"]
    ('3f2a9c01b7de', ('coca', 'forest'), '2023-01-01/2023-12-31')
    """

    @property
    def period(self) -> str:
        """The job's period, ``START/END`` (ISO dates)."""
        return str(self._data["period"])

    @property
    def synthetic(self) -> bool:
        """Whether the imagery came from the generated demo world."""
        return bool(self._data.get("synthetic"))

    @property
    def created(self) -> str:
        """When the run finished (ISO 8601, UTC)."""
        return str(self._data.get("created", ""))

    @property
    def model_id(self) -> str:
        """Id of the model that classified the pixels."""
        return str(self._data["model"]["id"])

    @property
    def classes(self) -> tuple[str, ...]:
        """The model's classes; class code ``i + 1`` in the class map is ``classes[i]``."""
        return tuple(self._data["model"]["classes"])

    @property
    def target_class(self) -> str:
        """The class whose area the job estimates (``coca``)."""
        return str(self._data["model"]["target_class"])

    @property
    def crs(self) -> str:
        """CRS of the output grid."""
        return str(self._data["grid"]["crs"])

    @property
    def config(self) -> dict[str, Any]:
        """The validated job configuration the run used."""
        return dict(self._data.get("config", {}))

    @property
    def config_hash(self) -> str:
        """Hash of the job configuration (equal hashes: the same job)."""
        return str(self._data.get("config_hash", ""))

    @property
    def items(self) -> pd.DataFrame:
        """One row per STAC item read: id, datetime, processing baseline, offset, scale, cloud cover, tile."""
        import pandas as pd

        return pd.DataFrame.from_records(self._data.get("items", []))

    @property
    def tiles(self) -> pd.DataFrame:
        """One row per output tile: id, status, reused, failed items, message."""
        import pandas as pd

        return pd.DataFrame.from_records(self._data.get("tiles", []))

    @property
    def timings_s(self) -> dict[str, float]:
        """Seconds spent per step of the run."""
        return {k: float(v) for k, v in self._data.get("timings_s", {}).items()}

    @property
    def versions(self) -> dict[str, str]:
        """Versions of the packages that computed the run."""
        return {k: str(v) for k, v in self._data.get("versions", {}).items()}


class Assessment(_JsonFile):
    """Accuracy assessment of a run (``assessment.json``, written by ``estimator assess``).

    Examples
    --------
    >>> from estimator import Assessment
    >>> a = Assessment({"estimator": "stratified-olofsson2014", "n_units": 2, "z": 1.96,
    ...                 "regions": {"north": {"n": 2, "overall_accuracy": 0.9, "overall_ci95": 0.05,
    ...                             "per_class": {"coca": {"users_accuracy": 0.8, "users_ci95": 0.1,
    ...                                                    "producers_accuracy": 0.7, "producers_ci95": 0.2}}}}})
    >>> a.accuracy[["region", "class", "users_accuracy"]].to_dict("records")
    [{'region': 'north', 'class': 'coca', 'users_accuracy': 0.8}]
    """

    @property
    def estimator(self) -> str | None:
        """Area estimator applied (``stratified-olofsson2014`` or ``stehman2014``)."""
        v = self._data.get("estimator")
        return None if v is None else str(v)

    @property
    def reference(self) -> str:
        """The labeled reference sample the assessment used."""
        return str(self._data.get("reference", ""))

    @property
    def n_units(self) -> int:
        """Number of labeled sample units."""
        return int(self._data.get("n_units", 0))

    @property
    def z(self) -> float:
        """Normal quantile of the intervals (1.96: 95 %)."""
        return float(self._data.get("z", 1.96))

    @property
    def interpreters(self) -> dict[str, Any]:
        """Agreement of the two interpreters and where each label came from."""
        return dict(self._data.get("interpreters", {}))

    @property
    def overall(self) -> pd.DataFrame:
        """Overall accuracy per region with its CI half-width and the units behind it."""
        import pandas as pd

        rows = [
            {"region": rid, "n": r.get("n"), "overall_accuracy": r.get("overall_accuracy"), "overall_ci95": r.get("overall_ci95")}
            for rid, r in self._data.get("regions", {}).items()
        ]
        return pd.DataFrame(rows, columns=["region", "n", "overall_accuracy", "overall_ci95"])

    @property
    def accuracy(self) -> pd.DataFrame:
        """User's and producer's accuracy (with CI half-widths) per region and class."""
        import pandas as pd

        cols = ["region", "class", "users_accuracy", "users_ci95", "producers_accuracy", "producers_ci95"]
        rows = [
            {"region": rid, "class": c, **{k: v.get(k) for k in cols[2:]}}
            for rid, r in self._data.get("regions", {}).items()
            for c, v in r.get("per_class", {}).items()
        ]
        return pd.DataFrame(rows, columns=cols)


class Comparison(_JsonFile):
    """Claims set beside estimates (``comparison.json``, written by ``estimator compare``).

    Examples
    --------
    >>> from estimator import Comparison
    >>> c = Comparison({"target_class": "coca", "synthetic": True, "claims": [
    ...     {"id": "c1", "region": "north", "kind": "point", "value_ha": 13.4, "verdict": "contradicted",
    ...      "reason": None, "ratio": 3.1, "estimate": {"area_ha": 4.3, "ci95_low_ha": 3.0, "ci95_high_ha": 5.7}}]})
    >>> c.claims[["id", "verdict", "estimate_ha"]].to_dict("records")
    [{'id': 'c1', 'verdict': 'contradicted', 'estimate_ha': 4.3}]
    """

    def __init__(self, data: Mapping[str, Any], files: Sequence[Path] = ()) -> None:
        super().__init__(data)
        self.files = tuple(files)
        """Files :func:`estimator.compare` wrote (empty when read from a run directory)."""

    @property
    def target_class(self) -> str:
        """The class the claims and estimates are about."""
        return str(self._data.get("target_class", "coca"))

    @property
    def synthetic(self) -> bool:
        """Whether a compared run (or the claims) came from the generated demo world."""
        return bool(self._data.get("synthetic"))

    @property
    def claims(self) -> pd.DataFrame:
        """One row per compared claim: its value, the verdict and why, and the estimate it was set beside."""
        import pandas as pd

        cols = ["id", "region", "kind", "value_ha", "growth_percent_per_year", "period_start", "period_end",
                "verdict", "reason", "ratio", "estimate_ha", "ci95_low_ha", "ci95_high_ha", "estimator",
                "claimant", "source", "warnings"]
        rows = []
        for c in self._data.get("claims", []):
            est = c.get("estimate") or {}
            rows.append({
                **{k: c.get(k) for k in cols}, "estimate_ha": est.get("area_ha"), "ci95_low_ha": est.get("ci95_low_ha"),
                "ci95_high_ha": est.get("ci95_high_ha"), "estimator": est.get("estimator"), "warnings": list(c.get("warnings") or []),
            })
        return pd.DataFrame(rows, columns=cols)

    @property
    def estimates(self) -> pd.DataFrame:
        """The target-class estimates of the compared runs (``run`` indexes :attr:`runs`)."""
        import pandas as pd

        return pd.DataFrame.from_records(self._data.get("estimates", []))

    @property
    def runs(self) -> pd.DataFrame:
        """The compared runs: directory, period, model."""
        import pandas as pd

        return pd.DataFrame.from_records(self._data.get("runs", []))

    @property
    def unmatched(self) -> pd.DataFrame:
        """Claims that could not be compared, with the reason."""
        import pandas as pd

        return pd.DataFrame(self._data.get("unmatched", []), columns=["id", "reason"])

    def _repr_html_(self) -> str:
        banner = f"<p><strong>{SYNTHETIC_BANNER}</strong></p>" if self.synthetic else ""
        shown = self.claims[["id", "region", "kind", "value_ha", "verdict", "reason", "estimate_ha", "ci95_low_ha", "ci95_high_ha"]]
        return f"{banner}<p>{len(shown)} claim(s) about {html.escape(self.target_class)}</p>{shown.to_html(index=False, na_rep='')}"


class Run:
    """A finished run: estimates, maps, probable plots, provenance, assessment and comparison.

    Made by :func:`estimator.open_run` (any finished run directory, local or an fsspec URL)
    and returned by :func:`estimator.run`. Files are read when an attribute asks for them;
    the maps are opened lazily (dask-backed), so a Loreto-size run opens in milliseconds.

    Attributes
    ----------
    run_dir : pathlib.Path or str
        The run directory, or the URL of a remote one (``s3://...``, ``memory://...``).
    records : list of dict
        The records of ``estimates.json`` (one per region and class).
    manifest : Manifest
        Provenance (``manifest.json``).
    tiles_reused : int
        Tiles found finished on disk from an earlier, interrupted run (``estimator.run`` only).
    retired : tuple of str
        Files derived from the previous run in the directory (assessment, comparison), moved
        to ``retired/`` because they no longer describe it (``estimator.run`` only).

    Examples
    --------
    >>> import estimator
    >>> from estimator.demo import example
    >>> run = estimator.open_run(example().run_dir)
    >>> run.synthetic, run.target_class
    (True, 'coca')
    >>> sorted(run.maps.data_vars)
    ['class', 'coca_probability', 'valid_obs_count']
    >>> run.maps.rio.crs == run.manifest.crs
    True
    >>> list(run.estimates.columns[:4])
    ['region', 'region_name', 'class', 'period']
    """

    def __init__(
        self, run_dir: OutputLike, records: Sequence[Mapping[str, Any]], manifest: Mapping[str, Any], *,
        tiles_reused: int = 0, retired: Sequence[str] = (),
    ) -> None:
        self.run_dir: Path | str = run_dir
        self.records: list[dict[str, Any]] = [dict(r) for r in records]
        self.manifest: Manifest = manifest if isinstance(manifest, Manifest) else Manifest(manifest)
        self.tiles_reused = tiles_reused
        self.retired: tuple[str, ...] = tuple(retired)
        self._location = RunLocation.open(run_dir)
        self._maps: xr.Dataset | None = None

    def __repr__(self) -> str:
        tag = ", SYNTHETIC" if self.synthetic else ""
        return f"Run({str(self.run_dir)!r}, period={self.manifest.period!r}, model={self.manifest.model_id!r}{tag})"

    @property
    def synthetic(self) -> bool:
        """Whether the run's imagery came from the generated demo world."""
        return self.manifest.synthetic

    @property
    def target_class(self) -> str:
        """The class whose area the run estimates."""
        return self.manifest.target_class

    @property
    def failed_read_fraction(self) -> float:
        """Largest share of a region's image reads that failed (0 when every read succeeded)."""
        return max((float(r.get("failed_read_fraction") or 0.0) for r in self.records), default=0.0)

    @property
    def estimates(self) -> pd.DataFrame:
        """``estimates.json`` as a table: one row per region and class (columns as ``estimates.csv``)."""
        import pandas as pd

        df = pd.DataFrame.from_records(self.records)
        first = [c for c in RECORD_FIELDS if c in df.columns]
        df = df[first + [c for c in df.columns if c not in first]]
        df.attrs.update(period=self.manifest.period, synthetic=self.synthetic, run_dir=str(self.run_dir))
        return df

    @property
    def maps(self) -> xr.Dataset:
        """The class map, target probability and clear-observation count, opened lazily.

        For a cold-start run (``model: none``) the Dataset holds ``strata`` (label-free strata,
        names in ``attrs["strata"]``) and ``valid_obs_count`` instead.

        ``class`` holds codes (0 unobserved, ``i + 1`` for ``attrs["classes"][i + 1]``, as CF
        ``flag_values``/``flag_meanings``); ``<target>_probability`` is NaN where unobserved;
        ``valid_obs_count`` is -1 outside the grid's footprint. The CRS is in ``attrs["crs"]``
        and on ``rio.crs``.
        """
        if self._maps is None:
            self._maps = _open_maps(self._location, self.manifest)
        return self._maps

    @property
    def plots(self) -> gpd.GeoDataFrame:
        """Probable target-class plots as polygons in the grid CRS (``plots.geoparquet``)."""
        import geopandas as gpd

        return gpd.read_parquet(io.BytesIO(self._file(PLOTS_FILE)))

    @property
    def assessment(self) -> Assessment | None:
        """The accuracy assessment, or ``None`` before :func:`estimator.assess`."""
        return Assessment(_read_json(self._location, ASSESSMENT_FILE)) if self._location.exists(ASSESSMENT_FILE) else None

    @property
    def comparison(self) -> Comparison | None:
        """The claims comparison, or ``None`` before :func:`estimator.compare` wrote one here."""
        return Comparison(_read_json(self._location, COMPARISON_FILE)) if self._location.exists(COMPARISON_FILE) else None

    @property
    def quicklook(self) -> bytes:
        """The quicklook PNG (class map with region outlines)."""
        return self._file(QUICKLOOK_FILE)

    def plot(self, ax: Axes | None = None) -> Axes:
        """Draw the quicklook (class map with region outlines) on a matplotlib Axes.

        Parameters
        ----------
        ax
            Axes to draw on (default: a new figure's).

        Returns
        -------
        matplotlib.axes.Axes
        """
        import matplotlib.image as mpimg
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 7))
        ax.imshow(mpimg.imread(io.BytesIO(self.quicklook), format="png"))
        ax.set_axis_off()
        if self.synthetic:
            ax.set_title(SYNTHETIC_BANNER, color="#b71c1c", fontsize=9)
        return ax

    def _repr_html_(self) -> str:
        banner = f'<p style="color:#b71c1c"><strong>{SYNTHETIC_BANNER}</strong></p>' if self.synthetic else ""
        m = self.manifest
        head = (
            f"<p>Run <code>{html.escape(str(self.run_dir))}</code>: period {html.escape(m.period)}, model "
            f"<code>{html.escape(m.model_id)}</code>, {html.escape(self.target_class)} per region</p>"
        )
        png = base64.b64encode(self.quicklook).decode("ascii")
        est = self.estimates
        table = est.loc[est["class"] == self.target_class, [c for c in _SHOWN if c in est.columns]]
        table = table.map(_cell)  # one format for every number; no interval (None) shows as empty
        return (
            f"<div>{banner}{head}<img alt=\"class map\" width=\"420\" src=\"data:image/png;base64,{png}\"/>"
            f"{table.to_html(index=False)}</div>"
        )

    def _file(self, rel: str) -> bytes:
        try:
            return self._location.read_bytes(rel)
        except FileNotFoundError:
            raise EstimatorError(f"{self.run_dir} has no {rel}; rerun the job with this version to write it") from None

    def local_dir(self) -> RunDir:
        """The run as a local :class:`RunDir` (sampling and assessment stream its class map)."""
        return open_run(self.run_dir)


def _cell(v: Any) -> Any:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    return f"{v:,.2f}" if isinstance(v, float) else v


def read_run(path_or_url: OutputLike | Run) -> Run:
    """Open a finished run directory (local path or fsspec URL) as a :class:`Run`.

    This is :func:`estimator.open_run`; see there.
    """
    if isinstance(path_or_url, Run):
        return path_or_url
    target = as_output(path_or_url)
    location = RunLocation.open(target)
    manifest = _read_json(location, MANIFEST_FILE)
    estimates = _read_json(location, ESTIMATES_FILE)
    _same_run(location, ESTIMATES_FILE, estimates.get(RUN_ID_TAG), manifest)
    if not isinstance(estimates.get("records"), list):
        raise RunDirError(f"{location}: {ESTIMATES_FILE} has no list of records; rerun the job")
    return Run(target, estimates["records"], Manifest(manifest))


def _open_map(location: RunLocation, rel: str) -> xr.DataArray:
    import rioxarray
    import xarray as xr

    if location.local is not None:
        if not (location.local / rel).is_file():
            raise EstimatorError(f"{location} has no {rel}; rerun the job")
        da = rioxarray.open_rasterio(location.local / rel, chunks=_MAP_CHUNKS)
    else:
        if not location.exists(rel):
            raise EstimatorError(f"{location} has no {rel}; rerun the job")
        # rasterio reads through the fsspec file system (byte ranges), not a local copy.
        da = rioxarray.open_rasterio(location.path(rel), chunks=_MAP_CHUNKS, opener=location.fs)
    if not isinstance(da, xr.DataArray):
        raise EstimatorError(f"{location}: {rel} is not a single-band map; rerun the job")
    return da.squeeze("band", drop=True)


def _open_maps(location: RunLocation, manifest: Manifest) -> xr.Dataset:
    import xarray as xr

    target = manifest.target_class
    if is_strata_manifest(manifest):
        return _open_strata_maps(location, manifest)
    cls = _open_map(location, CLASS_MAP)
    labels = ["unobserved", *manifest.classes]
    if json.loads(cls.attrs.get("classes", "[]")) != labels:
        raise EstimatorError(f"{location}: {CLASS_MAP} does not match the run's manifest (classes differ); rerun the job")
    _same_run(location, CLASS_MAP, cls.attrs.get(RUN_ID_TAG), manifest)
    cls.attrs.update(flag_values=list(range(len(labels))), flag_meanings=" ".join(labels), long_name="map class")
    prob = _open_map(location, probability_map(target))
    prob.attrs.update(long_name=f"{target} probability", units="1")
    count = _open_map(location, COUNT_MAP)
    count.attrs.update(long_name="clear observations in the period", units="1")
    ds = xr.Dataset({"class": cls, f"{target}_probability": prob, "valid_obs_count": count})
    ds.attrs.update(
        crs=manifest.crs, classes=labels, target_class=target, period=manifest.period,
        model_id=manifest.model_id, synthetic=manifest.synthetic, run_dir=str(location),
    )
    if manifest.synthetic:
        ds.attrs["note"] = SYNTHETIC_BANNER
    return ds


def _open_strata_maps(location: RunLocation, manifest: Manifest) -> xr.Dataset:
    """A cold-start run (``model: none``): label-free strata in place of the class map."""
    import xarray as xr

    strata = _open_map(location, STRATA_MAP)
    labels = json.loads(strata.attrs.get("strata", "[]"))
    if not labels:
        raise EstimatorError(f"{location}: {STRATA_MAP} names no strata; rerun the job")
    strata.attrs.update(flag_values=list(range(len(labels))), flag_meanings=" ".join(labels), long_name="label-free strata")
    count = _open_map(location, COUNT_MAP)
    count.attrs.update(long_name="clear observations in the period", units="1")
    ds = xr.Dataset({"strata": strata, "valid_obs_count": count})
    ds.attrs.update(
        crs=manifest.crs, strata=labels, target_class=manifest.target_class, period=manifest.period,
        model_id=manifest.model_id, synthetic=manifest.synthetic, run_dir=str(location),
    )
    if manifest.synthetic:
        ds.attrs["note"] = SYNTHETIC_BANNER
    return ds
