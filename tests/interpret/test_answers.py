"""The answer sheet: slots, validation, and two writers at once (real processes, one file)."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

from estimator.interpret.answers import AnswerStore
from estimator.interpret.errors import InterpreterSlotError, SampleFileError
from estimator.location import write_json

CLASSES = ["coca", "forest", "pasture"]


def _sample(path: Path, n: int) -> Path:
    feats = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-74.0 + i * 1e-4, -12.5]},
         "properties": {"sample_id": f"s{i:05d}", "row": i, "col": 0, "map_class": "forest",
                        "interpreter_1": None, "interpreter_2": None, "consensus": None}}
        for i in range(n)
    ]
    write_json(path, {"type": "FeatureCollection", "features": feats, "sampling": {"classes": CLASSES, "n": n}})
    return path


def _answer_all(path: str, name: str, label: str, n: int) -> None:
    store = AnswerStore(Path(path))
    store.claim(name)
    field = store.slot_of(name)
    assert field is not None
    for i in range(n):
        store.answer(f"s{i:05d}", field, label, name=name, confidence="high", note=f"{name} {i}")


def test_two_interpreters_at_once_lose_no_answer(tmp_path):
    path = _sample(tmp_path / "s.geojson", 60)
    AnswerStore(path).claim("ana")
    AnswerStore(path).claim("luis")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_answer_all, args=(str(path), who, lab, 60)) for who, lab in (("ana", "coca"), ("luis", "forest"))]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    data = json.loads(path.read_text())
    assert data["sampling"]["interpreters"] == {"interpreter_1": "ana", "interpreter_2": "luis"}
    for i, f in enumerate(data["features"]):
        p = f["properties"]
        assert (p["interpreter_1"], p["interpreter_2"]) == ("coca", "forest"), p
        assert p["interpretation"]["interpreter_1"]["note"] == f"ana {i}"
        assert p["interpretation"]["interpreter_2"]["note"] == f"luis {i}"
    assert not list(tmp_path.glob(".s.geojson.*.part"))  # no temporary file left behind


def test_slots_and_validation(tmp_path):
    path = _sample(tmp_path / "s.geojson", 3)
    store = AnswerStore(path)
    assert store.claim("ana") == "interpreter_1"
    assert store.claim("luis") == "interpreter_2"
    assert store.claim("ana") == "interpreter_1"  # reopening keeps the slot
    with pytest.raises(InterpreterSlotError, match="both interpreter slots are taken"):
        store.claim("third")
    with pytest.raises(InterpreterSlotError, match="held by 'ana'"):
        store.answer("s00000", "interpreter_1", "coca", name="luis")
    with pytest.raises(InterpreterSlotError, match="not a class"):
        store.answer("s00000", "interpreter_1", "cocoa", name="ana")
    with pytest.raises(InterpreterSlotError, match="confidence"):
        store.answer("s00000", "interpreter_1", "coca", name="ana", confidence="sure")
    with pytest.raises(InterpreterSlotError, match="needs both interpreters"):
        store.answer("s00000", "consensus", "coca", name="lead")
    store.answer("s00000", "interpreter_1", "coca", name="ana")
    store.answer("s00000", "interpreter_2", "forest", name="luis")
    props = store.answer("s00000", "consensus", "coca", name="lead", note="plot visible in March")
    assert props["consensus"] == "coca" and props["interpretation"]["consensus"]["name"] == "lead"


def test_not_a_sample(tmp_path):
    (tmp_path / "x.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(SampleFileError, match="estimator sample"):
        AnswerStore(tmp_path / "x.geojson")
    with pytest.raises(SampleFileError, match="not found"):
        AnswerStore(tmp_path / "missing.geojson")


def test_cli_bad_sample_is_one_line(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "estimator", "interpret", str(tmp_path / "none.geojson"), "--run", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"error: sample file not found: {tmp_path / 'none.geojson'}; draw one with `estimator sample`"]
