"""Where a run is written: a local directory or any fsspec URL (``memory://``, ``s3://``, ...).

The one place that knows how to write to the output location atomically:

- a local directory: a temporary file beside the target, renamed into place;
- an object store: one PUT per file (an object becomes visible whole or not at all).

Remote file systems need their fsspec package (``s3fs`` for ``s3://``: the ``[s3]`` extra).
Credentials and endpoints never go in the job file (the manifest records the config): they
come from the store's standard sources, e.g. ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/
``AWS_ENDPOINT_URL`` or an AWS profile for S3, or fsspec's own configuration
(``FSSPEC_S3_ENDPOINT_URL=...``, ``~/.config/fsspec/*.json``).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import fsspec
from fsspec.registry import known_implementations

from estimator.errors import ConfigError

__all__ = ["OutputLike", "RunLocation", "as_output", "atomic_path", "check_writable", "is_url", "write_json", "write_text"]

#: A job's ``output``: a local directory, or the URL of a remote one.
OutputLike = Path | str

#: Extras of this package that install a protocol's file system.
_EXTRAS = {"s3": "s3", "s3a": "s3"}
# Two letters at least, so that a Windows drive (C:/...) is a path, not a protocol.
_URL = re.compile(r"^(?P<proto>[A-Za-z][A-Za-z0-9+.\-]+):/+")


@contextmanager
def atomic_path(dst: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dst``; rename it onto ``dst`` if the block succeeds."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".part", dir=dst.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_writable(dst: Path, what: str = "output", *, directory: bool = False) -> None:
    """Fail in one line, before any work, when ``dst`` could not be written: its nearest
    existing ancestor is not a writable directory, or it exists as the wrong kind of entry.
    Nothing is created."""
    dst = Path(dst).expanduser().absolute()
    if dst.exists() and dst.is_dir() != directory:
        kind = "a directory" if dst.is_dir() else "a file"
        raise ConfigError(f"{what} {dst} is {kind}; give a {'directory' if directory else 'file'} path")
    parent = dst if directory and dst.exists() else dst.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"cannot write {what} {dst}: {parent} is a file, not a directory; choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {what} {dst}: no permission to write in {parent}; choose another path")


def write_text(dst: Path, text: str) -> None:
    """Write ``text`` to ``dst`` atomically (see :func:`atomic_path`)."""
    with atomic_path(dst) as tmp:
        tmp.write_text(text)


def write_json(dst: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``dst`` atomically."""
    write_text(dst, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def is_url(value: str | Path) -> bool:
    """Whether ``value`` names a location by URL (``s3://...``), not a local path.

    A ``Path`` made from a URL has lost a slash (``s3:/bucket``); it still counts.
    """
    return _URL.match(str(value)) is not None


def as_output(value: str | Path, base: Path | None = None) -> OutputLike:
    """Normalise a job's ``output``: a local path (``file://`` URLs too), resolved against
    ``base`` when given, or a remote URL (trailing slashes dropped)."""
    s = str(value)
    m = _URL.match(s)
    if m is None:
        p = Path(s).expanduser()
        return p if base is None or p.is_absolute() else (base / p).resolve()
    proto = m["proto"].lower()
    rest = s[m.end() :].rstrip("/")
    if proto in ("file", "local"):
        return Path("/" + rest)
    return f"{proto}://{rest}"


class RunLocation:
    """A run's output location, opened once per job (see :func:`RunLocation.open`)."""

    def __init__(self, output: OutputLike):
        self.output = output
        if isinstance(output, Path):
            self.local: Path | None = output
            self.fs = fsspec.filesystem("file")
            self.root = str(output)
        else:
            self.local = None
            self.fs, self.root = fsspec.core.url_to_fs(output)
            self.root = self.root.rstrip("/")

    @classmethod
    def open(cls, output: OutputLike) -> RunLocation:
        """Open ``output``; a :class:`ConfigError` saying what to install when its protocol's
        package is missing, or when the protocol is unknown."""
        if isinstance(output, Path):
            return cls(output)
        proto = output.split("://", 1)[0]
        extra = _EXTRAS.get(proto)
        try:
            fsspec.get_filesystem_class(proto)
        except ImportError:
            need = known_implementations.get(proto, {}).get("class", "").split(".")[0] or "its fsspec package"
            how = f"pip install 'coca-estimator[{extra}]'" if extra else f"pip install {need}"
            raise ConfigError(f"output {output}: writing to {proto}:// needs {need}, which is not installed; {how}") from None
        except ValueError:
            raise ConfigError(
                f"output {output}: unknown protocol '{proto}://'; use a local path or an fsspec URL (s3://, memory://, ...)"
            ) from None
        try:
            return cls(output)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"output {output}: {e}") from None

    def __str__(self) -> str:
        return str(self.output)

    def path(self, rel: str) -> str:
        """The location-relative path ``rel`` as a path of the location's file system."""
        return f"{self.root}/{rel}" if rel else self.root

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write a file atomically: readers see the old content, or none, or all of ``data``."""
        if self.local is not None:
            with atomic_path(self.local / rel) as tmp:
                tmp.write_bytes(data)
        else:
            self.fs.pipe_file(self.path(rel), data)

    def read_bytes(self, rel: str) -> bytes:
        """The content of ``rel``; ``FileNotFoundError`` when it does not exist."""
        data: bytes = self.fs.cat_file(self.path(rel))
        return data

    def exists(self, rel: str) -> bool:
        return bool(self.fs.exists(self.path(rel)))

    def subdirs(self, rel: str) -> list[str]:
        """Names of the directories (key prefixes) directly under ``rel``."""
        try:
            entries = self.fs.ls(self.path(rel), detail=True)
        except FileNotFoundError:
            return []
        return [e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e["type"] == "directory"]

    def remove(self, rel: str) -> None:
        """Remove ``rel`` and everything under it; nothing when it does not exist."""
        with suppress(FileNotFoundError):
            self.fs.rm(self.path(rel), recursive=True)

    def names(self) -> list[str]:
        """Names of the entries directly under the location; empty when it does not exist."""
        try:
            entries = self.fs.ls(self.root, detail=False)
        except FileNotFoundError:
            return []
        return sorted(str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def move(self, rel: str, dst_rel: str) -> None:
        """Move ``rel`` to ``dst_rel`` inside the location."""
        if self.local is not None:
            (self.local / dst_rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.local / rel, self.local / dst_rel)
        else:
            self.fs.mv(self.path(rel), self.path(dst_rel))

    @contextmanager
    def staged(self, last: str, before_commit: Callable[[], None] | None = None) -> Iterator[Path]:
        """A local directory to write a set of outputs in, committed as a set when the block
        succeeds (COG writers also need local files).

        For a local run it is a hidden directory inside the run directory (same file
        system, so each file is renamed into place); for a remote one a temporary directory,
        uploaded. The commit removes the old ``last`` file first, calls ``before_commit``,
        puts every other file in place and ``last`` after them: ``last`` present means the
        files beside it belong to it. A failure before the commit leaves the old set as it
        was; an interruption during it leaves no ``last``, which readers refuse.
        """
        if self.local is not None:
            self.local.mkdir(parents=True, exist_ok=True)
            tmp_ctx: Any = tempfile.TemporaryDirectory(prefix=".staging-", dir=self.local)
        else:
            tmp_ctx = tempfile.TemporaryDirectory(prefix="estimator-stage-")
        with tmp_ctx as tmp:
            stage = Path(tmp)
            yield stage
            if self.exists(last):
                self.fs.rm(self.path(last))
            if before_commit is not None:
                before_commit()
            files = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
            for rel in sorted(files, key=lambda f: f == last):
                if self.local is not None:
                    (self.local / rel).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(stage / rel, self.local / rel)
                else:
                    self.fs.put_file(str(stage / rel), self.path(rel))
