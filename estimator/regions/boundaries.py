"""Boundary files: the INEI 2007 administrative GeoJSONs that named regions are built from.

The project stores no boundary data. :func:`boundaries_dir` returns a directory holding the
three files listed under ``boundaries.files`` in ``configs/regions.yaml`` (departments,
provinces, districts), each checked against its sha256:

- a local directory, when given (``--boundaries DIR``) or set in ``ESTIMATOR_BOUNDARIES``;
- otherwise a per-user cache, filled on first use by downloading the public files with
  pooch, so later runs (and offline machines once cached) reuse the checksummed copy.

Interface: :func:`boundaries_dir`, :func:`boundary_files`, :func:`read_config`,
:class:`BoundaryFile`, :class:`BoundaryFileError`, :class:`BoundaryDownloadError`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from estimator.errors import BoundaryDownloadError, BoundaryFileError, ConfigError

__all__ = [
    "DEFAULT_CONFIG",
    "ENV_VAR",
    "BoundaryDownloadError",
    "BoundaryFile",
    "BoundaryFileError",
    "boundaries_dir",
    "boundary_files",
    "read_config",
]

log = logging.getLogger(__name__)

#: Region definitions and the boundary file registry, in the repository's configs/.
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "regions.yaml"
#: Environment variable naming a local directory that holds the boundary files.
ENV_VAR = "ESTIMATOR_BOUNDARIES"
#: Administrative levels, in the order of their ubigeo length (2, 4, 6 digits).
LEVELS = ("department", "province", "district")
_FILE_KEYS = {"file", "url", "sha256", "id_field", "name_field"}
_HOW_TO = f"set --boundaries DIR or {ENV_VAR} to a directory holding the INEI 2007 files"


@dataclass(frozen=True)
class BoundaryFile:
    """One registered boundary file."""

    level: str
    """Administrative level: ``department``, ``province`` or ``district``."""
    file: str
    """File name, the same locally, in the cache and at the end of ``url``."""
    url: str
    """Public download address."""
    sha256: str
    """Expected sha256 of the file's bytes (hex)."""
    id_field: str
    """Property holding the ubigeo code of a unit."""
    name_field: str
    """Property holding the unit's name."""


def read_config(config: Path | None = None) -> dict[str, Any]:
    """Read ``configs/regions.yaml`` (or ``config``) as a mapping.

    Raises
    ------
    ConfigError
        The file is missing or is not a YAML mapping.
    """
    path = config or DEFAULT_CONFIG
    if not path.is_file():
        raise ConfigError(f"regions config not found: {path}; pass the path of a regions.yaml")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML ({e.__class__.__name__}); fix the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a YAML mapping with 'boundaries' and 'regions'")
    return data


def boundary_files(config: Path | None = None) -> dict[str, BoundaryFile]:
    """The registered boundary files by level, from the ``boundaries.files`` section.

    Raises
    ------
    ConfigError
        A level is missing or an entry lacks a key or has an unknown one.
    """
    path = config or DEFAULT_CONFIG
    files = (read_config(path).get("boundaries") or {}).get("files")
    if not isinstance(files, dict) or set(files) != set(LEVELS):
        raise ConfigError(f"{path}: boundaries.files must have exactly the entries {', '.join(LEVELS)}")
    out = {}
    for level in LEVELS:
        entry = files[level]
        if not isinstance(entry, dict) or set(entry) != _FILE_KEYS:
            got = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            raise ConfigError(f"{path}: boundaries.files.{level} must have the keys {sorted(_FILE_KEYS)}, has {got}")
        out[level] = BoundaryFile(level=level, **{k: str(v) for k, v in entry.items()})
    return out


def boundaries_dir(override: Path | None = None, *, config: Path | None = None) -> Path:
    """Directory holding the three boundary files, each verified against its sha256.

    Parameters
    ----------
    override
        Local directory to use. When None, ``ESTIMATOR_BOUNDARIES`` is used if set; else
        the files are downloaded once (pooch) into the user cache and read from there.
    config
        Regions config holding the file registry (default ``configs/regions.yaml``).

    Raises
    ------
    BoundaryFileError
        A local file is missing or its checksum differs from the registered one (a
        download with a different checksum also raises this).
    BoundaryDownloadError
        No local directory is set, a file is not cached and the download failed.
    """
    files = boundary_files(config)
    if override is not None:
        return _verified_local(Path(override), files, "--boundaries")
    env = os.environ.get(ENV_VAR)
    if env:
        return _verified_local(Path(env), files, ENV_VAR)
    return _cached(files)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verified_local(directory: Path, files: dict[str, BoundaryFile], origin: str) -> Path:
    if not directory.is_dir():
        raise BoundaryFileError(f"boundaries directory {directory} (from {origin}) does not exist; {_HOW_TO}")
    for f in files.values():
        path = directory / f.file
        if not path.is_file():
            raise BoundaryFileError(
                f"{f.file} not found in {directory} (from {origin}); download it from {f.url} into that directory"
            )
        actual = _sha256(path)
        if actual != f.sha256:
            raise BoundaryFileError(
                f"{path} has sha256 {actual}, expected {f.sha256}; replace it with an unmodified copy from {f.url}"
            )
    log.debug("boundary files verified in %s", directory)
    return directory


def _cached(files: dict[str, BoundaryFile]) -> Path:
    import pooch

    cache = Path(pooch.os_cache("coca-estimator")) / "boundaries"
    for f in files.values():
        try:
            # pooch reuses a cached copy whose hash matches and downloads otherwise.
            pooch.retrieve(f.url, known_hash=f"sha256:{f.sha256}", fname=f.file, path=cache, progressbar=False)
        except ValueError as e:
            # pooch reports a checksum mismatch of the downloaded bytes as ValueError.
            raise BoundaryFileError(
                f"downloaded {f.file} from {f.url} does not match sha256 {f.sha256} (upstream changed?): {e}; "
                f"{_HOW_TO} with verified copies"
            ) from None
        except OSError as e:
            # requests' errors (offline, DNS, HTTP status) derive from OSError.
            raise BoundaryDownloadError(
                f"cannot download {f.file} ({e.__class__.__name__}) and it is not cached in {cache}; {_HOW_TO}"
            ) from None
    return cache
