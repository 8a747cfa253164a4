"""Loopback servers for the demo and integration tests: COGs over HTTP and a STAC API.

Real servers, run as subprocesses on 127.0.0.1 and stopped by PID, so the demo and the
tests exercise the same HTTP code paths (pystac-client paging, GDAL ``/vsicurl`` Range
reads) as a job against a public STAC API.

Interface
---------
``start_file_server(root)``
    A Range-capable static file server (uvicorn + starlette ``StaticFiles``), started as
    ``python -m estimator.testing.servers files --root DIR --port PORT``. ``python -m http.server``
    would not do: it ignores ``Range`` and GDAL would download whole COGs.
``start_stac_server(collection, items, workdir)``
    ``rustac serve`` with its in-memory backend. It pages correctly (POST ``next`` links
    carry the body) but silently returns nothing for ``query``/``filter`` and fails GET
    searches with comma lists; it advertises (pip package rustac 0.9.18, measured)::

        https://api.stacspec.org/v1.0.0/core
        https://api.stacspec.org/v1.0.0/ogcapi-features
        https://api.stacspec.org/v1.0.0/collections
        http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core
        http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson
        https://api.stacspec.org/v1.0.0/item-search

    i.e. no query, filter, sort or fields: the search stage reads ``conformsTo`` and
    filters cloud cover on the client.
``serve_world(world_root, workdir)``
    Both at once for a world directory (``stac/collection.json``, ``stac/items.ndjson``,
    hrefs relative to the world root), asset hrefs rewritten to the file server.

Every server is a :class:`Server` (context manager); ``stop()`` is idempotent. Servers
still running when the interpreter exits normally are stopped by an ``atexit`` hook.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib.util
import json
import logging
import os
import posixpath
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urljoin, urlsplit

from estimator.errors import EstimatorError

__all__ = [
    "ServedWorld",
    "Server",
    "ServerStartError",
    "free_port",
    "main",
    "read_world_stac",
    "relocate",
    "require_demo_extra",
    "serve_world",
    "start_file_server",
    "start_stac_server",
    "track",
]

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
_POLL_INTERVAL_S = 0.05
_PROBE_TIMEOUT_S = 0.5
_LOG_TAIL_LINES = 12
_PORT_ATTEMPTS = 3
# Ready markers are written only after the listening socket is bound, so seeing one proves
# the port belongs to our process and not to a server that grabbed it in between.
_FILES_READY = "Serving files from"
_STAC_READY = "Serving a STAC API at"  # rustac eprintln!s this right after bind()
# Links rustac generates itself (or that would point at static files instead of the API).
_SERVER_OWNED_RELS = frozenset({"self", "root", "parent", "collection", "child", "item", "items"})
# The package root, so ``python -m estimator.testing.servers`` works from any working directory.
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]
# A proxy from the environment must never see loopback probes.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

_RUNNING: dict[int, Server] = {}


class ServerStartError(EstimatorError, RuntimeError):
    """A loopback server did not come up.

    The message is one line naming the server, the reason and the command, followed by the
    last lines of the server's log.
    """

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail
        """The last lines of the server's log, as in the message."""


class _StopOnExit:
    """Context-manager support for anything with ``stop()``."""

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass
class Server(_StopOnExit):
    """A server subprocess started by this module."""

    name: str
    """Short human name, e.g. ``"files"`` or ``"stac"``."""
    url: str
    """Base URL, without trailing slash, e.g. ``http://127.0.0.1:8123``."""
    pid: int
    """Process id of the server (it has no child processes)."""
    log_path: Path
    """File receiving the server's stdout and stderr."""
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server: SIGTERM, wait up to ``timeout`` seconds, then SIGKILL.

        Idempotent; safe to call on a server that already exited.
        """
        if self._process is not None:
            _stop_child(self._process, self.name, timeout)
        else:
            _stop_pid(self.pid, self.name, timeout)
        _RUNNING.pop(self.pid, None)



@dataclass
class ServedWorld(_StopOnExit):
    """A world directory served on loopback: a STAC API plus a COG file server."""

    stac_url: str
    """STAC API landing page, e.g. for ``pystac_client.Client.open``."""
    files_url: str
    """Base URL of the file server; asset hrefs start with it."""
    collection_id: str
    """Id of the one collection the API holds."""
    servers: list[Server]
    """Started servers, in start order (files first)."""

    def stop(self) -> None:
        """Stop all servers, the STAC API first. Idempotent."""
        for server in reversed(self.servers):
            server.stop()



def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    Another process may take it before it is used; the ``start_*`` functions retry with a
    new port when that happens.

    Returns
    -------
    int
        The port number.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def start_file_server(
    root: Path,
    *,
    port: int | None = None,
    ready_timeout: float = 20.0,
    log_path: Path | None = None,
) -> Server:
    """Serve the files under ``root`` over HTTP with Range support.

    Parameters
    ----------
    root
        Directory to serve; ``root/a/b.tif`` is at ``<url>/a/b.tif``.
    port
        Port on 127.0.0.1; a free one is chosen when None.
    ready_timeout
        Seconds to wait for the server to answer.
    log_path
        Where the server's output goes; a new temporary file when None.

    Returns
    -------
    Server
        The running server; its ``url`` has no trailing slash.

    Raises
    ------
    NotADirectoryError
        If ``root`` is not a directory.
    ServerStartError
        If the server exits or does not answer within ``ready_timeout``.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"cannot serve files from {root}: it is not a directory")
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="estimator-files-", suffix=".log")
        os.close(fd)
        log_path = Path(name)

    spec = _ServerSpec(
        name="files",
        command=lambda p: [sys.executable, "-m", "estimator.testing.servers", "files", "--root", str(root), "--port", str(p)],
        log_path=log_path,
        ready_marker=_FILES_READY,
        # Any HTTP answer means the app is serving; "/" itself is a 404 for StaticFiles.
        status_ok=lambda status: status < 500,
    )
    return _start(spec, port, ready_timeout)


