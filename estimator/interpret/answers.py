"""The sample file as the interpreters' answer sheet: every answer written as it is given.

The file is the one ``estimator sample`` wrote (``estimator.stats.sample``); the tool fills
the label fields it already has (``interpreter_1``, ``interpreter_2``, ``consensus``) and
keeps what a label alone cannot say in two more members:

- per unit, ``properties.interpretation.<field>`` = ``{name, confidence, note, at}``
  (who answered, how sure, why, when);
- in ``sampling.interpreters``, which person holds which slot (``interpreter_1`` or
  ``interpreter_2``), claimed by the first answer-giver under that name.

Writes. Each answer is one read-modify-write of the whole file under an exclusive lock
(``fcntl.flock`` on ``SAMPLE.geojson.lock`` beside it), written to a temporary file,
flushed to disk and renamed onto the sample (atomic on POSIX). Two interpreters working at
once (two servers on one file) each change only their own field of one unit per write, and
the lock serialises the writes, so neither overwrites the other; a reader always sees a
whole file, old or new. Killing a server between two answers loses nothing: the file was
complete before and after each rename. Rewriting a 1,500-unit file (0.7 MB) per answer
takes tens of milliseconds (BENCHMARKS.md), far below the time a person takes to answer.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from estimator.interpret.errors import InterpreterSlotError, SampleFileError
from estimator.stats.sample import LABEL_FIELDS

__all__ = ["CONFIDENCE", "SLOTS", "AnswerStore", "check_sample"]

#: The two independent interpreters' fields.
SLOTS: tuple[str, str] = (LABEL_FIELDS[0], LABEL_FIELDS[1])
CONSENSUS = LABEL_FIELDS[2]
#: How sure the interpreter is, in the words photo-interpretation protocols use.
CONFIDENCE: tuple[str, ...] = ("high", "medium", "low")
_NOTE_MAX = 2000


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _empty(v: Any) -> bool:
    return v is None or v == ""


def check_sample(data: Any, path: Path) -> None:
    """Raise :class:`SampleFileError` unless ``data`` is a sample written by ``estimator sample``."""
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection" or not isinstance(data.get("features"), list):
        raise SampleFileError(f"{path} is not a GeoJSON FeatureCollection; give the file written by `estimator sample`")
    sampling = data.get("sampling")
    if not isinstance(sampling, dict) or not sampling.get("classes"):
        raise SampleFileError(f"{path} has no 'sampling' member with classes; give the file written by `estimator sample`")
    ids = [(f.get("properties") or {}).get("sample_id") for f in data["features"]]
    if not ids or any(not isinstance(i, str) for i in ids):
        raise SampleFileError(f"{path}: every unit needs a sample_id; give the file written by `estimator sample`")
    if len(set(ids)) != len(ids):
        raise SampleFileError(f"{path}: sample_id values repeat; the file was edited, draw the sample again")


def _dumps(data: dict[str, Any]) -> str:
    """The sample as text: members indented, one feature per line. Readable and diffable,
    and fast: ``json.dumps`` with ``indent`` falls back to the pure-Python encoder (about
    100 ms for 1,500 units against about 10 ms for compact lines), paid on every answer."""
    head = json.dumps({k: v for k, v in data.items() if k != "features"}, indent=1)
    feats = ",\n".join(json.dumps(f) for f in data["features"])
    return f'{head[:-2]},\n "features": [\n{feats}\n ]\n}}\n'


class AnswerStore:
    """Read and answer a sample file; safe for several processes at once (see module doc)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        data = self.read()
        self.classes: tuple[str, ...] = tuple(data["sampling"]["classes"])

    def read(self) -> dict[str, Any]:
        """The whole file (no lock needed: writes replace the file atomically)."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            raise SampleFileError(f"sample file not found: {self.path}; draw one with `estimator sample`") from None
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise SampleFileError(f"{self.path} is not GeoJSON; give the file written by `estimator sample`") from None
        check_sample(data, self.path)
        return data

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _write(self, data: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(_dumps(data))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)  # the rename itself reaches the disk
        finally:
            os.close(dfd)

    def update(self, change: Callable[[dict[str, Any]], Any]) -> Any:
        """Read the file under the lock, apply ``change`` (which edits it in place and
        returns a result), write it back atomically; return the result."""
        with self._locked():
            data = self.read()
            result = change(data)
            self._write(data)
        return result

    def slot_of(self, name: str) -> str | None:
        """The slot ``name`` holds, if any."""
        held = self.read()["sampling"].get("interpreters") or {}
        return next((s for s in SLOTS if held.get(s) == name), None)

    def claim(self, name: str) -> str:
        """The slot of interpreter ``name``: the one already held, else the first free one.

        Raises
        ------
        InterpreterSlotError
            Both slots are held by other people.
        """
        if not name.strip():
            raise InterpreterSlotError("the interpreter's name is empty; pass --interpreter NAME")

        def change(data: dict[str, Any]) -> str:
            held = data["sampling"].setdefault("interpreters", {})
            for s in SLOTS:
                if held.get(s) == name:
                    return s
            for s in SLOTS:
                if not held.get(s):
                    held[s] = name
                    return s
            raise InterpreterSlotError(
                f"{self.path}: both interpreter slots are taken ({held[SLOTS[0]]}, {held[SLOTS[1]]}); "
                "open it as one of them with --interpreter NAME, or resolve disagreements with --review"
            )

        return str(self.update(change))

    def _feature(self, data: dict[str, Any], sample_id: str) -> dict[str, Any]:
        for f in data["features"]:
            if f["properties"].get("sample_id") == sample_id:
                return f
        raise InterpreterSlotError(f"{self.path}: no unit {sample_id!r}")

    def _check(self, label: str, confidence: str | None, note: str) -> None:
        if label not in self.classes:
            raise InterpreterSlotError(f"{label!r} is not a class of this sample ({', '.join(self.classes)})")
        if confidence is not None and confidence not in CONFIDENCE:
            raise InterpreterSlotError(f"confidence {confidence!r}: use one of {', '.join(CONFIDENCE)}")
        if len(note) > _NOTE_MAX:
            raise InterpreterSlotError(f"note longer than {_NOTE_MAX} characters")

    def answer(self, sample_id: str, field: str, label: str, *, name: str, confidence: str | None = None, note: str = "") -> dict[str, Any]:
        """Set ``field`` (a slot, or ``consensus``) of one unit; return its properties.

        A slot can only be answered by the person holding it (the slot was claimed by
        :meth:`claim`); the consensus by anyone, once both interpreters have answered.
        """
        if field not in LABEL_FIELDS:
            raise InterpreterSlotError(f"unknown field {field!r}; one of {', '.join(LABEL_FIELDS)}")
        self._check(label, confidence, note)

        def change(data: dict[str, Any]) -> dict[str, Any]:
            held = data["sampling"].get("interpreters") or {}
            if field in SLOTS and held.get(field) != name:
                raise InterpreterSlotError(f"{field} of {self.path.name} is held by {held.get(field)!r}, not {name!r}")
            props = self._feature(data, sample_id)["properties"]
            if field == CONSENSUS and any(_empty(props.get(s)) for s in SLOTS):
                raise InterpreterSlotError(f"unit {sample_id}: a consensus needs both interpreters' answers first")
            props[field] = label
            props.setdefault("interpretation", {})[field] = {
                "name": name, "confidence": confidence, "note": note, "at": _now(),
            }
            return dict(props)

        result: dict[str, Any] = self.update(change)
        return result
