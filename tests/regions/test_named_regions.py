"""Named regions from the INEI 2007 boundaries: lookup, checksums, facts, and true-area grids.

Boundary files come from ../shared (ESTIMATOR_BOUNDARIES points there); no test downloads.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from estimator.errors import ConfigError
from estimator.grid import make_grid, pixel_area_m2, utm_crs_for
from estimator.regions.boundaries import (
    ENV_VAR,
    BoundaryDownloadError,
    BoundaryFileError,
    boundaries_dir,
    boundary_files,
)
from estimator.regions.geometry import Region, rasterize_regions, to_crs
from estimator.regions.named import (
    APPROXIMATION_NOTE,
    AmbiguousRegionError,
    UnknownRegionError,
    geodesic_area_ha,
    list_regions,
    region_facts,
    resolve_region,
)

#: HECTARES field of Loreto in peru_departamental_simple.geojson.
LORETO_FILE_HA = 37_511_599
#: Grid resolution (m) per kind for the area test: coarse enough to stay small in memory.
RESOLUTION = {"country": 2000.0, "department": 250.0, "province": 100.0, "zone": 100.0}
S2_TILE = re.compile(r"^\d{2}[C-X][A-Z]{2}$")


@pytest.fixture
def bdir(shared, monkeypatch) -> Path:
    d = shared / "real" / "boundaries"
    if not d.is_dir():
        pytest.skip(f"INEI 2007 boundary files not found at {d}")
    monkeypatch.setenv(ENV_VAR, str(d))
    return d


@pytest.fixture
def no_download(monkeypatch):
    """Fail loudly if anything tries to fetch a boundary file."""
    import pooch

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to download boundary files")

    monkeypatch.setattr(pooch, "retrieve", refuse)


def _grid_area_ha(region: Region, crs: str, resolution: float) -> tuple[float, float]:
    """(true, nominal) hectares of the region's pixels on one job grid in ``crs``."""
    geobox = make_grid(to_crs(region.geometry, crs), crs, resolution)
    mask = rasterize_regions([region], geobox)[0]
    ny = mask.shape[0]
    # Row strips keep pixel_area_m2's temporaries small, as the pipeline's tiles do.
    true_m2 = sum(
        float(pixel_area_m2(geobox[y : min(y + 512, ny), :])[mask[y : y + 512]].sum()) for y in range(0, ny, 512)
    )
    return true_m2 / 1e4, float(mask.sum()) * resolution**2 / 1e4


# ---------------------------------------------------------------- lookup


def test_list_regions_expands_includes():
    regions = {r.key: r for r in list_regions()}
    assert set(regions) == {"peru", "loreto", "mariscal-ramon-castilla", "vrae", "vraem", "alto-huallaga"}
    assert len(regions["peru"].units) == 25 and not regions["peru"].approximate
    assert set(regions["vrae"].units) < set(regions["vraem"].units)
    assert regions["loreto"].units == ("16",) and not regions["loreto"].approximate
    assert all(regions[k].approximate and regions[k].kind == "zone" for k in ("vrae", "vraem", "alto-huallaga"))


@pytest.mark.parametrize(
    ("name", "region_id", "approx_ha"),
    [
        ("loreto", "loreto", 37.5e6),
        ("mariscal-ramon-castilla", "mariscal-ramon-castilla", 3.79e6),
        ("Mariscal Ramón Castilla", "mariscal-ramon-castilla", 3.79e6),
        ("vrae", "vrae", 2.68e6),
        ("VRAEM", "vraem", 3.11e6),
        ("alto-huallaga", "alto-huallaga", 1.10e6),
        ("16", "16", 37.5e6),
        ("1604", "1604", 3.79e6),
    ],
)
def test_resolve_named_and_ubigeo(bdir, no_download, name, region_id, approx_ha):
    r = resolve_region(name)
    assert r.id == region_id
    assert r.geometry.is_valid and r.geometry.geom_type in ("Polygon", "MultiPolygon")
    w, s, e, n = r.geometry.bounds
    assert -82 < w < e < -68 and -19 < s < n < 0.1  # lon/lat inside Peru
    assert geodesic_area_ha(r.geometry) == pytest.approx(approx_ha, rel=0.01)


def test_vraem_contains_vrae(bdir):
    vrae, vraem = resolve_region("vrae"), resolve_region("vraem")
    assert vrae.geometry.difference(vraem.geometry).area < 1e-9 * vrae.geometry.area
    assert geodesic_area_ha(vraem.geometry) > geodesic_area_ha(vrae.geometry) * 1.1


