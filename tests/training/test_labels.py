"""Label files: each validation rule on a tiny crafted file; one-line errors naming file and plot."""

from __future__ import annotations

import datetime as dt
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio.raw
import pytest
import shapely
from shapely.geometry import box, mapping

from estimator.config import PeriodConfig
from estimator.errors import LabelFileError
from training.labels import read_label_file

PERIOD = PeriodConfig(start=dt.date(2021, 9, 1), end=dt.date(2022, 8, 31))


def _square(i: int, size: float = 0.001) -> dict[str, Any]:
    x, y = -75.0 + 0.01 * i, -9.0
    return mapping(box(x, y, x + size, y + size))


def _feature(i: int, **props: Any) -> dict[str, Any]:
    base = {"class": "coca" if i % 2 else "forest", "plot_id": f"p{i}", "observed": "2022-01-15", "source": "test"}
    base.update(props)
    geometry = base.pop("geometry", _square(i))
    return {"type": "Feature", "properties": {k: v for k, v in base.items() if v is not None}, "geometry": geometry}


def _write(path: Path, features: list[dict[str, Any]], **extra: Any) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features, **extra}))
    return path


def test_valid_file_counts(tmp_path):
    feats = [_feature(i) for i in range(4)] + [_feature(4, interpreter="ana")]
    b = read_label_file(_write(tmp_path / "ok.geojson", feats), period=PERIOD)
    c = b.counts()
    assert (c["read"], c["accepted"], c["rejected"]) == (5, 5, {})
    assert c["classes"] == {"coca": 2, "forest": 3} and c["without_interpreter"] == 4
    assert [p.plot_id for p in b.plots] == ["p0", "p1", "p2", "p3", "p4"]
    shuffled = read_label_file(_write(tmp_path / "shuffled.geojson", feats[::-1]), period=PERIOD)
    assert shuffled.sha256 == b.sha256  # content, not file order