def start_stac_server(
    collection: dict[str, Any],
    items: Iterable[dict[str, Any]],
    workdir: Path,
    *,
    port: int | None = None,
    ready_timeout: float = 20.0,
) -> Server:
    """Serve one collection and its items as a STAC API with ``rustac serve``.

    Writes ``collection.json``, ``items.ndjson`` and ``stac-server.log`` into ``workdir``.
    rustac adds its own ``self``/``root``/``parent``/``collection`` links without removing
    any, so pass items without such links (see :func:`serve_world`).

    Parameters
    ----------
    collection
        A STAC Collection.
    items
        STAC Items whose ``collection`` is the collection's id.
    workdir
        Directory for the files above; created if missing.
    port
        Port on 127.0.0.1; a free one is chosen when None.
    ready_timeout
        Seconds to wait until ``GET /`` answers 200.

    Returns
    -------
    Server
        The running API; its ``url`` is the landing page, without trailing slash.

    Raises
    ------
    ServerStartError
        If rustac is not installed, exits (e.g. invalid collection, port taken) or does not
        answer within ``ready_timeout``.
    """
    rustac = _find_rustac()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    collection_path = workdir / "collection.json"
    items_path = workdir / "items.ndjson"
    collection_path.write_text(json.dumps(collection), encoding="utf-8")
    with items_path.open("w", encoding="utf-8") as fh:
        n_items = 0
        for item in items:
            fh.write(json.dumps(item, separators=(",", ":")) + "\n")
            n_items += 1
    log.debug("serving %d items of collection %r", n_items, collection.get("id"))

    spec = _ServerSpec(
        name="stac",
        command=lambda p: [str(rustac), "serve", "--addr", f"{LOOPBACK}:{p}", str(collection_path), str(items_path)],
        log_path=workdir / "stac-server.log",
        ready_marker=_STAC_READY,
        status_ok=lambda status: status == 200,
    )
    return _start(spec, port, ready_timeout)


