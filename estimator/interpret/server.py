"""The interpretation page's server: the standard library's ``ThreadingHTTPServer`` on 127.0.0.1.

Not starlette/uvicorn: those come with the ``[demo]`` extra, and interpreting a real
sample must not need the demo's packages; the page's traffic (one person, a JSON answer
every few seconds, a few kB of PNG per unit) is far below what a threaded standard-library
server handles.

Routes (everything same-origin; the page loads nothing from elsewhere, and its
Content-Security-Policy forbids it):

- ``GET /``, ``/static/app.js``, ``/static/app.css``: the page;
- ``GET /api/state``: classes, the units with this person's own answers (the other
  interpreter's answers only where both answered, for the review), progress;
- ``GET /api/unit/<sample_id>``: dates, the NDVI/NBR series and the chip list of one unit;
- ``GET /api/chip/<sample_id>/<t>/<true|cir>.png``: one chip;
- ``POST /api/answer`` and ``POST /api/consensus``: save one answer (JSON body).

Safety on loopback: requests whose ``Host`` is not this server's loopback address are
refused (DNS rebinding), and a POST must carry the page's random token in a header (another
web site open in the same browser cannot read the token, nor send that header without a
CORS preflight this server never grants).
"""

from __future__ import annotations

import json
import logging
import queue
import re
import secrets
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from estimator.errors import EstimatorError
from estimator.interpret.answers import CONFIDENCE, CONSENSUS, SLOTS, AnswerStore
from estimator.interpret.errors import InterpretError, SampleFileError
from estimator.interpret.imagery import COMPOSITES, Scenes, map_values, open_scenes
from estimator.run.rundir import RunDir, open_run
from estimator.stats.reference import reference_label

__all__ = ["CSP", "InterpretApp", "make_server", "open_app"]

log = logging.getLogger(__name__)

#: Only this server's own scripts, styles, images and API; no inline script, no framing.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
_CHIP = re.compile(r"^/api/chip/([^/]+)/(\d+)/(\w+)\.png$")
_UNIT = re.compile(r"^/api/unit/([^/]+)$")
_PREFETCH = 3


def _static(name: str) -> bytes:
    return (resources.files("estimator.interpret") / "static" / name).read_bytes()


