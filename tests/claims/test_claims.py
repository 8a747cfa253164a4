"""The claims registry: every seed claim is in configs/claims.yaml, and bad claims are one-line errors."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest
import yaml

from estimator.claims.registry import DEFAULT_CLAIMS, HA_PER_ACRE, Claim, load_claims
from estimator.errors import ClaimsError
from estimator.regions.named import list_regions

SEED = "claims/peru_coca_claims_sources.yaml"


@pytest.fixture(scope="module")
def seed(shared) -> dict[str, dict]:
    path = shared / SEED
    if not path.is_file():
        pytest.skip(f"claims compilation not found at {path}")
    return {c["id"]: c for c in yaml.safe_load(path.read_text(encoding="utf-8"))["claims"]}


@pytest.fixture(scope="module")
def registry() -> dict[str, Claim]:
    return {c.id: c for c in load_claims(regions=[r.key for r in list_regions()])}


def test_every_seed_claim_is_in_the_registry_with_its_figures_and_sources(seed, registry):
    assert set(seed) <= set(registry)
    for cid, s in seed.items():
        c = registry[cid]
        assert c.kind == s["kind"], cid
        assert (c.claimant, c.organisation, c.source, c.quote, c.status) == (
            s["claimant"], s["organisation"], s["source"], s["quote_or_table"], s["status"]
        ), cid
        assert c.region_label == s["region"], cid
        if c.kind == "growth_rate":
            assert c.value_ha is None and c.growth_percent_per_year == pytest.approx(100 * s["growth_rate_per_year"])
        else:
            assert c.value_ha == pytest.approx(s["figure_ha"], abs=0.005), cid
            assert c.period_start.year <= s["year"] <= c.period_end.year, cid
        for note in (s.get("note"),):
            assert note is None or note in (c.note or ""), cid


def test_acres_are_converted_and_the_original_kept(registry):
    c = registry["news2011-angulo-mariscal-ramon-castilla"]
    assert (c.value, c.unit) == (7000, "acres")
    assert c.value_ha == pytest.approx(7000 * HA_PER_ACRE) == pytest.approx(2832.80, abs=0.01)
    assert "7000 ha" in (c.note or "")  # the mistranslation hypothesis travels with the claim


def test_news_figures_of_2011(registry):
    """The figures the project was started for (DESIGN.md), with the right kinds."""
    expect = {
        "news2011-soberon-loreto-en": ("upper_bound", 3000), "news2011-soberon-loreto-es": ("point", 3500),
        "news2011-angulo-loreto": ("lower_bound", 25000), "news2011-vasquez-loreto": ("point", 40000),
        "news2011-unodc-vrae": ("point", 19723), "news2011-unodc-alto-huallaga": ("point", 13000),
        "news2011-unodc-national": ("point", 61200),
    }
    for cid, (kind, ha) in expect.items():
        assert (registry[cid].kind, registry[cid].value_ha) == (kind, ha)
    g = registry["news2011-dirandro-growth"]
    assert (g.kind, g.growth_percent_per_year, g.region) == ("growth_rate", 300, "loreto")


def test_survey_figures_carry_the_31_december_cut_off(registry):
    c = registry["devida-dept-loreto-2022"]
    assert c.period_start == c.period_end == dt.date(2022, 12, 31)
    s = registry["news2011-vasquez-loreto"]
    assert (s.period_start, s.period_end) == (dt.date(2011, 1, 1), dt.date(2011, 12, 31))


def test_regions_are_named_or_explicitly_null(registry):
    named = {r.key for r in list_regions()}
    by_region = {c.region for c in registry.values()}
    assert by_region - {None} <= named
    assert {"peru", "loreto", "vrae", "vraem", "alto-huallaga", "mariscal-ramon-castilla"} <= by_region
    nulls = [c for c in registry.values() if c.region is None]
    assert nulls and all(c.region_label for c in nulls)
    assert registry["devida-zone-huallaga-2018"].region is None  # not UNODC's Alto Huallaga


GOOD = {
    "id": "x-1", "region": "loreto", "region_label": "Loreto", "year": 2011, "kind": "point", "value": 10,
    "unit": "ha", "claimant": "a", "organisation": "b", "source": "c", "quote": "d", "status": "e",
}


@pytest.mark.parametrize(
    ("edit", "field", "fragment"),
    [
        ({"kind": "guess"}, "kind", "must be one of point, lower_bound, upper_bound, growth_rate"),
        ({"unit": "km2"}, "unit", "must be one of ha, acres, percent_per_year"),
        ({"source": None}, "source", "Input should be a valid string"),
        ({"figure_ha": 3}, "figure_ha", "unknown field"),
        ({"reference_date": "2011-12-31"}, "reference_date", "exactly one of reference_date, year or period"),
        ({"year": None}, "reference_date", "exactly one of"),
        ({"year": None, "period": "2011-2012"}, "period", "START/END"),
        ({"year": None, "period": "2012/2011"}, "period", "ends (2011) before it starts (2012)"),
        ({"unit": "percent_per_year"}, "unit", "a point claim is an area in ha or acres"),
        ({"kind": "growth_rate"}, "unit", "a growth_rate is in percent_per_year"),
        ({"value": -5}, "value", "cannot be negative"),
        ({"value": "many"}, "value", "valid number"),
    ],
)
def test_malformed_claim_is_one_line_naming_id_and_field(tmp_path, edit, field, fragment):
    raw = {k: v for k, v in {**GOOD, **edit}.items() if v is not None or k == "source"}
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump({"claims": [GOOD | {"id": "ok"}, raw]}))
    with pytest.raises(ClaimsError) as e:
        load_claims(path)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: claim 'x-1': field '{field}': "), msg
    assert fragment in msg, msg


def test_missing_field_duplicate_id_and_unknown_region(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump({"claims": [{k: v for k, v in GOOD.items() if k != "quote"}]}))
    with pytest.raises(ClaimsError, match=r"claim 'x-1': field 'quote': required$"):
        load_claims(path)
    path.write_text(yaml.safe_dump({"claims": [GOOD, GOOD]}))
    with pytest.raises(ClaimsError, match=r"claim 'x-1': field 'id': duplicate id"):
        load_claims(path)
    path.write_text(yaml.safe_dump({"claims": [GOOD | {"region": "atlantis"}]}))
    assert load_claims(path)[0].region == "atlantis"  # any run's region id, unless told which are valid
    with pytest.raises(ClaimsError, match=r"field 'region': 'atlantis' is not a named region"):
        load_claims(path, regions=["loreto"])
    path.write_text(yaml.safe_dump({"claims": [{k: v for k, v in GOOD.items() if k != "id"}]}))
    with pytest.raises(ClaimsError, match=r"claim #1 \(no id\): field 'id': required"):
        load_claims(path)
    path.write_text("claims: [a\n")
    with pytest.raises(ClaimsError, match="not valid YAML"):
        load_claims(path)
    with pytest.raises(ClaimsError, match="not found"):
        load_claims(tmp_path / "nope.yaml")


def test_compare_command_reports_a_bad_registry_in_one_line(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump({"claims": [GOOD | {"kind": "about"}]}))
    r = subprocess.run(
        [sys.executable, "-m", "estimator", "compare", str(tmp_path), "--claims", str(path)], capture_output=True, text=True
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == f"error: {path}: claim 'x-1': field 'kind': must be one of point, lower_bound, upper_bound, growth_rate"


def test_default_registry_path():
    assert DEFAULT_CLAIMS.name == "claims.yaml" and DEFAULT_CLAIMS.parent.name == "configs"