@pytest.mark.parametrize("name", ["080910", "Pichari", "PICHARI", "district:pichari"])
def test_district_by_ubigeo_and_name(bdir, name):
    r = resolve_region(name)
    assert (r.id, r.name) == ("080910", "PICHARI (district)")


@pytest.mark.parametrize(
    ("accented", "plain", "region_id"),
    [
        ("Río Tambo", "rio tambo", "120608"),
        ("La Convención", "LA CONVENCION", "0809"),
        ("Datem del Marañón", "datem del maranon", "1607"),
    ],
)
def test_names_are_case_and_accent_insensitive(bdir, accented, plain, region_id):
    a, b = resolve_region(accented), resolve_region(plain)
    assert a.id == b.id == region_id
    assert a.geometry.equals(b.geometry)


def test_unknown_name_suggests_close_matches(bdir):
    with pytest.raises(UnknownRegionError, match="did you mean loreto") as e:
        resolve_region("lorreto")
    assert isinstance(e.value, LookupError) and "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["999999", "77", "12345"])
def test_unknown_ubigeo(bdir, name):
    with pytest.raises(UnknownRegionError, match="ubigeo"):
        resolve_region(name)


def test_ambiguous_name_lists_candidates_with_ubigeos(bdir):
    with pytest.raises(AmbiguousRegionError) as e:
        resolve_region("Ucayali")  # a department and a province of Loreto
    msg = str(e.value)
    assert "department 25 UCAYALI" in msg and "province 1606 UCAYALI" in msg and "department:Ucayali" in msg
    assert resolve_region("department:Ucayali").id == "25"
    assert resolve_region("province:ucayali").id == "1606"

    with pytest.raises(AmbiguousRegionError) as e:
        resolve_region("santa rosa")  # ten districts, one of them in the VRAE
    assert "050507" in str(e.value) and "LA MAR, AYACUCHO" in str(e.value)


def test_district_without_polygon_is_explained(bdir):
    # The generalized file keeps AMANTANI's attributes but not its polygon.
    with pytest.raises(BoundaryFileError, match=r"210103 AMANTANI.*no polygon.*province 2101"):
        resolve_region("Amantani")


def test_config_errors_are_one_line(tmp_path):
    cfg = tmp_path / "regions.yaml"
    cfg.write_text("regions:\n  x:\n    name: X\n    kind: zone\n    includes: [nowhere]\n")
    with pytest.raises(ConfigError, match="includes unknown region 'nowhere'"):
        list_regions(cfg)
    cfg.write_text("regions:\n  x:\n    name: X\n    kind: zone\n    units: [16]\n")
    with pytest.raises(ConfigError, match="not a quoted 2, 4 or 6 digit ubigeo"):
        list_regions(cfg)


# ---------------------------------------------------------------- boundary files


def test_local_directory_is_checksummed(bdir, tmp_path, monkeypatch, no_download):
    for f in bdir.glob("*.geojson"):
        shutil.copy(f, tmp_path / f.name)
    assert boundaries_dir(tmp_path) == tmp_path
    target = tmp_path / "peru_provincial_simple.geojson"
    data = bytearray(target.read_bytes())
    data[1000] ^= 0x01
    target.write_bytes(bytes(data))
    expected = boundary_files()["province"].sha256
    with pytest.raises(BoundaryFileError) as e:
        boundaries_dir(tmp_path)
    msg = str(e.value)
    assert "peru_provincial_simple.geojson" in msg and expected in msg and "replace it" in msg
    assert isinstance(e.value, ValueError)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(BoundaryFileError, match="peru_provincial_simple"):
        resolve_region("loreto")


def test_missing_local_file(bdir, tmp_path):
    shutil.copy(bdir / "peru_departamental_simple.geojson", tmp_path)
    with pytest.raises(
        BoundaryFileError, match=r"peru_provincial_simple.geojson not found .* download it from https://"
    ):
        boundaries_dir(tmp_path)


def test_download_goes_to_cache_with_known_hash(bdir, tmp_path, monkeypatch):
    """Without a local directory the files are fetched by pooch with their sha256 (faked here)."""
    import pooch

    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setattr(pooch, "os_cache", lambda project: tmp_path / "cache" / project)
    expected = {f.file: f for f in boundary_files().values()}
    calls = []

    def fake_retrieve(url, known_hash, fname, path, progressbar):
        calls.append(fname)
        assert url == expected[fname].url and known_hash == f"sha256:{expected[fname].sha256}"
        Path(path).mkdir(parents=True, exist_ok=True)
        shutil.copy(bdir / fname, Path(path) / fname)
        return str(Path(path) / fname)

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    d = boundaries_dir()
    assert d.is_relative_to(tmp_path / "cache") and sorted(calls) == sorted(expected)
    assert resolve_region("vrae").id == "vrae"


