"""A labelled reference sample as a label batch, and assess refusing the units a model trained on."""

from __future__ import annotations

import json

import pytest
import shapely
import yaml

from estimator.config import load_train
from estimator.demo.oracle import label_with_truth
from estimator.demo.runner import demo_train
from estimator.errors import LabelFileError, ReferenceSampleError
from estimator.location import write_json
from estimator.run.rundir import open_run
from estimator.stats.assess import assess_run
from estimator.stats.sample import draw_sample
from training.evaluate import refuse_reference_overlap
from training.extract import LabelSet, reference_units
from training.fit import train
from training.labels import read_label_file
from training.store import LabelStore

pytestmark = pytest.mark.integration


def test_reference_sample_becomes_a_marked_batch_and_assess_refuses_it(run_copy, small_world, served_world, tmp_path):
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

    # a model trained on the reference batch (beside ordinary plots) lists its units in the card
    cfg_dict = demo_train(small_world, served_world.stac_url, tile_size=256)
    cfg_dict["fit"].update({"n_estimators": 10, "max_depth": 8, "cascade_trees": 0})
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(cfg_dict))
    store.add(store.read(small_world.labels_path, where={"batch": "1"}, observed=small_world.spec.start, source="demo"))
    model = train(load_train(tmp_path / "train.yaml"), store.load(), tmp_path / "model", progress=False)
    assert model.card["reference_units"] == units
    assert model.card["labels"]["batches"][0]["reference_sample"]["file"] == str(path)
    # ... so it is never evaluated on them
    with pytest.raises(LabelFileError, match=r"reference-sample units model .* was trained on"):
        refuse_reference_overlap(store.load([batch_id]), model)
    # ordinary plots are refused where they cover a reference unit's pixel, and only there
    plain = store.load(["2"])
    pts = shapely.points([(u[1], u[2]) for u in units[0]["units"]])
    keep = [i for i, g in enumerate(plain.geometries) if not shapely.intersects(g.buffer(5e-5), pts).any()]
    assert 0 < len(keep) < len(plain.plot_ids)
    with pytest.raises(LabelFileError, match="lie on reference-sample units"):
        refuse_reference_overlap(plain, model)
    refuse_reference_overlap(LabelSet(*(tuple(getattr(plain, a)[i] for i in keep) for a in ("plot_ids", "classes", "geometries")),
                                      plain.path, "subset"), model)

    # the sample assesses the run whose model never saw it ...
    assess_run(run_copy, path)
    # ... but not a run of the model trained on it (a run copies the card's reference units
    # into its manifest, estimator/run/manifest.py)
    manifest = json.loads((run_copy / "manifest.json").read_text())
    manifest["model"]["reference_units"] = model.card["reference_units"]
    write_json(run_copy / "manifest.json", manifest)
    with pytest.raises(ReferenceSampleError, match=rf"{len(feats)} unit\(s\) of .* lie on pixels model .* was trained on"):
        assess_run(run_copy, path)
