"""A fault-injecting reverse proxy for tests and demos: flaky HTTP on loopback, on purpose.

Public STAC APIs and object stores answer 429 and 503, stall, and drop connections; a job
must survive that without losing or inventing pixels. This module puts a real proxy
process between a client (pystac-client, GDAL ``/vsicurl``) and a loopback server from
:mod:`estimator.testing.servers`, and breaks chosen requests in a planned, reproducible way.

Interface
---------
``FaultRule`` / ``FaultPlan``
    Which requests to break (path regex, method, which of the matching requests) and how:
    ``status`` (answer e.g. 503 or 429, optionally with ``Retry-After``), ``stall`` (wait,
    then answer normally), ``drop`` (close the connection without an answer) or
    ``truncate`` (send the headers and part of the body, then close). A plan is JSON.
``start_fault_proxy(upstream, plan)``
    Starts ``python -m estimator.testing.faults --upstream URL --port 0 --plan JSON --log FILE``
    and returns a :class:`FaultProxy` (a :class:`~estimator.testing.servers.Server`) whose
    ``requests()`` reads the proxy's request log (one JSON object per request).
``serve_world_with_faults(world_root, workdir, plan)``
    A world directory served as :func:`estimator.testing.servers.serve_world` does, with the proxy
    between the STAC items' asset hrefs and the COG file server.

Everything not broken is forwarded unchanged (method, body, ``Range`` -> 206), except that
absolute URLs of the upstream inside JSON bodies are rewritten to the proxy, so STAC links
(``next`` pages, ``search``) lead back through it. The proxy speaks HTTP/1.1 itself, on
asyncio streams rather than an ASGI server: ASGI cannot close a connection without sending
a response, which is one of the faults to inject.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import http.client
import json
import logging
import os
import re
import socket
import struct
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from estimator.testing.servers import (
    LOOPBACK,
    ServedWorld,
    Server,
    ServerStartError,
    log_tail,
    read_world_stac,
    relocate,
    spawn_server,
    start_file_server,
    start_stac_server,
    track,
    wait_until_ready,
)

__all__ = [
    "FaultPlan",
    "FaultProxy",
    "FaultRule",
    "main",
    "serve_world_with_faults",
    "start_fault_proxy",
]

log = logging.getLogger(__name__)

FaultKind = Literal["status", "stall", "drop", "truncate"]
_KINDS = ("status", "stall", "drop", "truncate")
_READY = "Fault proxy ready at"
# Hop-by-hop headers belong to one connection, not to the message (RFC 9110, 7.6.1).
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)
_MAX_HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class FaultRule:
    """One kind of fault, applied to some of the requests that match it.

    Every rule counts the requests that match its ``match`` and ``method``; the first rule
    (in plan order) whose count selects the request breaks it.
    """

    kind: FaultKind
    """``status``, ``stall``, ``drop`` or ``truncate``."""
    match: str = ""
    """Regular expression searched in the request path (with query); empty matches all."""
    method: str | None = None
    """Only requests with this method (e.g. ``POST``); any method when None."""
    status: int = 503
    """``status``: the HTTP status to answer with."""
    retry_after: int | None = None
    """``status``: seconds to send as ``Retry-After``; no header when None."""
    seconds: float = 0.0
    """``stall``: how long to wait before forwarding the request."""
    fraction: float = 0.5
    """``truncate``: share of the body sent before the connection is closed."""
    reset: bool = False
    """``drop``/``truncate``: close with a TCP reset (RST) instead of an orderly FIN."""
    skip: int = 0
    """Let this many matching requests through before the rule starts counting."""
    first: int | None = None
    """Break the first N counted requests, then none; see also ``every``."""
    every: int | None = None
    """Break every k-th counted request (k, 2k, ...). Neither set: break all of them."""
    per_path: bool = False
    """Count each path separately (e.g. "the first request of every file")."""

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"fault kind {self.kind!r} is not one of {', '.join(_KINDS)}")
        if self.first is not None and self.every is not None:
            raise ValueError("a fault rule takes `first` or `every`, not both")
        if (self.first is not None and self.first < 1) or (self.every is not None and self.every < 1) or self.skip < 0:
            raise ValueError("`first` and `every` must be >= 1 and `skip` >= 0")
        if not 100 <= self.status <= 599:
            raise ValueError(f"status {self.status} is not an HTTP status code")
        if not 0.0 <= self.fraction < 1.0:
            raise ValueError(f"fraction {self.fraction} must be in [0, 1)")
        if self.seconds < 0 or (self.retry_after is not None and self.retry_after < 0):
            raise ValueError("`seconds` and `retry_after` must be >= 0")
        re.compile(self.match)

    def applies(self, n: int) -> bool:
        """Whether the ``n``-th matching request (1-based) is broken."""
        k = n - self.skip
        if k < 1:
            return False
        if self.first is not None:
            return k <= self.first
        if self.every is not None:
            return k % self.every == 0
        return True


@dataclass(frozen=True)
class FaultPlan:
    """The faults a proxy injects: rules tried in order, the first that selects wins."""

    rules: tuple[FaultRule, ...] = ()
    """The rules; an empty plan forwards everything."""

    def to_json(self) -> str:
        """The plan as JSON (the proxy's ``--plan`` argument)."""
        return json.dumps({"rules": [asdict(r) for r in self.rules]}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> FaultPlan:
        """Parse :meth:`to_json` output; ``ValueError`` on anything else."""
        try:
            data = json.loads(text)
            rules = tuple(FaultRule(**r) for r in data["rules"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f'not a fault plan ({e}); expected {{"rules": [{{"kind": ...}}, ...]}}') from None
        return cls(rules)


@dataclass
class FaultProxy(Server):
    """A running fault proxy: a :class:`~estimator.testing.servers.Server` with a request log."""

    upstream: str = ""
    """The server requests are forwarded to."""
    request_log: Path = field(default_factory=Path)
    """JSON lines, one per request: ``time``, ``method``, ``path``, ``range``,
    ``body_sha256``, ``rule`` (index in the plan), ``fault`` (kind), ``status`` and ``bytes``
    (body bytes sent). A dropped request has no status; a stalled one is logged when the
    stall starts, also without status, because its client may time out before it ends."""

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        """Logged requests so far, oldest first; only paths matching ``path`` if given."""
        if not self.request_log.is_file():
            return []
        lines = self.request_log.read_text(encoding="utf-8").splitlines()
        # The last line may be half written while the proxy runs.
        records = []
        for line in lines:
            with contextlib.suppress(json.JSONDecodeError):
                records.append(json.loads(line))
        if path is not None:
            records = [r for r in records if re.search(path, r["path"])]
        return records


def start_fault_proxy(
    upstream: str,
    plan: FaultPlan,
    *,
    port: int | None = None,
    ready_timeout: float = 20.0,
    workdir: Path | None = None,
) -> FaultProxy:
    """Start a fault-injecting proxy in front of ``upstream``.

    Parameters
    ----------
    upstream
        Base URL to forward to, e.g. a :class:`~estimator.testing.servers.Server` ``url``.
    plan
        Faults to inject.
    port
        Port on 127.0.0.1; the proxy binds a free one when None (no race with other
        processes: it reports the port it got).
    ready_timeout
        Seconds to wait for the proxy to listen.
    workdir
        Directory for the server log and request log; a new temporary one when None.

    Returns
    -------
    FaultProxy
        The running proxy; use as a context manager or call ``stop()``.

    Raises
    ------
    ServerStartError
        If the proxy exits or does not listen within ``ready_timeout``.
    """
    parts = urlsplit(upstream)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"upstream {upstream!r} must be an http:// URL")
    workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="estimator-faults-"))
    workdir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="faults-", suffix=".log", dir=workdir)
    os.close(fd)
    log_path = Path(name)
    request_log = log_path.with_suffix(".requests.jsonl")
    cmd = [
        sys.executable,
        "-m",
        "estimator.testing.faults",
        "--upstream",
        upstream.rstrip("/"),
        "--port",
        str(port or 0),
        "--plan",
        plan.to_json(),
        "--log",
        str(request_log),
    ]
    process = spawn_server(cmd, log_path)
    proxy = FaultProxy(
        name="faults",
        url="",
        pid=process.pid,
        log_path=log_path,
        _process=process,
        upstream=upstream.rstrip("/"),
        request_log=request_log,
    )
    track(proxy)

    def ready(log_text: str) -> bool:
        found = re.search(rf"{_READY} (http://\S+)", log_text)
        if found:
            proxy.url = found.group(1)
        return found is not None

    try:
        failure = wait_until_ready(process, log_path, ready, ready_timeout, "not listening")
    except BaseException:
        proxy.stop()
        raise
    if failure is not None:
        proxy.stop()
        tail = log_tail(log_path)
        raise ServerStartError(f"fault proxy failed to start: {failure}; log {log_path}:\n{tail}", log_tail=tail)
    log.info("fault proxy %s -> %s (pid %d)", proxy.url, proxy.upstream, process.pid)
    return proxy


