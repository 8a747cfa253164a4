"""Tests of the SYNTHETIC hard world preset (estimator.demo.hard, hard_sky, hard_files)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from shapely.geometry import shape

from estimator.bands import SCL
from estimator.demo.hard import FINE, KINDS, LABEL_ERROR_SHARE, TRAIN_STRIP, _mixture, _state
from estimator.demo.hard_sky import _false_detections, _missed
from estimator.demo.landscape import CLASS_CODE, pixel_area_m2
from estimator.demo.world import (
    GENERATOR_VERSION,
    HARD_FILES,
    DemoWorldError,
    World,
    WorldSpec,
    generate_world,
    generator_version,
    load_world,
    preset_spec,
)

HARD_SMALL = preset_spec("hard", seed=3, size_px=256, n_dates=6)


@pytest.fixture(scope="module")
def hard_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return generate_world(tmp_path_factory.mktemp("hard") / "world", HARD_SMALL)


def _truth(world: World) -> dict:
    return json.loads(world.truth_path.read_text(encoding="utf-8"))


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def _world_digest(root: Path) -> str:
    """sha256 over every file: JSON as bytes, rasters as decoded pixels and georeferencing
    (so a different DEFLATE build cannot change it)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        h.update(str(p.relative_to(root)).encode())
        if p.suffix == ".tif":
            with rasterio.open(p) as src:
                h.update(src.read().tobytes())
                h.update(repr((src.crs.to_epsg(), tuple(src.transform), src.nodata)).encode())
        else:
            h.update(p.read_bytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- presets and cache


def test_easy_world_is_byte_for_byte_what_it_was(tmp_path: Path) -> None:
    # Digest of this spec's world made by the generator before the hard preset existed.
    world = generate_world(tmp_path / "easy", WorldSpec(seed=3, size_px=128, n_dates=4))
    assert _world_digest(world.root) == "43eac827634b8c290abe7ddaacec6df13a24048a497f21a4933d9b169d8f360b"
    record = json.loads(world.world_json_path.read_text(encoding="utf-8"))
    assert "preset" not in record["spec"] and record["generator_version"] == GENERATOR_VERSION
    assert load_world(world.root).spec.preset == "easy"


def test_preset_spec_defaults() -> None:
    assert preset_spec("easy") == WorldSpec()
    hard = preset_spec("hard", seed=101)
    assert (hard.preset, hard.seed, hard.size_px, hard.n_dates, hard.end) == ("hard", 101, 1024, 30, "2022-08-31")
    assert preset_spec("hard", size_px=256, n_dates=5).size_px == 256
    with pytest.raises(DemoWorldError, match="preset must be one of easy, hard"):
        preset_spec("medium")
    with pytest.raises(DemoWorldError, match="preset"):
        WorldSpec(preset="Hard")


def test_hard_world_layout_and_version(hard_world: World) -> None:
    record = json.loads(hard_world.world_json_path.read_text(encoding="utf-8"))
    assert record["spec"]["preset"] == "hard"
    assert record["generator_version"] == generator_version("hard") != GENERATOR_VERSION
    assert load_world(hard_world.root) == hard_world
    for name in HARD_FILES:
        assert (hard_world.root / name).is_file()
    items = [json.loads(line) for line in hard_world.items_path.read_text().splitlines()]
    assert len(items) == HARD_SMALL.n_dates
    assert {i["properties"]["processing:software"]["coca-estimator-demo-world"] for i in items} == {
        generator_version("hard")
    }
    assert _truth(hard_world)["preset"] == "hard"


def test_presets_never_share_a_cached_world(hard_world: World, tmp_path: Path) -> None:
    root = tmp_path / "w"
    generate_world(root, preset_spec("hard", seed=3, size_px=128, n_dates=3))
    easy = generate_world(root, WorldSpec(seed=3, size_px=128, n_dates=3))  # same numbers, other preset
    assert easy.spec.preset == "easy" and not (root / "label_errors.json").exists()
    # A hard world recorded under the easy generator version is not taken for current.
    record = json.loads(hard_world.world_json_path.read_text())
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "world.json").write_text(json.dumps({**record, "generator_version": GENERATOR_VERSION}))
    with pytest.raises(DemoWorldError, match=r"version 2, this code writes version 2\+hard"):
        load_world(copy)


# --------------------------------------------------------------------------- truth