BAD = {
    "bow-tie": (
        {"geometry": {"type": "Polygon", "coordinates": [[[-75, -9], [-74.999, -8.999], [-74.999, -9], [-75, -8.999], [-75, -9]]]}},
        "invalid_geometry", "Self-intersection",
    ),
    "empty": ({"geometry": {"type": "Polygon", "coordinates": []}}, "empty_geometry", "empty geometry"),
    "line": ({"geometry": {"type": "LineString", "coordinates": [[-75, -9], [-74.99, -9]]}}, "unsupported_geometry", "LineString"),
    "unknown class": ({"class": "cocca"}, "unknown_class", r"unknown class 'cocca'; known: \[.*'coca'.*--new-class cocca"),
    "no plot id": ({"plot_id": None}, "missing_field", "missing 'plot_id'"),
    "no date": ({"observed": None}, "missing_field", "missing 'observed'"),
    "bad date": ({"observed": "15/01/2022"}, "bad_date", "not an ISO date"),
    "outside period": ({"observed": "2020-05-01"}, "date_outside_period", "2020-05-01 is outside the imagery period 2021-09-01/2022-08-31"),
    "duplicate id": ({"plot_id": "p0"}, "duplicate_plot_id", "plot_id 'p0' already used by feature 0"),
    "same geometry": ({"geometry": _square(0)}, "duplicate_geometry", r"same plot as p0 \(equal geometry"),
    "overlapping": ({"geometry": mapping(box(-75.0, -9.0, -74.99903, -8.999))}, "duplicate_geometry", "same plot as p0"),
    "projected": ({"geometry": mapping(box(500000, 9000000, 500010, 9000010))}, "invalid_geometry", "outside lon/lat range"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_rule_rejects_with_one_line(tmp_path, case):
    props, reason, message = BAD[case]
    path = _write(tmp_path / "bad.geojson", [_feature(0), _feature(1), _feature(7, **{"plot_id": "bad1", **props})])
    with pytest.raises(LabelFileError, match=message) as e:
        read_label_file(path, period=PERIOD)
    text = str(e.value)
    assert "\n" not in text and str(path) in text and "feature 2" in text and "--skip-invalid" in text
    b = read_label_file(path, period=PERIOD, skip_invalid=True)
    assert [p.plot_id for p in b.plots] == ["p0", "p1"]
    assert b.counts()["rejected"] == {reason: 1} and b.rejected[0].index == 2
    assert b.rejected[0].feature["properties"]["rejected_reason"] == reason


def test_nothing_is_repaired_or_dropped(tmp_path):
    """A slightly-off overlap is a different plot; an invalid ring stays rejected, not fixed."""
    near = mapping(box(-75.0, -9.0, -74.9995, -8.999))  # IoU 0.5 with p0
    b = read_label_file(_write(tmp_path / "l.geojson", [_feature(0), _feature(1, geometry=near)]))
    assert len(b.plots) == 2
    b = read_label_file(_write(tmp_path / "l.geojson", [_feature(0), _feature(1, **BAD["bow-tie"][0])]), skip_invalid=True)
    assert b.counts()["read"] == len(b.plots) + len(b.rejected) == 2


def test_new_class_needs_opt_in_and_batch_defaults(tmp_path):
    path = _write(tmp_path / "l.geojson", [_feature(0, observed=None, source=None), _feature(1, **{"class": "cacao"})])
    with pytest.raises(LabelFileError, match="missing 'observed', 'source'"):
        read_label_file(path, new_classes=["cacao"])
    b = read_label_file(path, new_classes=["cacao"], observed="2022-02-01", source="campaign 3")
    assert {p.class_name for p in b.plots} == {"forest", "cacao"}
    p0 = next(p for p in b.plots if p.plot_id == "p0")
    assert (p0.observed, p0.source) == (dt.date(2022, 2, 1), "campaign 3")
    p1 = next(p for p in b.plots if p.plot_id == "p1")
    assert p1.observed == dt.date(2022, 1, 15)  # a feature's own date wins over the file's


def test_whole_file_errors(tmp_path):
    (tmp_path / "x.geojson").write_text("{")
    with pytest.raises(LabelFileError, match="not GeoJSON"):
        read_label_file(tmp_path / "x.geojson")
    with pytest.raises(LabelFileError, match="holds no labeled features"):
        read_label_file(_write(tmp_path / "e.geojson", []))
    with pytest.raises(LabelFileError, match=r"unsupported label format '\.shp'"):
        read_label_file(_write(tmp_path / "x.shp", [_feature(0)]))
    with pytest.raises(LabelFileError, match="all 1 features rejected"):
        read_label_file(_write(tmp_path / "u.geojson", [_feature(0, **{"class": "x"})]), skip_invalid=True)


def test_geojson_crs_member_is_reprojected(tmp_path):
    utm = shapely.Polygon([(500000, 9000000), (500100, 9000000), (500100, 9000100), (500000, 9000100)])
    feats = [_feature(0, geometry=mapping(utm))]
    crs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32718"}}
    b = read_label_file(_write(tmp_path / "utm.geojson", feats, crs=crs))
    x0, y0, _, _ = b.plots[0].geometry.bounds
    assert x0 == pytest.approx(-75.0, abs=1e-6) and -9.1 < y0 < -9.0


def _write_gpkg(path: Path, geoms: list[shapely.Geometry], crs: str | None) -> Path:
    n = len(geoms)
    fields = {
        "class": np.array(["coca", "forest"] * (n // 2) + ["coca"] * (n % 2), dtype=object),
        "plot_id": np.array([f"g{i}" for i in range(n)], dtype=object),
        "observed": np.array(["2022-01-15"] * n, dtype=object),
        "source": np.array(["gpkg test"] * n, dtype=object),
    }
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "'crs' was not provided", UserWarning)  # on purpose
        pyogrio.raw.write(
            path, np.array(shapely.to_wkb(geoms), dtype=object), list(fields.values()), fields=list(fields),
            driver="GPKG", geometry_type="Polygon", crs=crs,
        )
    return path


def test_geopackage(tmp_path):
    utm = [shapely.box(500000 + 200 * i, 9000000, 500100 + 200 * i, 9000100) for i in range(3)]
    b = read_label_file(_write_gpkg(tmp_path / "ok.gpkg", utm, "EPSG:32718"), period=PERIOD)
    assert [p.plot_id for p in b.plots] == ["g0", "g1", "g2"]
    assert b.plots[0].geometry.bounds[0] == pytest.approx(-75.0, abs=1e-6)
    with pytest.raises(LabelFileError, match="missing CRS") as e:
        read_label_file(_write_gpkg(tmp_path / "nocrs.gpkg", utm, None))
    assert "\n" not in str(e.value)
