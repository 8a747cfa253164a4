"""The run directory's layout: its file names, the estimates' writer and every reader.

Sampling, assessment, comparison and active learning work on a run after the fact; this
module is the one place that knows the run layout (``estimates.json``/``.csv``,
``manifest.json``, ``assessment.json``, ``maps/class.tif``), and streams the class map block by
block so memory stays bounded whatever the region size.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import fnmatch
import hashlib
import io
import json
import re
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.errors import RasterioIOError
from rasterio.windows import Window
from scipy import ndimage

from estimator.config import RegionsConfig
from estimator.errors import EstimatorError
from estimator.grid import pixel_area_m2
from estimator.location import RunLocation, as_output, check_writable, is_url, write_json, write_text
from estimator.regions.geometry import Region, rasterize_regions
from estimator.regions.job import job_regions
from estimator.stages.estimate import RECORD_FIELDS, SCHEMA_VERSION

__all__ = [
    "ASSESSMENT_FILE",
    "DERIVED_FILES",
    "ESTIMATES_FILE",
    "MANIFEST_FILE",
    "RETIRED_DIR",
    "RUN_ID_TAG",
    "RUN_MARKER",
    "Block",
    "RunDir",
    "RunDirError",
    "check_run_location",
    "is_job_key",
    "mark_run_location",
    "new_run_id",
    "open_run",
    "read_estimates",
    "read_manifest",
    "retire_derived",
    "write_estimates",
]

#: File names of a run directory.
ESTIMATES_FILE = "estimates.json"
MANIFEST_FILE = "manifest.json"
ASSESSMENT_FILE = "assessment.json"
CLASS_MAP = "maps/class.tif"

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
    """A run directory written by ``estimator run``."""

    path: Path
    manifest: dict[str, Any]
    regions: tuple[Region, ...]
    classes: tuple[str, ...]
    grid: GeoBox
    class_map: Path

    @property
    def synthetic(self) -> bool:
        return bool(self.manifest.get("synthetic"))

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


def write_estimates(run_dir: Path, records: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> None:
    """``estimates.json`` (schema version, metadata, records) and ``estimates.csv``."""
    write_json(run_dir / ESTIMATES_FILE, {"schema_version": SCHEMA_VERSION, **meta, "records": list(records)})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(RECORD_FIELDS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in records:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in RECORD_FIELDS})
    write_text(run_dir / "estimates.csv", buf.getvalue())


def _read_json(path: Path, name: str) -> dict[str, Any]:
    try:
        data = json.loads((path / name).read_text())
    except FileNotFoundError:
        raise EstimatorError(f"{path} is not a finished run directory ({name} missing); run `estimator run` first") from None
    except json.JSONDecodeError as e:
        raise EstimatorError(f"{path}: {name} is not valid JSON ({e.msg}); rerun the job") from None
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


def _same_run(path: Path, name: str, run_id: Any, manifest: Mapping[str, Any]) -> None:
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
    mpath, cmap = path / MANIFEST_FILE, path / CLASS_MAP
    if not mpath.is_file() or not cmap.is_file():
        raise EstimatorError(f"{path} is not a finished run directory (needs manifest.json and maps/class.tif); run `estimator run` first")
    manifest = _read_json(path, MANIFEST_FILE)
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
            classes = tuple(json.loads(tags["classes"])[1:])
    except (RasterioIOError, KeyError, ValueError):
        raise RunDirError(f"{cmap} is not a readable class map of this run; rerun the job") from None
    if list(classes) != model_classes:
        raise EstimatorError(f"{cmap} does not match the run's manifest (classes differ); rerun the job")
    _same_run(path, CLASS_MAP, tags.get(RUN_ID_TAG), manifest)
    read_estimates(path)
    return RunDir(path, manifest, regions, classes, grid, cmap)