def serve_world_with_faults(world_root: Path, workdir: Path, plan: FaultPlan) -> tuple[ServedWorld, FaultProxy]:
    """Serve a world directory with a fault proxy in front of its COG file server.

    Like :func:`estimator.testing.servers.serve_world`, except that asset hrefs point at the proxy,
    so every pixel read goes through ``plan``; the STAC API itself is not faulted.

    Parameters
    ----------
    world_root
        The world directory (``stac/collection.json``, ``stac/items.ndjson``, COGs).
    workdir
        Directory for the STAC files and the server and request logs.
    plan
        Faults to inject into COG requests.

    Returns
    -------
    tuple of ServedWorld and FaultProxy
        The world (its ``files_url`` is the proxy; stopping it stops all three servers)
        and the proxy, for its request log.
    """
    world_root = Path(world_root).resolve()
    workdir = Path(workdir).resolve()
    collection, items = read_world_stac(world_root / "stac")
    servers: list[Server] = []
    try:
        servers.append(start_file_server(world_root, log_path=workdir / "files-server.log"))
        proxy = start_fault_proxy(servers[0].url, plan, workdir=workdir)
        servers.append(proxy)
        servers.append(
            start_stac_server(relocate(collection, proxy.url), (relocate(i, proxy.url) for i in items), workdir)
        )
    except BaseException:
        for server in reversed(servers):
            server.stop()
        raise
    world = ServedWorld(stac_url=servers[2].url, files_url=proxy.url, collection_id=collection["id"], servers=servers)
    return world, proxy