@dataclass
class InterpretApp:
    """One interpreter's (or the reviewer's) session on one sample file."""

    store: AnswerStore
    run: RunDir
    scenes: Scenes
    name: str
    slot: str | None
    """``interpreter_1``/``interpreter_2``; None for a reviewer who labels no units."""
    blind: bool = True
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    probability: dict[str, float | None] = field(default_factory=dict)
    pixels: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    """sample_id -> (position, row, col); fixed when the sample was drawn, so read once."""
    _order: list[tuple[int, int, int]] = field(default_factory=list)
    _prefetch: queue.Queue[tuple[int, int]] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        feats = self.store.read()["features"]
        self.pixels = {f["properties"]["sample_id"]: (i, int(f["properties"]["row"]), int(f["properties"]["col"]))
                       for i, f in enumerate(feats)}
        self._order = list(self.pixels.values())
        threading.Thread(target=self._prefetcher, name="interpret-prefetch", daemon=True).start()

    def _prefetcher(self) -> None:
        while True:
            row, col = self._prefetch.get()
            try:
                self.scenes.unit(row, col)
            except Exception as e:  # a failed prefetch is retried (and reported) when the unit is opened
                log.warning("prefetch of pixel (%d, %d) failed: %s", row, col, e)

    @property
    def synthetic(self) -> bool:
        return bool(self.run.synthetic or self.store.read()["sampling"].get("synthetic"))

    def state(self) -> dict[str, Any]:
        data = self.store.read()
        held = data["sampling"].get("interpreters") or {}
        units, review = [], []
        done = dict.fromkeys(SLOTS, 0)
        for i, f in enumerate(data["features"]):
            p = f["properties"]
            info = p.get("interpretation") or {}
            for s in SLOTS:
                done[s] += p.get(s) not in (None, "")
            u: dict[str, Any] = {"id": p["sample_id"], "index": i, "lon": f["geometry"]["coordinates"][0],
                                 "lat": f["geometry"]["coordinates"][1]}
            if self.slot is not None:
                mine = info.get(self.slot) or {}
                u.update(label=p.get(self.slot), confidence=mine.get("confidence"), note=mine.get("note", ""))
            if not self.blind:
                u.update(map_class=p.get("map_class"), probability=self.probability.get(p["sample_id"]))
            units.append(u)
            a, b = (p.get(s) for s in SLOTS)
            if a not in (None, "") and b not in (None, "") and a != b:
                review.append({
                    "id": p["sample_id"], "index": i,
                    "answers": [{"slot": s, "label": p.get(s), **{k: (info.get(s) or {}).get(k) for k in ("name", "confidence", "note")}}
                                for s in SLOTS],
                    "consensus": p.get(CONSENSUS), "consensus_by": (info.get(CONSENSUS) or {}).get("name"),
                    "consensus_note": (info.get(CONSENSUS) or {}).get("note", ""),
                })
        return {
            "sample": self.store.path.name, "name": self.name, "slot": self.slot, "interpreters": held,
            "mode": "label" if self.slot else "review", "blind": self.blind, "synthetic": self.synthetic,
            "classes": list(self.store.classes), "confidence": list(CONFIDENCE),
            "units": units, "review": review, "done": done, "total": len(units),
            "resolved": sum(reference_label(f["properties"]) is not None for f in data["features"]),
            "target_class": self.run.manifest["model"]["target_class"],
        }

    def _pixel(self, sample_id: str) -> tuple[int, int, int]:
        try:
            return self.pixels[sample_id]
        except KeyError:
            raise InterpretError(f"no unit {sample_id!r}") from None

    def unit(self, sample_id: str) -> dict[str, Any]:
        i, row, col = self._pixel(sample_id)
        img = self.scenes.unit(row, col)
        for _, r, c in self._order[i + 1 : i + 1 + _PREFETCH]:
            self._prefetch.put((r, c))
        return {"id": sample_id, **img.meta(float(self.run.grid.resolution.x))}

    def chip(self, sample_id: str, t: int, name: str) -> bytes:
        _, row, col = self._pixel(sample_id)
        png = self.scenes.unit(row, col).pngs.get((t, name))
        if png is None:
            raise InterpretError(f"no {name} chip of unit {sample_id} at date index {t}")
        return png

    def answer(self, body: dict[str, Any], consensus: bool) -> dict[str, Any]:
        field_name = CONSENSUS if consensus else self.slot
        if field_name is None:
            raise InterpretError("this session reviews only; open the sample with --interpreter NAME to label units")
        self.store.answer(
            str(body.get("id")), field_name, str(body.get("label")), name=self.name,
            confidence=body.get("confidence") if not consensus else None, note=str(body.get("note") or ""),
        )
        return self.state()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    def _host_ok(self) -> bool:
        port = self.server.server_address[1]
        return self.headers.get("Host") in {f"127.0.0.1:{port}", f"localhost:{port}"}

    def do_GET(self) -> None:
        if not self._host_ok():
            return self._error(HTTPStatus.FORBIDDEN, "wrong Host header")
        app = self.server.app
        path = self.path.split("?", 1)[0]
        try:
            if path in ("/", "/index.html"):
                html = _static("index.html").decode().replace("{{TOKEN}}", app.token)
                return self._send(200, html.encode(), "text/html; charset=utf-8")
            if path.startswith("/static/") and path[8:] in _STATIC:
                return self._send(200, _static(path[8:]), _STATIC[path[8:]])
            if path == "/favicon.ico":  # browsers ask for it; there is none
                return self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
            if path == "/api/state":
                return self._json(app.state())
            m = _UNIT.match(path)
            if m:
                return self._json(app.unit(m.group(1)))
            m = _CHIP.match(path)
            if m and m.group(3) in COMPOSITES:
                return self._send(200, app.chip(m.group(1), int(m.group(2)), m.group(3)), "image/png")
        except EstimatorError as e:
            return self._error(HTTPStatus.NOT_FOUND, str(e))
        return self._error(HTTPStatus.NOT_FOUND, f"no such page: {path}")

    def do_POST(self) -> None:
        if not self._host_ok():
            return self._error(HTTPStatus.FORBIDDEN, "wrong Host header")
        app = self.server.app
        if not secrets.compare_digest(self.headers.get("X-Interpret-Token", ""), app.token):
            return self._error(HTTPStatus.FORBIDDEN, "missing or wrong token; reload the page")
        if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
            return self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send JSON")
        try:
            n = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(min(n, 1 << 16)) or b"{}")
        except (ValueError, json.JSONDecodeError):
            return self._error(HTTPStatus.BAD_REQUEST, "the body is not JSON")
        if not isinstance(body, dict):
            return self._error(HTTPStatus.BAD_REQUEST, "the body is not a JSON object")
        try:
            if self.path == "/api/answer":
                return self._json(app.answer(body, consensus=False))
            if self.path == "/api/consensus":
                return self._json(app.answer(body, consensus=True))
        except EstimatorError as e:
            return self._error(HTTPStatus.CONFLICT, str(e))
        return self._error(HTTPStatus.NOT_FOUND, f"no such action: {self.path}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, app: InterpretApp, port: int) -> None:
        self.app = app
        super().__init__(("127.0.0.1", port), _Handler)


def make_server(app: InterpretApp, port: int = 0) -> ThreadingHTTPServer:
    """A server for ``app`` on 127.0.0.1 (``port`` 0: any free port); call ``serve_forever``."""
    try:
        return _Server(app, port)
    except OSError as e:
        raise InterpretError(f"cannot listen on 127.0.0.1:{port} ({e.strerror}); choose another --port") from None


def open_app(
    sample: Path,
    run_dir: Path,
    *,
    interpreter: str,
    review: bool = False,
    blind: bool = True,
    stac_url: str | None = None,
    progress: bool = False,
) -> InterpretApp:
    """Check the sample against the run, claim the interpreter's slot (unless ``review``),
    find the run's scenes; return the session."""
    store = AnswerStore(sample)
    run = open_run(run_dir)
    data = store.read()
    if data["sampling"].get("class_map_sha256") != run.class_map_sha256():
        raise SampleFileError(f"{sample} was drawn from another class map than {run.class_map}; give the run it was drawn from")
    feats = data["features"]
    lon = [f["geometry"]["coordinates"][0] for f in feats]
    lat = [f["geometry"]["coordinates"][1] for f in feats]
    pad = 0.01  # degrees, about 1 km: more than a chip's half-width
    scenes = open_scenes(run, (min(lon) - pad, min(lat) - pad, max(lon) + pad, max(lat) + pad), stac_url=stac_url, progress=progress)
    slot = None if review else store.claim(interpreter)
    days = sorted(scenes.plan.items[g[0]].solar_day.isoformat() for g in scenes.plan.groups)
    imagery = {"run": str(run.path), "period": run.manifest.get("period"), "first": days[0], "last": days[-1],
               "scenes": len(scenes.items)}
    if data["sampling"].get("imagery") != imagery:
        # What the answers were interpreted from (``training labels add`` dates the labels by it).
        store.update(lambda d: d["sampling"].__setitem__("imagery", imagery))
    probability: dict[str, float | None] = {}
    if not blind:
        props = [f["properties"] for f in feats]
        values = map_values(run, [p["row"] for p in props], [p["col"] for p in props])
        probability = {p["sample_id"]: v for p, v in zip(props, values, strict=True)}
    return InterpretApp(store, run, scenes, interpreter, slot, blind, probability=probability)