def test_mixed_pixels_are_consistent_with_the_class_truth(hard_world: World) -> None:
    cls = _read(hard_world.truth_class_path)[0]
    cut, ever = _read(hard_world.root / "truth_coca_fraction.tif")
    assert ((cut > 0) & (cut < 1)).sum() > 0.2 * (cut > 0).sum()  # plot edges are mixtures
    assert np.all((cut >= 0) & (cut <= 1)) and np.all(ever >= cut - 1e-6)
    assert np.all(cls[cut > 0.5] == CLASS_CODE["coca"])  # a pixel mostly under coca is coca
    assert np.all(cut[cls == CLASS_CODE["coca"]] >= 1 / 3 - 1e-6)  # coca is its largest class
    # The sub-pixel areas in truth.json are the shares times the pixels' ground areas.
    truth = _truth(hard_world)
    pixel_ha = pixel_area_m2(_grid(hard_world)) / 1e4
    assert sum(truth["coca_subpixel_ha"].values()) <= float((cut * pixel_ha).sum()) + 1e-3
    for rid, region in truth["regions"].items():
        assert truth["coca_any_time_ha"][rid] >= truth["coca_subpixel_ha"][rid]
        # Majority rule and sub-pixel shares agree to within the plots' edge pixels.
        assert region["area_ha"]["coca"] == pytest.approx(truth["coca_subpixel_ha"][rid], abs=2.0, rel=0.2)


def _grid(world: World):
    from estimator.demo.landscape import Grid

    s = world.spec
    return Grid(s.size_px, s.origin_x, s.origin_y, s.epsg)


def test_truth_per_date(hard_world: World) -> None:
    items = [json.loads(line) for line in hard_world.items_path.read_text().splitlines()]
    with rasterio.open(hard_world.root / "truth_dates.tif") as src:
        per_date = src.read()
        described = list(src.descriptions)
    assert described == [i["properties"]["datetime"][:10] for i in items]
    truth = _truth(hard_world)
    assert list(truth["coca_by_date_ha"]) == described
    # Plots are planted and abandoned during the period: the coca of the dates differs.
    coca_px = [(band == CLASS_CODE["coca"]).sum() for band in per_date]
    assert len(set(coca_px)) > 1
    kinds = truth["object_kinds"]
    assert kinds["coca_planted"] and kinds["coca_abandoned"] and kinds["slash_burn"] and kinds["pasture_burned"]
    assert truth["cutoff_date"] == HARD_SMALL.end
    cut = _read(hard_world.truth_class_path)[0]
    objects = json.loads(hard_world.truth_objects_path.read_text())["features"]
    abandoned = [f for f in objects if f["properties"]["kind"] == "coca_abandoned"]
    # An abandoned plot is regrowth after its event and coca before it.
    assert all(f["properties"]["class"] == "regrowth" for f in abandoned)
    assert (cut == CLASS_CODE["coca"]).any()
    for f in abandoned:
        event = dt.date.fromisoformat(f["properties"]["event"])
        assert event <= dt.date.fromisoformat(HARD_SMALL.end)


def test_mixture_keeps_the_three_largest_objects_per_pixel() -> None:
    fine = np.zeros((2 * FINE, 2 * FINE), dtype=np.int32)
    fine[:FINE, :FINE] = 5  # pixel (0, 0): one object
    fine[:FINE, FINE:] = 1
    fine[:1, FINE:] = 2  # pixel (0, 1): 12/16 of object 1, 4/16 of object 2
    block = np.arange(4, dtype=np.int32).repeat(4).reshape(FINE, FINE) + 10
    fine[FINE:, :FINE] = block  # pixel (1, 0): four objects of 4/16 each
    fine[FINE:, FINE:] = 7
    ids, weights = _mixture(fine, 2)
    assert ids.shape == weights.shape == (3, 2, 2)
    np.testing.assert_allclose(weights.sum(axis=0), 1.0)
    assert ids[0, 0, 0] == 5 and weights[0, 0, 0] == 1.0
    assert (ids[0, 0, 1], ids[1, 0, 1]) == (1, 2)
    np.testing.assert_allclose(weights[:, 0, 1], [0.75, 0.25, 0.0])
    np.testing.assert_allclose(weights[:, 1, 0], [0.5, 0.25, 0.25])  # the fourth sliver goes to the largest
    assert set(ids[:, 1, 0]) <= {10, 11, 12, 13}


def test_class_timelines_of_planted_abandoned_and_burned_objects() -> None:
    kinds = ["coca_planted", "coca_abandoned", "slash_burn", "coca_pruned"]
    n = len(kinds)
    event = 8000.0  # days since 2000-01-01
    p = {
        "kind": np.array([KINDS.index(k) for k in kinds], dtype=np.int16),
        "event": np.full(n, event), "after_fallow": np.array([0, 0, 1, 0], dtype=np.int8),
        "period": np.full(n, 90.0), "phase": np.zeros(n), "cover_min": np.full(n, 0.3), "cover_max": np.full(n, 0.8),
        "cover": np.full(n, 0.96), "age": np.ones(n), "season_amp": np.full(n, 0.05), "burn_doy": np.full(n, 230.0),
        "shade": np.zeros(n), "east": np.zeros(n), "brightness": np.ones(n), "start": np.full(n, event - 300),
    }  # fmt: skip
    code = {c: CLASS_CODE[c] for c in ("coca", "forest", "bare_soil", "regrowth")}
    before, burning, after = (_state(p, event + d)[3] for d in (-100.0, -20.0, 10.0))
    assert list(before) == [code["forest"], code["coca"], code["forest"], code["coca"]]
    assert list(burning) == [code["bare_soil"], code["coca"], code["forest"], code["coca"]]
    assert list(after) == [code["coca"], code["regrowth"], code["bare_soil"], code["coca"]]
    assert _state(p, event + 60.0)[3][2] == code["regrowth"]  # fallow after the burn
    cover_pruned = [_state(p, event + d)[0][3] for d in (-1.0, 1.0, 120.0)]
    assert cover_pruned[1] < 0.15 < cover_pruned[2]  # zoca: cut to stumps, then back
    assert _state(p, event - 40.0)[2][0] > 0.8  # the planted plot is burned 45 days before: charred


