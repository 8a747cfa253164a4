"""Job and training configuration: YAML files validated once into frozen typed objects.

Unknown keys are errors (a typo must not silently fall back to a default). Relative paths
are resolved against the directory of the file that names them, so a job file can travel
with its regions and model.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from estimator.bands import SCL_CLEAR_DEFAULT
from estimator.errors import ConfigError, EstimatorError
from estimator.location import as_output
from estimator.modelrefs import REGISTRY_ENV, is_registry_ref, resolve_model_ref

__all__ = [
    "NO_MODEL",
    "ClassifyConfig",
    "ClusterConfig",
    "CoverageConfig",
    "GridConfig",
    "JobConfig",
    "MaskConfig",
    "PeriodConfig",
    "RegionsConfig",
    "StacConfig",
    "StrataConfig",
    "TrainConfig",
    "apply_overrides",
    "check_grid_crs",
    "config_hash",
    "load_job",
    "load_train",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StacConfig(_Strict):
    url: str = Field(description="Root URL of the STAC API, e.g. https://earth-search.aws.element84.com/v1")
    collection: str = Field("sentinel-2-l2a", description="Collection id to search.")
    provider: str = Field(
        "earth-search",
        description="How the catalog names assets and encodes offsets (configs/providers.yaml): "
        "earth-search, earth-search-v0, planetary-computer, cdse, local.",
    )
    max_cloud_cover: float = Field(
        80.0, ge=0, le=100, description="Drop scenes whose eo:cloud_cover exceeds this (percent)."
    )
    page_size: int = Field(100, ge=1, le=10000, description="Items per page requested from the API.")
    timeout_s: float = Field(30.0, gt=0, description="HTTP timeout for STAC requests, seconds.")


class PeriodConfig(_Strict):
    start: dt.date = Field(description="First day of the period (inclusive).")
    end: dt.date = Field(description="Last day of the period (inclusive).")

    @model_validator(mode="after")
    def _ordered(self) -> PeriodConfig:
        if self.end < self.start:
            raise ValueError(f"period.end ({self.end}) is before period.start ({self.start})")
        return self

    @property
    def label(self) -> str:
        return f"{self.start.isoformat()}/{self.end.isoformat()}"


class RegionsConfig(_Strict):
    file: Path | None = Field(None, description="GeoJSON FeatureCollection of region polygons (lon/lat).")
    id_field: str = Field("region_id", description="Feature property holding the region id.")
    names: tuple[str, ...] | None = Field(
        None, description="Named regions instead of a file: loreto, vraem, ... or any Peruvian unit by name/ubigeo."
    )
    boundaries: Path | None = Field(
        None, description="Local directory of the INEI boundary files (default: $ESTIMATOR_BOUNDARIES or a checked download)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> RegionsConfig:
        if (self.file is None) == (not self.names):
            raise ValueError("give either regions.file or regions.names (one of them)")
        return self


class GridConfig(_Strict):
    resolution: float = Field(10.0, gt=0, description="Output pixel size in metres.")
    crs: str | None = Field(
        None, description="Output CRS, projected with axes in metres, e.g. EPSG:32718; default: UTM zone of the regions."
    )
    tile_size: int = Field(2048, ge=64, description="Output-grid tile edge in pixels (unit of work and checkpoint).")
    chunk_size: int = Field(1024, ge=64, description="Dask chunk edge in pixels within a tile.")

    @field_validator("crs")
    @classmethod
    def _projected_metres(cls, v: str | None) -> str | None:
        if v is None:
            return v
        return check_grid_crs(v)


def check_grid_crs(value: str) -> str:
    """``value`` if it names a projected CRS whose axes are in metres, else a ``ValueError``.

    The grid's resolution is read in CRS units and hectares come from pixel areas: a
    geographic CRS would read 10 as 10 degrees, and feet would be off by 10.8x.
    """
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        crs = CRS.from_user_input(value)
    except CRSError:
        raise ValueError(f"unknown CRS '{value}'; give an EPSG code such as EPSG:32718 (UTM 18S)") from None
    units = {a.unit_name for a in crs.axis_info}
    if not crs.is_projected or units != {"metre"}:
        kind = "geographic (degrees)" if crs.is_geographic else f"in {', '.join(sorted(units)) or 'unknown units'}"
        raise ValueError(
            f"CRS '{value}' is {kind}; the grid needs a projected CRS in metres, e.g. the UTM zone EPSG:32718, "
            "or leave grid.crs out to use the regions' UTM zone"
        )
    return value


class MaskConfig(_Strict):
    clear_scl: tuple[int, ...] = Field(
        tuple(int(c) for c in SCL_CLEAR_DEFAULT),
        description="SCL codes that count as a clear observation.",
    )

    @field_validator("clear_scl")
    @classmethod
    def _codes(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        bad = [c for c in v if not 0 <= c <= 11]
        if bad or not v:
            raise ValueError(f"SCL codes must be 0..11 and not empty, got {list(v)}")
        return v


class ClassifyConfig(_Strict):
    min_patch_ha: float = Field(
        0.1,
        ge=0,
        description="Minimum mapping unit: class patches smaller than this (4-connected) take the class "
        "of their surroundings (rasterio sieve). Mixed pixels on field borders otherwise form thin "
        "false-coca slivers. 0 disables.",
    )
    cascade: bool = Field(
        True,
        description="Use the model's first stage (when it has one): pixels it finds surely not the target "
        "class skip the full model. Its target-class recall is measured at training (model card).",
    )


class CoverageConfig(_Strict):
    unobserved: Literal["withhold", "extrapolate"] = Field(
        "withhold",
        description="What to say about the part of a region never observed clear: 'withhold' reports the "
        "observed part only; 'extrapolate' adds a whole-region figure with a widened interval.",
    )
    transfer_uncertainty: float = Field(
        0.5,
        ge=0,
        description="Relative uncertainty (1 sigma) assumed when transferring the observed part's "
        "density to the unobserved part; it widens the extrapolated interval.",
    )


class ClusterConfig(_Strict):
    address: str | None = Field(None, description="dask.distributed scheduler address; none = local threads.")
    connect: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="'module:function' returning a connected distributed.Client, for clusters whose "
        "credentials live in Python objects (dask-gateway, Coiled); overrides address.",
    )
    tiles_in_flight: int | None = Field(
        None,
        ge=1,
        description="Tiles whose pixels are computed at once on a cluster (default: one per worker, "
        "which measured faster and leaner than two). Locally one tile at a time (its chunks already use "
        "every core). In both cases as many tiles again finish in the client meanwhile.",
    )


#: ``model:`` value of a cold-start job: no trained model, label-free strata instead of a map.
NO_MODEL = "none"


class StrataConfig(_Strict):
    """Label-free strata of a cold-start job (``model: none``; docs/cold_start.md)."""

    clusters: int = Field(
        8, ge=2, le=40, description="Clusters of the temporal features (scikit-learn MiniBatchKMeans), one stratum each."
    )
    fit_pixels: int = Field(
        20000, ge=100, le=1_000_000, description="Clear pixels inside the regions drawn (seeded) to fit the clusters."
    )
    fit_tiles: int = Field(
        8, ge=1, description="Tiles (drawn at random, seeded) whose pixels the clusters are fitted on; the others are read once."
    )
    harvest_rule: bool = Field(
        True,
        description="Add a 'harvest' stratum of pixels with repeated harvest-like NDVI drops that are green between "
        "them (coca-like dynamics), taken out of the clusters so that a sample can reach them.",
    )
    seed: int = Field(0, description="Seed of the fitting subsample and of the clustering.")


class JobConfig(_Strict):
    """An estimation job (``python -m estimator run JOB.yaml``)."""

    stac: StacConfig
    period: PeriodConfig
    regions: RegionsConfig
    grid: GridConfig = GridConfig()
    mask: MaskConfig = MaskConfig()
    classify: ClassifyConfig = ClassifyConfig()
    coverage: CoverageConfig = CoverageConfig()
    model: Literal["none"] | Path = Field(
        description="Model directory written by `python -m training fit`, or `promoted` / `registry:<id>`: "
        "a model of the registry in $ESTIMATOR_MODELS, else `models/` beside the job file; or `none` for a "
        "cold start: label-free strata instead of a class map (docs/cold_start.md)."
    )
    classes: tuple[str, ...] | None = Field(
        None,
        description="With `model: none` only: the legend interpreters label the sample with (the model's classes "
        "otherwise); it must hold target_class.",
    )
    strata: StrataConfig | None = Field(None, description="With `model: none` only: how the label-free strata are made.")
    output: Path | str = Field(
        Path("runs/latest"),
        description="Run directory to write: a local path, or an fsspec URL (s3://bucket/prefix, memory://...); "
        "a remote store's credentials and endpoint come from its standard environment (AWS_* for S3).",
    )
    target_class: str = Field("coca", description="Class whose probability map is written.")
    cluster: ClusterConfig = ClusterConfig()

    @field_validator("output", mode="before")
    @classmethod
    def _output(cls, v: Any) -> Any:
        return as_output(v) if isinstance(v, (str, Path)) else v

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, v: Any) -> Any:
        return NO_MODEL if isinstance(v, str) and v.strip().lower() == NO_MODEL else v

    @model_validator(mode="after")
    def _cold_start(self) -> JobConfig:
        if not self.cold_start:
            misplaced = [k for k in ("classes", "strata") if getattr(self, k) is not None]
            if misplaced:
                raise ValueError(
                    f"{' and '.join(misplaced)} apply only to a cold start (model: none); the model's card gives "
                    "its classes: remove them, or set model: none"
                )
            return self
        if not self.classes:
            raise ValueError(
                "model: none needs `classes:`, the legend interpreters will label, e.g. [coca, forest, regrowth, "
                "other_crop, pasture, bare_soil, water, settlement]"
            )
        if len(set(self.classes)) < len(self.classes) or any(not c.strip() for c in self.classes):
            raise ValueError(f"classes {list(self.classes)} must be distinct, non-empty names")
        if self.target_class not in self.classes:
            raise ValueError(f"target_class '{self.target_class}' is not in classes {list(self.classes)}; add it")
        return self

    @property
    def cold_start(self) -> bool:
        """No trained model: the job writes label-free strata (``model: none``)."""
        return isinstance(self.model, str) and self.model == NO_MODEL

    @property
    def strata_config(self) -> StrataConfig:
        return self.strata or StrataConfig()


class FitConfig(_Strict):
    n_estimators: int = Field(80, ge=1, description="Trees in the random forest.")
    max_depth: int | None = Field(16, ge=1, description="Maximum tree depth (smaller trees predict faster).")
    min_samples_leaf: int = Field(2, ge=1)
    max_pixels_per_plot: int = Field(60, ge=1, description="Cap on training pixels drawn from one labeled plot.")
    cv_folds: int = Field(5, ge=2, description="Folds of plot-grouped cross-validation.")
    cascade_trees: int = Field(
        16, ge=0, description="Trees of the cascade's first stage (a small forest run on every pixel); 0: no cascade."
    )
    cascade_depth: int = Field(8, ge=1, description="Maximum depth of the first stage's trees.")
    cascade_margin: float = Field(
        0.5,
        gt=0,
        le=1,
        description="The first stage's threshold is this times the out-of-fold recall quantile: a safety "
        "margin for target plots unlike any labeled one (measured: recall 0.9963 -> 1.0, a third more pixels pass).",
    )
    cascade_min_leaf: int = Field(
        20,
        ge=1,
        description="Minimum pixels per leaf of the first stage: impure leaves keep a small target "
        "probability for unusual target pixels instead of a hard 0 (measured: recall 0.95 -> 0.996 out of fold).",
    )
    cascade_recall: float = Field(
        0.999,
        gt=0.5,
        lt=1.0,
        description="Share of target-class pixels (out of fold) the first stage's threshold keeps; the "
        "recall measured with cross-fitted thresholds is written to the model card.",
    )
    seed: int = Field(0, description="Random seed for sampling and fitting.")
    block_km: float = Field(
        2.0,
        gt=0,
        description="Side of the square spatial blocks of cross-validation: every plot goes to the block of its "
        "centre, and a block is never split between folds, so a test plot has no training neighbour within the "
        "block. Larger than the plots and the distance over which fields look alike; small enough to leave "
        "several blocks per fold (the demo world is 10 km wide: 2 km gives 25 blocks).",
    )
    cv: Literal["spatial", "plot"] = Field(
        "spatial",
        description="Folds of the card's headline metrics and of the calibration: spatial blocks, or plots only "
        "(optimistic: neighbouring plots share conditions). The card reports both.",
    )
    calibration: Literal["temperature", "isotonic", "sigmoid", "none"] = Field(
        "temperature",
        description="Calibrator of the forest's probabilities, fitted on out-of-fold probabilities "
        "(scikit-learn CalibratedClassifierCV, ensemble=False: one forest at prediction). Temperature scaling "
        "keeps every pixel's most probable class.",
    )


class TrainConfig(_Strict):
    """A training job (``python -m training fit TRAIN.yaml``)."""

    stac: StacConfig
    period: PeriodConfig
    grid: GridConfig = GridConfig()
    mask: MaskConfig = MaskConfig()
    fit: FitConfig = FitConfig()
    target_class: str = Field("coca", description="Name of the target class in the labels.")


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}; fix the syntax") from e
    except ValueError as e:
        # PyYAML builds dates while parsing: 2021-02-30 raises here, not in validation.
        raise ConfigError(f"{path}: {e} (a date that does not exist?); fix the value") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot be read ({type(e).__name__}); give a readable YAML file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys (stac:, period:, ...), got {type(data).__name__}")
    return data


def _format_validation(path: Path, err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    kind = first["type"]
    if kind == "missing":
        msg = f"required key '{key}' is missing"
    elif kind == "extra_forbidden":
        msg = f"unknown key '{key}' (check the spelling; see the README for accepted keys)"
    elif not first["loc"]:  # a rule across keys (e.g. model: none needs classes)
        msg = first["msg"].removeprefix("Value error, ")
    else:
        msg = f"key '{key}': {first['msg'].removeprefix('Value error, ')}"
    more = f" (+{err.error_count() - 1} more problem(s))" if err.error_count() > 1 else ""
    return f"{path}: {msg}{more}"


def _resolve(base: Path, p: Path) -> Path:
    p = Path(p).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _resolve_model(base: Path, ref: Path) -> Path:
    """A model directory, or the directory a registry reference names (resolved now, so the
    run and its manifest name one concrete model even if another is promoted meanwhile)."""
    if not is_registry_ref(ref):
        return _resolve(base, ref)
    env = os.environ.get(REGISTRY_ENV)
    root = Path(env).expanduser().resolve() if env else base / "models"
    try:
        return resolve_model_ref(str(ref), root)
    except EstimatorError as e:
        raise ConfigError(f"model: {ref}: {e}") from None


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c = value`` in nested dicts, creating levels as needed."""
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: '{k}' is not a mapping")
    node[keys[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML scalars)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got '{item}'")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"--set {key}: '{raw}' is not a valid YAML value; quote it") from None
        except ValueError as e:
            raise ConfigError(f"--set {key}: '{raw}': {e}; fix the value") from None
        set_dotted(data, key.strip(), value)
    return data


def load_job(path: Path | str, overrides: list[str] | None = None) -> JobConfig:
    """Read and validate a job file; raise :class:`ConfigError` with a one-line message."""
    path = Path(path)
    data = apply_overrides(_read_yaml(path), overrides or [])
    try:
        job = JobConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation(path, e)) from None
    base = path.resolve().parent
    return job.model_copy(
        update={
            "model": job.model if isinstance(job.model, str) else _resolve_model(base, job.model),
            "output": as_output(job.output, base),
            "regions": job.regions.model_copy(
                update={
                    "file": None if job.regions.file is None else _resolve(base, job.regions.file),
                    "boundaries": None if job.regions.boundaries is None else _resolve(base, job.regions.boundaries),
                }
            ),
        }
    )


def load_train(path: Path | str, overrides: list[str] | None = None) -> TrainConfig:
    """Read and validate a training file."""
    path = Path(path)
    data = apply_overrides(_read_yaml(path), overrides or [])
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation(path, e)) from None


def config_hash(cfg: BaseModel) -> str:
    """Stable sha256 of a config's content (paths included), for provenance and resume."""
    blob = json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()