def test_offline_and_not_cached_is_one_actionable_line(monkeypatch, tmp_path):
    import pooch
    import requests

    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(pooch, "os_cache", lambda project: tmp_path / project)

    def offline(*args, **kwargs):
        raise requests.ConnectionError("no route to host")

    monkeypatch.setattr(pooch, "retrieve", offline)
    with pytest.raises(BoundaryDownloadError) as e:
        boundaries_dir()
    assert f"set --boundaries DIR or {ENV_VAR}" in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------- facts


def test_loreto_facts(bdir):
    facts = region_facts(resolve_region("loreto"))
    assert facts["area_ha"] == pytest.approx(LORETO_FILE_HA, rel=0.03)
    assert set(facts["utm_epsg"]) == {32718, 32719}  # Loreto straddles 18S and 19S
    tiles = facts["s2_tiles"]
    assert all(S2_TILE.match(t) for t in tiles)
    assert "18MXA" in tiles  # the square holding Iquitos (-73.25, -3.75)
    assert any(t.startswith("19M") for t in tiles) and any(t.startswith("18M") for t in tiles)
    # About 37 squares of 100 km would cover Loreto exactly; edges and zone splits add some.
    assert 37 < len(tiles) < 120
    assert facts["approximate"] is False and facts["approximation"] is None


def test_vraem_facts(bdir):
    facts = region_facts(resolve_region("vraem"))
    assert facts["utm_epsg"] == [32718]
    assert facts["s2_tiles"] and all(t.startswith("18L") for t in facts["s2_tiles"])
    assert facts["approximate"] is True and facts["approximation"] == APPROXIMATION_NOTE


# ---------------------------------------------------------------- true area on one job grid


@pytest.mark.parametrize("named", list_regions(), ids=lambda r: r.key)
def test_grid_area_matches_geodesic_area(bdir, named):
    """Issue acceptance: summed true pixel areas on the job grid equal the polygon's area."""
    region = resolve_region(named.key)
    c = region.geometry.centroid
    crs = utm_crs_for(c.x, c.y)  # Loreto: one zone-18 grid reaching well into zone 19
    true_ha, _ = _grid_area_ha(region, crs, RESOLUTION[named.kind])
    geodesic = geodesic_area_ha(region.geometry)
    assert abs(true_ha / geodesic - 1) < 0.005, f"{named.key}: grid {true_ha:,.0f} ha vs geodesic {geodesic:,.0f} ha"


@pytest.mark.parametrize("crs", ["EPSG:32719", "EPSG:32717"])
def test_true_pixel_areas_matter_off_zone(bdir, crs):
    """Loreto on a neighbouring zone's grid: nominal res**2 is > 0.5 % off, true areas are not."""
    region = resolve_region("loreto")
    true_ha, nominal_ha = _grid_area_ha(region, crs, 500.0)
    geodesic = geodesic_area_ha(region.geometry)
    assert abs(true_ha / geodesic - 1) < 0.0005
    assert abs(nominal_ha / geodesic - 1) > 0.005


# ---------------------------------------------------------------- command line


def _parse(argv: list[str]) -> argparse.Namespace:
    from estimator.cli.regions import add_regions_parser

    parser = argparse.ArgumentParser(prog="estimator")
    add_regions_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_list_and_show(bdir, capsys):
    args = _parse(["regions", "list"])
    assert args.fn(args) == 0
    out = capsys.readouterr().out
    assert "vraem" in out and "approximations of UNODC/DEVIDA" in out

    args = _parse(["regions", "show", "vraem", "--boundaries", str(bdir), "--json"])
    assert args.fn(args) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["id"] == "vraem" and facts["utm_epsg"] == [32718]


def test_cli_show_errors_in_one_line(bdir):
    # A subprocess, because the CLI's error handling configures logging and warnings globally.
    script = (
        "import argparse, sys\n"
        "from estimator.console import guarded\n"
        "from estimator.cli.regions import add_regions_parser\n"
        "p = argparse.ArgumentParser(prog='estimator')\n"
        "add_regions_parser(p.add_subparsers(dest='command', required=True))\n"
        "a = p.parse_args(sys.argv[1:])\n"
        "sys.exit(guarded(a.fn, a))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", script, "regions", "show", "lorreto"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2
    assert r.stderr.startswith("error:") and "did you mean loreto" in r.stderr and r.stderr.count("\n") == 1


@pytest.mark.parametrize("cmd", [["regions"], ["regions", "list"], ["regions", "show"]])
def test_cli_help_has_examples(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        _parse([*cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "python -m estimator regions" in out