# --------------------------------------------------------------------------- labels and sky


def test_labels_come_from_the_western_strip_and_some_are_wrong(hard_world: World) -> None:
    s = hard_world.spec
    to_utm = Transformer.from_crs(4326, s.epsg, always_xy=True)
    labels = json.loads(hard_world.labels_path.read_text())["features"]
    width = s.size_px * 10.0
    for f in labels:
        c = shape(f["geometry"]).centroid
        x, _ = to_utm.transform(c.x, c.y)
        assert TRAIN_STRIP[0] - 0.01 <= (x - s.origin_x) / width <= TRAIN_STRIP[1] + 0.01  # shifted ones too
    for f in json.loads(hard_world.regions_path.read_text())["features"]:
        x0 = min(to_utm.transform(*xy)[0] for xy in shape(f["geometry"]).exterior.coords)
        assert (x0 - s.origin_x) / width > TRAIN_STRIP[1]
    errors = json.loads((hard_world.root / "label_errors.json").read_text())
    assert errors["n_labels"] == len(labels)
    assert len(errors["errors"]) == max(1, round(LABEL_ERROR_SHARE * len(labels)))
    ids = {f["properties"]["plot_id"]: f["properties"]["class"] for f in labels}
    for e in errors["errors"]:
        assert ids[e["plot_id"]] == e["label_class"]
        if e["kind"] == "mislabelled":
            assert e["label_class"] != e["true_class"] and e["shift_m"] == 0
        else:
            assert e["kind"] == "shifted" and 15 <= e["shift_m"] <= 40


def test_scl_misses_part_of_shadows_and_cirrus() -> None:
    size = 128
    for seed in range(5):
        missed = _missed(np.random.default_rng(seed), size, 0.15, 0.6)
        assert 0.14 <= missed.mean() <= 0.61


def test_scl_false_clouds_on_bright_ground_and_false_shadows_on_dark_ground() -> None:
    refl = np.full((10, 64, 64), 0.3, dtype=np.float32)
    refl[0, :32] = 0.12  # a bright roof-like blue in the north half
    refl[3, :, :16] = 0.05  # a dark, burn-scar-like NIR in the west quarter
    bright, dark = np.zeros((32, 32), bool), np.zeros((32, 32), bool)
    bright[:16], dark[:, :8] = True, True
    seen_cloud = seen_shadow = 0
    for seed in range(30):
        scl = np.full((32, 32), SCL.VEGETATION, dtype=np.uint8)
        _false_detections(scl, refl, np.random.default_rng(seed), np.zeros((32, 32), bool))
        cloud = scl == SCL.CLOUD_MEDIUM
        seen_cloud += bool(cloud[bright & ~dark].all())
        seen_shadow += bool((scl[dark & ~bright] == SCL.CLOUD_SHADOW).all())
    assert 0 < seen_cloud < 30 and 0 < seen_shadow < 30  # on some dates, not on all


# --------------------------------------------------------------------------- end to end


@pytest.mark.integration
# A 3.84 km world has two 2 km spatial blocks in its training strip; one of them can hold all
# the water or town plots, so a training fold lacks a class (the card says so too).
@pytest.mark.filterwarnings("ignore:Number of classes in training fold:RuntimeWarning")
def test_demo_runs_end_to_end_on_a_small_hard_world(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from estimator.cli import main

    out = tmp_path / "demo"
    assert (
        main(["demo", "--preset", "hard", "--seed", "2", "--size", "384", "--dates", "8", "--out", str(out), "--quiet"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "SYNTHETIC demo world (hard preset, seed 2, 384x384 px, 8 dates)" in printed
    assert "error-adjusted estimates" in printed
    world = load_world(out / "world")
    assert world.spec == preset_spec("hard", seed=2, size_px=384, n_dates=8)
    estimates = json.loads((out / "run" / "estimates.json").read_text())
    regions = {r["region"] for r in estimates["records"] if r["class"] == "coca"}
    assert regions == set(_truth(world)["regions"])
    for r in estimates["records"]:
        if r["class"] == "coca":
            assert r["estimator"] == "stratified-olofsson2014" and r["ci95_low_ha"] <= r["area_ha"] <= r["ci95_high_ha"]
            assert r["synthetic"] is True
