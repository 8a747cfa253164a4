"""Label store: batches appended with provenance and counts, rejected rows kept, and retraining
that extracts only the new batch (the acceptance of issue 7 on the demo world)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from estimator.config import load_train
from estimator.demo.runner import demo_train
from estimator.errors import LabelFileError
from estimator.stages.model import load_model
from training.extract import extract_cached, extract_samples
from training.fit import train
from training.store import LabelStore

from .test_labels import BAD, _feature, _write


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "training", *map(str, args)], capture_output=True, text=True, timeout=300)


def test_store_appends_with_provenance(tmp_path):
    store = LabelStore(tmp_path / "store")
    a = _write(tmp_path / "a.geojson", [_feature(i) for i in range(4)])
    assert store.add(store.read(a)) == "1"
    b = _write(tmp_path / "b.geojson", [_feature(i, interpreter="ana") for i in range(4, 7)])
    assert store.add(store.read(b)) == "2"
    (r1, r2) = store.batches()
    assert (r1.n_plots, r1.classes, r2.classes) == (4, {"coca": 2, "forest": 2}, {"coca": 1, "forest": 2})
    assert r2.counts["without_interpreter"] == 0 and r1.counts["without_interpreter"] == 4
    stored = json.loads((tmp_path / "store/batches/2/labels.geojson").read_text())["features"][0]["properties"]
    assert stored["batch_id"] == "2" and stored["source_file"] == "b.geojson" and len(stored["source_sha256"]) == 64
    labels = store.load()
    assert labels.plot_ids == tuple(f"p{i}" for i in range(7)) and labels.batch_ids == ("1",) * 4 + ("2",) * 3
    assert [b.id for b in store.load(["2"]).batches] == ["2"]

    with pytest.raises(LabelFileError, match="already in the store as batch 1; nothing added"):
        store.read(a)
    again = _write(tmp_path / "c.geojson", [_feature(0, plot_id="new0"), _feature(9, plot_id="p1")])
    with pytest.raises(LabelFileError, match=r"feature 0 \(plot_id new0\): same plot as p0 \(store batch 1\)"):
        store.read(again)
    with pytest.raises(LabelFileError, match="no batch '5'"):
        store.load(["5"])

    path = tmp_path / "store/batches/1/labels.geojson"
    path.write_text(path.read_text().replace('"coca"', '"forest"'))
    with pytest.raises(LabelFileError, match="does not match its sha256"):
        store.load()


def test_cli_add_list_and_skip_invalid(tmp_path):
    """A bad row fails the whole file; with --skip-invalid it lands in rejected.geojson, counted."""
    feats = [_feature(i) for i in range(4)] + [_feature(5, **BAD["bow-tie"][0]), _feature(6, **{"class": "cocca"})]
    path = _write(tmp_path / "delivery.geojson", feats)
    r = _cli("labels", "add", path, "--store", tmp_path / "s")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Self-intersection" in r.stderr
    assert not (tmp_path / "s" / "store.json").exists()
    r = _cli("labels", "add", path, "--store", tmp_path / "s", "--skip-invalid")
    assert r.returncode == 0, r.stderr
    assert "added batch 1" in r.stdout and "4 of 6 plots" in r.stdout
    rejected = json.loads((tmp_path / "s/batches/1/rejected.geojson").read_text())["features"]
    assert sorted(f["properties"]["rejected_reason"] for f in rejected) == ["invalid_geometry", "unknown_class"]
    assert [f["properties"]["feature_index"] for f in rejected] == [4, 5]
    (rec,) = LabelStore(tmp_path / "s").batches()
    assert rec.counts["read"] == rec.counts["accepted"] + sum(rec.counts["rejected"].values())
    r = _cli("labels", "list", "--store", tmp_path / "s")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["batch", "added", "plots", "rejected"]
    assert lines[1].split()[0] == "1" and "delivery.geojson" in lines[1] and "coca 2, forest 2" in lines[1]


@pytest.mark.integration
def test_retrain_extracts_only_the_new_batch(small_world, served_world, tmp_path, caplog):
    cfg_dict = demo_train(small_world, served_world.stac_url, tile_size=256)
    cfg_dict["fit"].update({"n_estimators": 10, "max_depth": 8, "cascade_trees": 0})
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(cfg_dict))
    cfg = load_train(tmp_path / "train.yaml")
    store = LabelStore(tmp_path / "store")
    for n in (1, 2):
        r = _cli("labels", "add", small_world.labels_path, "--store", store.root, "--where", f"batch={n}",
                 "--observed", small_world.spec.start, "--period-from", tmp_path / "train.yaml")
        assert r.returncode == 0, r.stderr
        if n == 1:
            m1 = train(cfg, store.load(), tmp_path / "m1", progress=False)
    assert m1.card["labels"]["extraction"] == {"extracted": ["1"], "cached": []}

    r = _cli("fit", tmp_path / "train.yaml", "--store", store.root, "--out", tmp_path / "m2", "--quiet")
    assert r.returncode == 0, r.stderr
    card = load_model(tmp_path / "m2").card["labels"]
    assert card["extraction"] == {"extracted": ["2"], "cached": ["1"]}
    assert [b["id"] for b in card["batches"]] == ["1", "2"]
    assert card["n_plots"] == sum(b["n_plots"] for b in card["batches"]) == len(json.loads(small_world.labels_path.read_text())["features"])
    assert card["batches"][0] == m1.card["labels"]["batches"][0]
    assert set(card["batches"][1]) == {"id", "sha256", "n_plots", "classes"}

    # Batch 1 from the cache equals a fresh extraction of batch 1.
    m3 = train(cfg, store.load(["1"]), tmp_path / "m3", progress=False)
    assert m3.card["labels"]["extraction"] == {"extracted": [], "cached": ["1"]}
    assert m3.card["training_data_sha256"] == m1.card["training_data_sha256"]
    ext = extract_cached(store.load(["1"]), cfg, progress=False)
    assert ext.cached == ("1",) and not ext.extracted
    fresh = extract_samples(store.load().batch("1"), cfg, progress=False)
    with np.load(store.cache_dir / f"{ext.keys['1']}.npz") as z:
        for name in ("X", "y", "groups"):
            np.testing.assert_array_equal(z[name], getattr(fresh, name))
