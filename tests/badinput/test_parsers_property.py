"""Property tests of the parsers a user feeds files to: whatever the file holds, the answer is
a parsed object or the parser's own one-line error, never another exception."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from estimator.claims.registry import load_claims
from estimator.config import load_job
from estimator.errors import ClaimsError, ConfigError, EstimatorError, LabelFileError, ReferenceSampleError

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

_text = st.text(alphabet=string.ascii_letters + string.digits + " -_:./|\n'", max_size=12)
_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True), _text,
    st.dates().map(lambda d: d.isoformat()),
    st.sampled_from(["EPSG:4326", "EPSG:32718", "EPSG:2230", "EPSG:999999", "2021-02-30", "coca", "Coca ", ""]),
)
_value = st.recursive(_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_text, inner, max_size=3)), max_leaves=6)


def _one_line(e: BaseException) -> None:
    assert str(e) and "\n" not in str(e).strip(), repr(str(e))


# ----------------------------------------------------------------------------- job files

_JOB = {
    "stac": {"url": "http://127.0.0.1:9/", "collection": "sentinel-2-l2a"},
    "period": {"start": "2022-01-01", "end": "2022-12-31"},
    "regions": {"file": "regions.geojson", "id_field": "region_id"},
    "grid": {"resolution": 10, "crs": "EPSG:32718", "tile_size": 512, "chunk_size": 256},
    "model": "model",
}
_KEYS = [
    "stac.url", "stac.max_cloud_cover", "stac.page_size", "stac.provider", "period.start", "period.end", "regions.file",
    "regions.names", "grid.resolution", "grid.crs", "grid.tile_size", "grid.chunk_size", "mask.clear_scl",
    "classify.min_patch_ha", "coverage.unobserved", "model", "output", "target_class", "cluster.connect", "stac.colection",
]


@SETTINGS
@given(edits=st.dictionaries(st.sampled_from(_KEYS), _value, max_size=4))
def test_job_parser_gives_a_job_or_a_config_error(tmp_path_factory, edits):
    d = tmp_path_factory.mktemp("job")
    data = json.loads(json.dumps(_JOB))
    for dotted, value in edits.items():
        node = data
        *head, last = dotted.split(".")
        for k in head:
            node = node.setdefault(k, {})
        node[last] = value
    path = d / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        job = load_job(path)
    except ConfigError as e:
        _one_line(e)
        return
    # what was accepted is usable as promised: a projected grid in metres, an ordered period
    assert job.period.start <= job.period.end
    if job.grid.crs is not None:
        from pyproj import CRS

        crs = CRS.from_user_input(job.grid.crs)
        assert crs.is_projected and {a.unit_name for a in crs.axis_info} == {"metre"}


@SETTINGS
@given(raw=st.text(max_size=200))
def test_job_parser_on_arbitrary_text(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("job") / "job.yaml"
    path.write_text(raw)
    with pytest.raises(ConfigError) as e:
        load_job(path)
    _one_line(e.value)


@SETTINGS
@given(overrides=st.lists(st.tuples(st.sampled_from(_KEYS), _text), max_size=3))
def test_set_overrides_give_a_job_or_a_config_error(tmp_path_factory, overrides):
    path = tmp_path_factory.mktemp("job") / "job.yaml"
    path.write_text(yaml.safe_dump(_JOB))
    try:
        load_job(path, overrides=[f"{k}={v}" for k, v in overrides])
    except ConfigError as e:
        _one_line(e)


# ----------------------------------------------------------------------------- labels

_lon = st.floats(-80, -70)
_lat = st.floats(-15, -5)


@st.composite
def _label_feature(draw):
    x, y = draw(_lon), draw(_lat)
    d = draw(st.floats(-0.01, 0.01))
    ring = draw(
        st.sampled_from(
            [
                [[x, y], [x + 0.001, y], [x + 0.001, y + 0.001], [x, y + 0.001], [x, y]],
                [[x, y], [x + 0.001, y + 0.001], [x + 0.001, y], [x, y + 0.001], [x, y]],  # bow-tie
                [[x, y], [x + d, y], [x, y]],
            ]
        )
    )
    geom = draw(st.one_of(st.just({"type": "Polygon", "coordinates": [ring]}), st.just({"type": "Point", "coordinates": [x, y]}), _value))
    props = {
        "class": draw(st.one_of(st.sampled_from(["coca", "forest", "Coca ", "pasture", "", "cacao"]), _value)),
        "plot_id": draw(st.one_of(st.sampled_from(["p1", "p2", "p3"]), _value)),
        "observed": draw(st.one_of(st.sampled_from(["2022-03-01", "2021-02-30", "yesterday"]), _value)),
        "source": draw(st.one_of(st.just("field team"), _value)),
    }
    return {"type": "Feature", "geometry": geom, "properties": draw(st.one_of(st.just(props), _value))}


@SETTINGS
@given(
    features=st.lists(_label_feature(), max_size=5),
    crs=st.sampled_from([None, "EPSG:4326", "EPSG:32718", "urn:ogc:def:crs:OGC:1.3:CRS84", "nonsense"]),
    skip=st.booleans(),
)
def test_labels_parser_gives_a_batch_or_a_label_error(tmp_path_factory, features, crs, skip):
    from training.labels import DEFAULT_CLASSES, read_label_file

    fc: dict = {"type": "FeatureCollection", "features": features}
    if crs is not None:
        fc["crs"] = {"type": "name", "properties": {"name": crs}}
    path = tmp_path_factory.mktemp("labels") / "plots.geojson"
    path.write_text(json.dumps(fc))
    try:
        batch = read_label_file(path, skip_invalid=skip)
    except LabelFileError as e:
        _one_line(e)
        return
    # an accepted plot is valid, has a known class and lon/lat coordinates
    for plot in batch.plots:
        assert plot.class_name in DEFAULT_CLASSES
        assert plot.geometry.is_valid
        x0, y0, x1, y1 = plot.geometry.bounds
        assert -180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90


@SETTINGS
@given(classes=st.lists(st.one_of(st.sampled_from(["coca", "forest", "Coca ", " forest", "FOREST", "cacao"]), _text), min_size=1, max_size=6))
def test_label_classes_are_known_or_refused(classes):
    from training.labels import DEFAULT_CLASSES, check_classes

    if set(classes) <= set(DEFAULT_CLASSES):
        check_classes(classes, DEFAULT_CLASSES, "plots.geojson")
    else:
        with pytest.raises(LabelFileError) as e:
            check_classes(classes, DEFAULT_CLASSES, "plots.geojson")
        _one_line(e.value)


# ----------------------------------------------------------------------------- claims

_claim = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.sampled_from(["c1", "c2", "c|3", "c\n4"]), _value),
        "region": st.one_of(st.sampled_from(["loreto", "vraem", "north"]), _value),
        "period": st.one_of(st.sampled_from(["2010", "2010-01/2010-12", "2021-02-30", "2011/2010"]), _value),
        "kind": st.one_of(st.sampled_from(["point", "lower_bound", "upper_bound", "growth_rate", "range"]), _value),
        "value_ha": st.one_of(st.floats(allow_nan=True), _value),
        "low_ha": _value,
        "high_ha": _value,
        "source": _value,
        "quote": _value,
        "class": _value,
    },
)


@SETTINGS
@given(doc=st.one_of(st.fixed_dictionaries({"claims": st.lists(_claim, max_size=3)}), _value))
def test_claims_parser_gives_claims_or_a_claims_error(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("claims") / "claims.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        load_claims(path)
    except ClaimsError as e:
        _one_line(e)


# ----------------------------------------------------------------------------- reference samples


@pytest.fixture(scope="module")
def finished_run(small_run):
    from estimator.run.rundir import open_run

    return open_run(small_run[1].run_dir)


@pytest.fixture(scope="module")
def drawn_sample(finished_run):
    from estimator.stats.sample import draw_sample

    return draw_sample(finished_run, n=400, min_per_stratum=5, seed=3)


_props_edit = st.dictionaries(
    st.sampled_from(["sample_id", "row", "col", "map_class", "interpreter_1", "interpreter_2", "consensus"]),
    _value,
    max_size=3,
)


@pytest.mark.integration
@SETTINGS
@given(
    edits=st.lists(st.tuples(st.integers(0, 399), _props_edit), max_size=4),
    duplicate=st.booleans(),
    drop_sampling=st.booleans(),
    label_all=st.booleans(),
)
def test_reference_parser_gives_units_or_a_sample_error(
    tmp_path_factory, finished_run, drawn_sample, edits, duplicate, drop_sampling, label_all
):
    from estimator.stats.assess import read_reference

    fc = json.loads(json.dumps(drawn_sample))
    feats = fc["features"]
    if label_all:
        for f in feats:
            f["properties"]["consensus"] = f["properties"]["map_class"]
    for i, props in edits:
        feats[i % len(feats)]["properties"].update(props)
    if duplicate:
        feats.append(json.loads(json.dumps(feats[0])))
    if drop_sampling:
        fc.pop("sampling")
    path = tmp_path_factory.mktemp("ref") / "labeled.geojson"
    path.write_text(json.dumps(fc))
    try:
        ref = read_reference(path, finished_run)
    except ReferenceSampleError as e:
        _one_line(e)
        return
    ids = [u["sample_id"] for u in ref.units]
    assert len(ids) == len(set(ids)) == len(feats)  # each unit counted once
    assert {u["reference"] for u in ref.units} <= set(finished_run.classes)


@pytest.mark.integration
@SETTINGS
@given(n=st.one_of(st.integers(-10**9, 10**9), st.integers(-3, 30)), per=st.integers(2, 60))
def test_sample_size_is_what_was_asked_or_an_error(finished_run, n, per):
    from estimator.stats.sample import draw_sample

    try:
        fc = draw_sample(finished_run, n=n, min_per_stratum=per, seed=0)
    except EstimatorError as e:
        _one_line(e)
        return
    assert len(fc["features"]) == n  # never silently replaced by another size


def test_reading_a_missing_or_corrupt_file_is_one_line(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError):
        load_job(bad)
    with pytest.raises(ConfigError):
        load_job(Path(tmp_path / "nope.yaml"))