# --------------------------------------------------------------------------- the proxy process


@dataclass
class _Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name), None)

    @property
    def keep_alive(self) -> bool:
        connection = (self.header("connection") or "").lower()
        return "close" not in connection and (self.version == "HTTP/1.1" or "keep-alive" in connection)


@dataclass
class _Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


class _Upstream:
    """The upstream connection of one client connection, kept alive like the client's."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def send(
        self, method: str, target: str, body: bytes, headers: dict[str, str]
    ) -> tuple[http.client.HTTPResponse, bytes]:
        try:
            return self._send(method, target, body, headers)
        except (http.client.RemoteDisconnected, ConnectionError):
            # The server closed the kept-alive connection meanwhile: retry once on a new
            # one, as any HTTP client would.
            self.close()
            return self._send(method, target, body, headers)

    def _send(
        self, method: str, target: str, body: bytes, headers: dict[str, str]
    ) -> tuple[http.client.HTTPResponse, bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        self.conn.request(method, target, body=body or None, headers=headers)
        resp = self.conn.getresponse()
        return resp, resp.read()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class _Proxy:
    """Per-process state: the plan, its counters, the upstream and the request log."""

    def __init__(self, upstream: str, plan: FaultPlan, log_file: Path, own_url: str) -> None:
        parts = urlsplit(upstream)
        self.host = parts.hostname or LOOPBACK
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.upstream = upstream.encode()
        self.own_url = own_url
        self.plan = plan
        self.counts: list[defaultdict[str, int]] = [defaultdict(int) for _ in plan.rules]
        self.patterns = [re.compile(r.match) for r in plan.rules]
        self.log = log_file.open("a", encoding="utf-8")
        # Upstream calls are blocking (http.client); stalls are not, so many threads are
        # only needed when many requests are in flight at once.
        self.pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="upstream")

    def select(self, req: _Request) -> tuple[int, FaultRule] | None:
        """Count ``req`` against every rule it matches; return the first that breaks it."""
        chosen = None
        for i, (rule, pattern) in enumerate(zip(self.plan.rules, self.patterns, strict=True)):
            if rule.method is not None and rule.method.upper() != req.method:
                continue
            if not pattern.search(req.target):
                continue
            key = req.target if rule.per_path else ""
            self.counts[i][key] += 1
            if chosen is None and rule.applies(self.counts[i][key]):
                chosen = (i, rule)
        return chosen

    def record(self, req: _Request, chosen: tuple[int, FaultRule] | None, status: int | None, n_bytes: int) -> None:
        entry = {
            "time": round(time.time(), 3),
            "method": req.method,
            "path": req.target,
            "range": req.header("range"),
            "body_sha256": hashlib.sha256(req.body).hexdigest()[:16] if req.body else None,
            "rule": chosen[0] if chosen else None,
            "fault": chosen[1].kind if chosen else None,
            "status": status,
            "bytes": n_bytes,
        }
        self.log.write(json.dumps(entry) + "\n")
        self.log.flush()

    async def forward(self, req: _Request, upstream: _Upstream) -> _Response:
        """Send ``req`` upstream on this client connection's upstream connection."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, self._forward_blocking, req, upstream)

    def _forward_blocking(self, req: _Request, upstream: _Upstream) -> _Response:
        headers = {
            k: v
            for k, v in req.headers
            if k.lower() not in _HOP_BY_HOP and k.lower() not in ("host", "accept-encoding")
        }
        # Bodies must stay byte-comparable and rewritable: no compression.
        headers["Accept-Encoding"] = "identity"
        resp, body = upstream.send(req.method, self.prefix + req.target, req.body, headers)
        out = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP]
        if "json" in (resp.getheader("content-type") or "") and self.upstream in body:
            host = req.header("host")
            own = f"http://{host}" if host else self.own_url
            body = body.replace(self.upstream, own.encode())
            out = [(k, v) for k, v in out if k.lower() != "content-length"]
            out.append(("Content-Length", str(len(body))))
        return _Response(resp.status, resp.reason, out, body)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        # Small Range answers must not wait for a delayed ACK (see estimator.testing.servers).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        upstream = _Upstream(self.host, self.port)
        try:
            while True:
                req = await _read_request(reader)
                if req is None or not await self.respond(req, writer, upstream):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            log.debug("connection ended: %s", e)
        finally:
            upstream.close()
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def respond(self, req: _Request, writer: asyncio.StreamWriter, upstream: _Upstream) -> bool:
        """Answer one request, faulted or not; whether the connection stays open."""
        chosen = self.select(req)
        rule = chosen[1] if chosen else None
        if rule is not None and rule.kind == "drop":
            self.record(req, chosen, None, 0)
            await _abort(writer, rule.reset)
            return False
        if rule is not None and rule.kind == "status":
            body = json.dumps({"code": rule.status, "description": "fault injected by estimator.testing.faults"}).encode()
            headers = [("Content-Type", "application/json")]
            if rule.retry_after is not None:
                headers.append(("Retry-After", str(rule.retry_after)))
            reason = http.client.responses.get(rule.status, "Fault")
            self.record(req, chosen, rule.status, len(body))
            await _write(writer, _Response(rule.status, reason, headers, body), req, len(body))
            return req.keep_alive
        if rule is not None and rule.kind == "stall":
            # Logged now: a client that times out may be long gone when the stall ends.
            self.record(req, chosen, None, 0)
            await asyncio.sleep(rule.seconds)
        try:
            resp = await self.forward(req, upstream)
        except OSError as e:
            body = f"upstream {self.upstream.decode()} failed: {e}".encode()
            self.record(req, None, 502, len(body))
            await _write(writer, _Response(502, "Bad Gateway", [("Content-Type", "text/plain")], body), req, len(body))
            return False
        if rule is not None and rule.kind == "truncate":
            n = int(len(resp.body) * rule.fraction)
            self.record(req, chosen, resp.status, n)
            await _write(writer, resp, req, n)
            await _abort(writer, rule.reset)
            return False
        if rule is None or rule.kind != "stall":
            self.record(req, chosen, resp.status, 0 if req.method == "HEAD" else len(resp.body))
        await _write(writer, resp, req, len(resp.body))
        return req.keep_alive


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    """The next request on a connection; None once the client closed it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial.strip():
            raise
        return None
    if len(head) > _MAX_HEAD_BYTES:
        raise ValueError("request head too large")
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    req = _Request(method.upper(), target, version.strip(), headers, b"")
    if (req.header("transfer-encoding") or "").lower() not in ("", "identity"):
        raise ValueError("chunked request bodies are not supported")
    length = int(req.header("content-length") or 0)
    if length:
        req.body = await reader.readexactly(length)
    return req


async def _write(writer: asyncio.StreamWriter, resp: _Response, req: _Request, n_body: int) -> None:
    """Write ``resp`` with the first ``n_body`` bytes of its body."""
    headers = [(k, v) for k, v in resp.headers if k.lower() not in _HOP_BY_HOP]
    if not any(k.lower() == "content-length" for k, _ in headers):
        headers.append(("Content-Length", str(len(resp.body))))
    headers.append(("Connection", "keep-alive" if req.keep_alive else "close"))
    head = f"HTTP/1.1 {resp.status} {resp.reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    writer.write(head.encode("latin-1"))
    if req.method != "HEAD":
        writer.write(resp.body[:n_body])
    await writer.drain()


async def _abort(writer: asyncio.StreamWriter, reset: bool) -> None:
    if reset:
        # abort() discards what asyncio has not handed to the kernel yet.
        while writer.transport.get_write_buffer_size():
            await asyncio.sleep(0.001)
        # SO_LINGER with a zero timeout turns close() into a TCP reset.
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
    else:
        writer.close()


async def _serve(sock: socket.socket, proxy: _Proxy) -> None:
    server = await asyncio.start_server(proxy.handle, sock=sock, limit=_MAX_HEAD_BYTES)
    async with server:
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m estimator.testing.faults --upstream URL --port P --plan JSON``.

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
        prog="python -m estimator.testing.faults",
        description="A reverse proxy that injects HTTP faults (tests and demos only).",
        epilog=(
            "example: python -m estimator.testing.faults --upstream http://127.0.0.1:8123 --port 8200 "
            """--plan '{"rules": [{"kind": "status", "status": 503, "match": "\\\\.tif$", "first": 1, "per_path": true}]}'"""
        ),
    )
    parser.add_argument("--upstream", required=True, help="base URL to forward to (http://host:port)")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (default)")
    parser.add_argument("--host", default=LOOPBACK, help=f"address to bind (default {LOOPBACK})")
    parser.add_argument("--plan", default='{"rules": []}', help="fault plan as JSON (FaultPlan.to_json)")
    parser.add_argument("--log", type=Path, help="request log, one JSON object per line")
    args = parser.parse_args(argv)
    try:
        plan = FaultPlan.from_json(args.plan)
    except ValueError as e:
        parser.error(f"--plan: {e}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # proto must be IPPROTO_TCP for asyncio to treat it as TCP (see estimator.testing.servers).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
        sock.listen(128)
    except OSError as e:
        log.error("cannot listen on %s:%d: %s", args.host, args.port, e.strerror or e)
        sock.close()
        return 1
    own_url = f"http://{args.host}:{sock.getsockname()[1]}"
    proxy = _Proxy(args.upstream, plan, args.log or Path(os.devnull), own_url)
    # The ready line carries the bound port: a caller asking for port 0 learns it here.
    log.info("%s %s (upstream %s, %d rule(s))", _READY, own_url, args.upstream, len(plan.rules))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(sock, proxy))
    return 0


if __name__ == "__main__":
    sys.exit(main())