def serve_world(world_root: Path, workdir: Path, *, stac_port: int | None = None) -> ServedWorld:
    """Serve a world directory: its COGs over HTTP and its items through a STAC API.

    Reads ``world_root/stac/collection.json`` and ``world_root/stac/items.ndjson`` (one
    Item per line), whose relative hrefs are relative to ``world_root``. Relative asset and
    link hrefs are rewritten to the file server; absolute ones are kept; structural links
    (self, root, parent, collection, ...) are dropped because the API generates its own.

    Parameters
    ----------
    world_root
        The world directory.
    workdir
        Directory for the rewritten STAC files and the server logs.
    stac_port
        Port of the STAC API (e.g. the one a job file names); a free one when None.

    Returns
    -------
    ServedWorld
        Both servers, running; use as a context manager or call ``stop()``.

    Raises
    ------
    FileNotFoundError
        If the STAC files are missing.
    ValueError
        If the files are not valid JSON, lack a collection id, hold items of another
        collection, or a relative href points outside ``world_root``.
    ServerStartError
        If a server fails to start; nothing is left running.
    """
    world_root = Path(world_root).resolve()
    workdir = Path(workdir).resolve()
    collection, items = read_world_stac(world_root / "stac")
    collection_id = collection["id"]
    # A dry run, so that a bad href is reported before any process is started.
    for stac_object in (collection, *items):
        relocate(stac_object, "http://" + LOOPBACK)

    files = start_file_server(world_root, log_path=workdir / "files-server.log")
    try:
        stac = start_stac_server(
            relocate(collection, files.url),
            (relocate(item, files.url) for item in items),
            workdir,
            port=stac_port,
        )
    except BaseException:
        files.stop()
        raise
    log.info("serving world %s: STAC API %s, files %s", world_root, stac.url, files.url)
    return ServedWorld(stac_url=stac.url, files_url=files.url, collection_id=collection_id, servers=[files, stac])


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m estimator.testing.servers files --root DIR --port PORT``.

    Parameters
    ----------
    argv
        Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        Exit code.
    """
    parser = argparse.ArgumentParser(
        prog="python -m estimator.testing.servers",
        description="Loopback servers for the demo and tests.",
        epilog="example: python -m estimator.testing.servers files --root demo_world --port 8123",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    files = commands.add_parser(
        "files", help="serve a directory over HTTP with Range support (COGs for GDAL)"
    )
    files.add_argument("--root", type=Path, required=True, help="directory to serve")
    files.add_argument("--port", type=int, required=True, help="TCP port; 0 picks a free one")
    files.add_argument("--host", default=LOOPBACK, help=f"address to bind (default {LOOPBACK})")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        parser.error(f"--root {args.root} is not a directory")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return _run_file_server(args.root.resolve(), args.host, args.port)


def _run_file_server(root: Path, host: str, port: int) -> int:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    # proto must be IPPROTO_TCP: asyncio sets TCP_NODELAY only on such connections, and
    # without it every small Range response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        # Bound here rather than by uvicorn so the ready line is written only once the port
        # is ours; uvicorn at log level "warning" announces nothing.
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc.strerror or exc)
        sock.close()
        return 1
    # Bare StaticFiles raises HTTPException for a missing file; inside Starlette that
    # becomes a plain 404 instead of a 500 with a traceback in the log.
    app = Starlette(routes=[Mount("/", app=StaticFiles(directory=root))])
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        # GDAL keeps connections alive; do not let them delay a SIGTERM for long.
        timeout_graceful_shutdown=1,
    )
    log.info("%s %s at http://%s:%d", _FILES_READY, root, host, sock.getsockname()[1])
    uvicorn.Server(config).run(sockets=[sock])
    return 0


@dataclass(frozen=True)
class _ServerSpec:
    """How to start one kind of server and tell that it is ready."""

    name: str
    command: Callable[[int], list[str]]
    """The command line for a given port."""
    log_path: Path
    ready_marker: str
    """Log text the server writes once its port is bound."""
    status_ok: Callable[[int], bool]
    """Whether the HTTP status of ``GET /`` means ready."""


def _start(spec: _ServerSpec, port: int | None, ready_timeout: float) -> Server:
    """Launch the server, on a new port if a chosen one was taken in the meantime."""
    attempts_left = 1 if port is not None else _PORT_ATTEMPTS
    while True:
        chosen = port if port is not None else free_port()
        try:
            return _launch(spec, chosen, ready_timeout)
        except ServerStartError as exc:
            attempts_left -= 1
            if port is not None or attempts_left == 0 or "address already in use" not in exc.log_tail.lower():
                raise
            log.info("%s server: port %d was taken meanwhile, retrying", spec.name, chosen)


def spawn_server(cmd: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start a server subprocess with its output in ``log_path`` and this package importable
    (``python -m estimator...`` servers run from a source checkout too)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_PARENT), env.get("PYTHONPATH")]))
    with log_path.open("wb") as log_file:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env)


def wait_until_ready(
    process: subprocess.Popen[bytes], log_path: Path, ready: Callable[[str], bool], timeout: float, what: str
) -> str | None:
    """Poll until ``ready(log text)`` holds; return why it did not (the process exited, or
    ``what`` did not happen within ``timeout`` seconds), or None once ready."""
    deadline = time.monotonic() + timeout
    while True:
        code = process.poll()
        if code is not None:
            return f"process exited with code {code}"
        if ready(log_path.read_text(encoding="utf-8", errors="replace")):
            return None
        if time.monotonic() >= deadline:
            return f"{what} within {timeout:g} s"
        time.sleep(_POLL_INTERVAL_S)


def _launch(spec: _ServerSpec, port: int, ready_timeout: float) -> Server:
    cmd = spec.command(port)
    url = f"http://{LOOPBACK}:{port}"
    started = time.monotonic()
    process = spawn_server(cmd, spec.log_path)
    server = Server(name=spec.name, url=url, pid=process.pid, log_path=spec.log_path, _process=process)
    track(server)

    def ready(log_text: str) -> bool:
        # Bound (the marker is logged) and answering.
        if spec.ready_marker not in log_text:
            return False
        status = _probe(url + "/")
        return status is not None and spec.status_ok(status)

    try:
        failure = wait_until_ready(process, spec.log_path, ready, ready_timeout, f"no answer from {url}/")
    except BaseException:
        server.stop()
        raise
    if failure is not None:
        server.stop()
        tail = log_tail(spec.log_path)
        raise ServerStartError(
            f"{spec.name} server failed to start: {failure}; command: {shlex.join(cmd)}; "
            f"log {spec.log_path}:\n{tail or '  (log is empty)'}",
            log_tail=tail,
        )
    elapsed = time.monotonic() - started
    log.info("%s server ready at %s (pid %d) in %.2f s", spec.name, url, process.pid, elapsed)
    return server


def _probe(url: str) -> int | None:
    try:
        with _OPENER.open(url, timeout=_PROBE_TIMEOUT_S) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the open connection
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return None


def log_tail(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("  " + line for line in lines[-_LOG_TAIL_LINES:] if line.strip())


def _stop_child(process: subprocess.Popen[bytes], name: str, timeout: float) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("%s server (pid %d) ignored SIGTERM for %g s; killing it", name, process.pid, timeout)
        process.kill()
        process.wait()


def _stop_pid(pid: int, name: str, timeout: float) -> None:
    # Only for a Server built by hand from a PID: it cannot be reaped, only waited out.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(_POLL_INTERVAL_S)
        log.warning("%s server (pid %d) ignored SIGTERM for %g s; killing it", name, pid, timeout)
        os.kill(pid, signal.SIGKILL)


def _find_rustac() -> Path:
    # Prefer the copy installed beside this interpreter: PATH may hold another version.
    here = Path(sys.executable).parent
    for candidate in (here / "rustac", here / "rustac.exe"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("rustac")
    if found is not None:
        return Path(found)
    raise ServerStartError(
        f"stac server cannot start: the `rustac` command is neither next to {sys.executable} "
        "nor on PATH; install it into this environment with `pip install rustac`"
    )


def read_world_stac(stac_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The collection and items of a world's ``stac/`` directory (hrefs still relative)."""
    collection_path = stac_dir / "collection.json"
    items_path = stac_dir / "items.ndjson"
    for path in (collection_path, items_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: is {stac_dir.parent} a world directory?")
    try:
        collection = json.loads(collection_path.read_text(encoding="utf-8"))
        lines = items_path.read_text(encoding="utf-8").splitlines()
        items = [json.loads(line) for line in lines if line.strip()]
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON in {stac_dir}: {exc}") from exc
    collection_id = collection.get("id") if isinstance(collection, dict) else None
    if not isinstance(collection_id, str):
        raise ValueError(f"{collection_path} has no collection id")
    strays = sorted({str(item.get("collection")) for item in items} - {collection_id})
    if strays:
        raise ValueError(
            f"{items_path} holds items of collection(s) {strays}, not only {collection_id!r}; "
            "set each item's `collection` to the collection id"
        )
    return collection, items


def relocate(stac_object: dict[str, Any], base_url: str) -> dict[str, Any]:
    """Copy of a STAC object with relative hrefs pointing at ``base_url``."""
    name = f"{stac_object.get('type', 'object')} {stac_object.get('id')!r}"
    relocated = dict(stac_object)
    if "assets" in stac_object:
        relocated["assets"] = {
            key: {**asset, "href": _absolute_href(asset["href"], base_url, name)}
            for key, asset in stac_object["assets"].items()
        }
    relocated["links"] = [
        {**link, "href": _absolute_href(link["href"], base_url, name)}
        for link in stac_object.get("links", [])
        if link.get("rel") not in _SERVER_OWNED_RELS
    ]
    return relocated


def _absolute_href(href: str, base_url: str, owner: str) -> str:
    parts = urlsplit(href)
    if parts.scheme or href.startswith("/"):
        return href
    path = posixpath.normpath(parts.path)
    if path == ".." or path.startswith("../"):
        raise ValueError(
            f"{owner} has href {href!r}, which points outside the world directory; "
            "hrefs must be relative to the world root and stay inside it"
        )
    # urljoin also keeps a query or fragment and treats the href as already URL-encoded.
    return urljoin(base_url + "/", href)


#: What the servers need beyond the estimator: the ``[demo]`` extra.
DEMO_EXTRA_MODULES = ("rustac", "starlette", "uvicorn")


def require_demo_extra() -> None:
    """Fail in one line, before any work, when the ``[demo]`` extra is not installed."""
    missing = [m for m in DEMO_EXTRA_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise ServerStartError(
            f"the demo and test servers need the [demo] extra (missing: {', '.join(missing)}); "
            "install it with: pip install -e '.[demo]'"
        )


def track(server: Server) -> None:
    """Stop ``server`` at interpreter exit if its owner has not (any server started here)."""
    _RUNNING[server.pid] = server


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_RUNNING.values()):
        log.warning("stopping %s server (pid %d) still running at exit", server.name, server.pid)
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
