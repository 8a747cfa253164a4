"""The model artifact contract: skops with trusted types only, features checked by name and order."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
import skops.io as sio
from sklearn.ensemble import RandomForestClassifier
from sklearn.preprocessing import FunctionTransformer

from estimator.errors import ModelFileError, ModelSchemaError
from estimator.stages.classify import class_codes, predict_block
from estimator.stages.features import FEATURE_NAMES
from estimator.stages.model import load_model
from training.fit import save_model

CLASSES = ("coca", "forest", "pasture")


@pytest.fixture
def tiny_model(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, len(FEATURE_NAMES))).astype(np.float32)
    y = np.array(CLASSES * 30)
    X[y == "coca", 0] += 3
    est = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(X, y)
    card = {"features": list(FEATURE_NAMES), "classes": list(est.classes_), "target_class": "coca"}
    return save_model(tmp_path / "m", est, card), X


def test_saved_model_loads_with_card_and_id(tiny_model):
    model, _ = tiny_model
    assert model.classes == tuple(sorted(CLASSES))
    assert len(model.model_id) == 12 and model.sha256.startswith(model.model_id)
    assert model.estimator.n_jobs == 1


def test_feature_mismatch_is_refused(tiny_model):
    model, _ = tiny_model
    card = json.loads((model.path / "card.json").read_text())
    card["features"] = list(reversed(card["features"]))
    (model.path / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelSchemaError, match="different feature set"):
        load_model(model.path)
    card["features"] = card["features"][1:]
    (model.path / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelSchemaError):
        load_model(model.path)


def test_target_class_must_be_a_model_class(tiny_model):
    model, _ = tiny_model
    card = json.loads((model.path / "card.json").read_text())
    card["target_class"] = "cacao"
    (model.path / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelSchemaError, match="cacao"):
        load_model(model.path)


def test_malicious_skops_file_is_refused(tmp_path):
    d = tmp_path / "evil"
    d.mkdir()
    sio.dump(FunctionTransformer(func=os.system), d / "model.skops")
    (d / "card.json").write_text(json.dumps({"features": list(FEATURE_NAMES), "classes": [], "target_class": "coca"}))
    with pytest.raises(ModelFileError, match="does not trust"):
        load_model(d)


def test_pickle_or_garbage_is_not_a_skops_file(tmp_path):
    d = tmp_path / "junk"
    d.mkdir()
    (d / "model.skops").write_bytes(b"\x80\x04garbage-pickle")
    (d / "card.json").write_text("{}")
    with pytest.raises(ModelFileError, match="not a skops file"):
        load_model(d)
    with zipfile.ZipFile(d / "model.skops", "w") as z:
        z.writestr("schema.json", "{not json")
    with pytest.raises(ModelFileError):
        load_model(d)


def test_missing_model_directory(tmp_path):
    with pytest.raises(ModelFileError, match="not a model directory"):
        load_model(tmp_path)


def test_predict_block_skips_unobserved_pixels(tiny_model):
    model, X = tiny_model
    feats = X[:12].T.reshape(len(FEATURE_NAMES), 3, 4).copy()
    feats[:, 0, 0] = np.nan
    probs = predict_block(feats, model.estimator, len(model.classes))
    assert probs.shape == (3, 3, 4)
    assert np.isnan(probs[:, 0, 0]).all()
    np.testing.assert_allclose(np.nansum(probs, axis=0)[np.isfinite(probs[0])], 1.0, rtol=1e-5)
    codes = class_codes(probs)
    assert codes[0, 0] == 0 and (codes[np.isfinite(probs[0])] >= 1).all()
    want = model.estimator.predict(feats.reshape(len(FEATURE_NAMES), -1).T[1:])
    got = np.array(model.classes)[codes.ravel()[1:] - 1]
    assert (got == want).all()


def _crafted(schema_root: dict) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("schema.json", json.dumps({**schema_root, "protocol": 2, "_skops_version": "0.16.0"}))
    return buf.getvalue()


def _node(cls: str, module: str, loader: str, i: int, **extra) -> dict:
    return {"__class__": cls, "__module__": module, "__loader__": loader, "__id__": i, **extra}


def _empty_dict(i: int) -> dict:
    return _node("dict", "builtins", "DictNode", i, content={}, key_types=_node("list", "builtins", "ListNode", i + 1, content=[]))


@pytest.mark.parametrize(
    ("name", "schema"),
    [
        # an object whose class is os.system, with the command a loader would pass it
        ("os.system", _node("system", "os", "ObjectNode", 1, content=_empty_dict(2))),
        # builtins.eval named as a type inside a harmless-looking dict
        ("builtins.eval", {**_empty_dict(3), "content": {"f": _node("eval", "builtins", "TypeNode", 5)},
                           "key_types": _node("list", "builtins", "ListNode", 6, content=[
                               _node("str", "builtins", "JsonNode", 7, content='"str"', is_json=True)])}),
    ],
)
def test_crafted_skops_file_is_refused_unexecuted(tmp_path, monkeypatch, name, schema):
    d = tmp_path / "crafted"
    d.mkdir()
    (d / "model.skops").write_bytes(_crafted(schema))
    (d / "card.json").write_text(json.dumps({"features": list(FEATURE_NAMES), "classes": ["coca"], "target_class": "coca"}))
    called = []
    monkeypatch.setattr(os, "system", lambda *a: called.append(a))
    monkeypatch.setattr(sio, "load", lambda *a, **k: called.append(a))
    with pytest.raises(ModelFileError, match=f"does not trust.*{name}") as e:
        load_model(d)
    assert "\n" not in str(e.value) and not called
