"""A labelled reference sample as a label batch, and assess refusing the units a model trained on."""

from __future__ import annotations

import json

import pytest

from estimator.demo.oracle import label_with_truth
from estimator.errors import LabelFileError, ReferenceSampleError
from estimator.location import write_json
from estimator.run.rundir import open_run
from estimator.stats.assess import assess_run
from estimator.stats.sample import draw_sample
from training.extract import reference_units
from training.labels import read_label_file
from training.store import LabelStore

pytestmark = pytest.mark.integration


def test_reference_sample_becomes_a_marked_batch_and_assess_refuses_it(run_copy, small_world, tmp_path):
    run = open_run(run_copy)
    sample = label_with_truth(draw_sample(run, n=300, min_per_stratum=5, seed=2), small_world, seed=2)
    sample["sampling"]["imagery"] = {"last": "2022-08-29"}
    path = tmp_path / "labelled.geojson"
    write_json(path, sample)
    feats = sample["features"]

    # one unit left unlabelled: rejected with its reason, never dropped silently
    partial = json.loads(json.dumps(sample))
    partial["features"][0]["properties"].update(interpreter_1=None, interpreter_2=None, consensus=None)
    write_json(tmp_path / "partial.geojson", partial)
    with pytest.raises(LabelFileError, match="no reference label"):
        read_label_file(tmp_path / "partial.geojson")
    assert read_label_file(tmp_path / "partial.geojson", skip_invalid=True).counts()["rejected"] == {"no_reference_label": 1}

    store = LabelStore(tmp_path / "store")
    batch = store.read(path)
    assert len(batch.plots) == len(feats)
    by_unit = {p.sample_unit: p for p in batch.plots}
    for f in feats:
        p = f["properties"]
        plot = by_unit[p["sample_id"]]
        assert plot.class_name == (p["consensus"] or p["interpreter_1"])
        assert plot.geometry.coords[0] == pytest.approx(f["geometry"]["coordinates"], abs=1e-7)
        assert str(plot.observed) == "2022-08-29"
    assert batch.reference_sample is not None and batch.reference_sample["class_map_sha256"] == run.class_map_sha256()
    batch_id = store.add(batch)
    labels = store.load()
    assert labels.batches[0].card()["reference_sample"]["sample_key"] == batch.reference_sample["sample_key"]
    units = reference_units(labels)
    assert units[0]["batch"] == batch_id and len(units[0]["units"]) == len(feats)
    with pytest.raises(LabelFileError, match="already in the store"):
        store.read(path)

    # the sample assesses the run whose model never saw it ...
    assess_run(run_copy, path)
    # ... but not a run of a model trained on it (its manifest carries the card's reference units)
    manifest = json.loads((run_copy / "manifest.json").read_text())
    manifest["model"]["reference_units"] = units
    write_json(run_copy / "manifest.json", manifest)
    with pytest.raises(ReferenceSampleError, match=rf"{len(feats)} unit\(s\) of .* lie on pixels model .* was trained on"):
        assess_run(run_copy, path)
