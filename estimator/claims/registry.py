"""The claims registry: reported and official coca figures, validated once on load.

A claim is a figure someone published about a region and a time: a point figure, a
"no less than" (``lower_bound``), a "no more than" (``upper_bound``) or a growth rate. The
registry (``configs/claims.yaml``; format in ``docs/claims.md``) keeps each figure as
published, with its unit, claimant, source and quote, so a comparison can be traced back.

- ``region`` is the id of a named region (``configs/regions.yaml``) or of a region in a
  job's own regions file; ``null`` when no region definition matches what the claim is
  about (e.g. a DEVIDA monitoring zone whose limits are not published): such a claim is
  listed, never compared. ``region_label`` is the region as the source names it.
- Time is one of ``reference_date`` (a cut-off, e.g. 2010-12-31 for a UNODC/DEVIDA survey
  year), ``year`` (a statement about a calendar year) or ``period`` (``START/END``, each a
  year or a date). All normalise to a closed date interval (:attr:`Claim.period_start`,
  :attr:`Claim.period_end`); a reference date is an interval of one day.
- ``unit`` is ``ha`` or ``acres`` for areas (acres are converted at 0.40468564224 ha, the
  international acre; the original value and unit are kept) and ``percent_per_year`` for
  growth rates.

Interface: :class:`Claim`, :func:`load_claims`, :data:`DEFAULT_CLAIMS`, :data:`HA_PER_ACRE`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from estimator.errors import ClaimsError

__all__ = ["DEFAULT_CLAIMS", "HA_PER_ACRE", "KINDS", "Claim", "ClaimsError", "load_claims"]

#: The project's claims registry.
DEFAULT_CLAIMS = Path(__file__).resolve().parents[2] / "configs" / "claims.yaml"
#: Hectares per international acre (exact: 0.0254 m per inch).
HA_PER_ACRE = 0.40468564224
KINDS = ("point", "lower_bound", "upper_bound", "growth_rate")
_AREA_UNITS = ("ha", "acres")
_GROWTH_UNIT = "percent_per_year"
_PERIOD_PART = re.compile(r"^\d{4}(-\d{2}-\d{2})?$")


class Claim(BaseModel):
    """One published figure, as published, with where it comes from."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    id: str = Field(
        min_length=1,
        pattern=r"^[^|\x00-\x1f]+$",
        description="Unique id, e.g. news2011-angulo-loreto (no '|' or line break: ids are table cells).",
    )
    region: str | None = Field(description="Region id the claim is about (a named region), or null: no matching region.")
    region_label: str = Field(min_length=1, description="The region as the source names it.")
    region_note: str | None = Field(None, description="How the claim's region differs from the named region (a warning).")
    reference_date: dt.date | None = Field(None, description="Cut-off date of the figure (UNODC/DEVIDA: 31 December).")
    year: int | None = Field(None, ge=1900, le=2100, description="Calendar year a statement is about.")
    period: str | None = Field(None, description="START/END, each YYYY or YYYY-MM-DD (a growth rate's span).")
    kind: Literal["point", "lower_bound", "upper_bound", "growth_rate"]
    value: float = Field(description="The figure as published, in `unit`.")
    unit: Literal["ha", "acres", "percent_per_year"]
    claimant: str = Field(min_length=1, description="Who said it.")
    organisation: str = Field(min_length=1, description="On whose behalf.")
    source: str = Field(min_length=1, description="Where it was published (addresses kept verbatim).")
    quote: str = Field(min_length=1, description="The words or table row carrying the figure.")
    status: str = Field(min_length=1, description="Verification status, e.g. verified_primary, attested, unverified.")
    note: str | None = Field(None, description="Anything a reader of the comparison must know.")

    @field_validator("period")
    @classmethod
    def _period_form(cls, v: str | None) -> str | None:
        if v is not None:
            parts = v.split("/")
            if len(parts) != 2 or not all(_PERIOD_PART.match(p) for p in parts):
                raise ValueError("must be START/END with YYYY or YYYY-MM-DD parts, e.g. 2004/2011")
            start, end = _start_of(parts[0]), _end_of(parts[1])
            if end < start:
                raise ValueError(f"ends ({parts[1]}) before it starts ({parts[0]})")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Claim:
        given = [k for k in ("reference_date", "year", "period") if getattr(self, k) is not None]
        if len(given) != 1:
            raise _FieldError("reference_date", "give exactly one of reference_date, year or period"
                              + (f" (got {', '.join(given)})" if given else ""))
        if self.kind == "growth_rate":
            if self.unit != _GROWTH_UNIT:
                raise _FieldError("unit", f"a growth_rate is in {_GROWTH_UNIT}, not {self.unit}")
            if self.value <= -100:
                raise _FieldError("value", "a growth rate is above -100 percent per year")
        else:
            if self.unit not in _AREA_UNITS:
                raise _FieldError("unit", f"a {self.kind} claim is an area in ha or acres, not {self.unit}")
            if self.value < 0:
                raise _FieldError("value", "an area cannot be negative")
        return self

    @property
    def value_ha(self) -> float | None:
        """The area in hectares (None for a growth rate)."""
        if self.kind == "growth_rate":
            return None
        return self.value * HA_PER_ACRE if self.unit == "acres" else self.value

    @property
    def growth_percent_per_year(self) -> float | None:
        return self.value if self.kind == "growth_rate" else None

    @property
    def period_start(self) -> dt.date:
        """First day the claim is about."""
        return self._interval()[0]

    @property
    def period_end(self) -> dt.date:
        """Last day the claim is about (inclusive)."""
        return self._interval()[1]

    def _interval(self) -> tuple[dt.date, dt.date]:
        if self.reference_date is not None:
            return self.reference_date, self.reference_date
        if self.year is not None:
            return dt.date(self.year, 1, 1), dt.date(self.year, 12, 31)
        start, end = str(self.period).split("/")
        return _start_of(start), _end_of(end)


class _FieldError(ValueError):
    """A cross-field problem, reported against one field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _start_of(part: str) -> dt.date:
    return dt.date(int(part), 1, 1) if len(part) == 4 else dt.date.fromisoformat(part)


def _end_of(part: str) -> dt.date:
    return dt.date(int(part), 12, 31) if len(part) == 4 else dt.date.fromisoformat(part)


def _describe(err: ValidationError) -> tuple[str, str]:
    """(field, message) of a claim's first validation problem, in the registry's words."""
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(claim)"
    kind = first["type"]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, _FieldError):
        return cause.field, str(cause)
    if kind == "missing":
        return field, "required"
    if kind == "extra_forbidden":
        return field, f"unknown field (accepted: {', '.join(Claim.model_fields)})"
    if kind == "literal_error" and field == "kind":
        return field, f"must be one of {', '.join(KINDS)}"
    if kind == "literal_error" and field == "unit":
        return field, f"must be one of {', '.join((*_AREA_UNITS, _GROWTH_UNIT))}"
    return field, str(first["msg"]).removeprefix("Value error, ")


def _read(path: Path) -> list[Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClaimsError(f"{path}: claims file not found; pass --claims FILE or restore configs/claims.yaml") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ClaimsError(f"{path}: not valid YAML{where}; fix the syntax") from None
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        raise ClaimsError(f"{path}: expected a mapping with a 'claims' list")
    extra = set(data) - {"schema_version", "claims"}
    if extra:
        raise ClaimsError(f"{path}: unknown top-level key(s) {', '.join(sorted(extra))}; only schema_version and claims")
    if data.get("schema_version", 1) != 1:
        raise ClaimsError(f"{path}: schema_version {data['schema_version']} is not supported (this version reads 1)")
    return list(data["claims"])


def load_claims(path: Path | str | None = None, *, regions: Sequence[str] | None = None) -> list[Claim]:
    """Read and validate a claims registry.

    Parameters
    ----------
    path
        Registry file (default :data:`DEFAULT_CLAIMS`).
    regions
        When given, every non-null ``region`` must be one of these ids (e.g. the keys of
        ``configs/regions.yaml``).

    Raises
    ------
    ClaimsError
        One line naming the file, the claim id and the field, e.g.
        ``configs/claims.yaml: claim 'x': field 'kind': must be one of point, ...``.
    """
    path = Path(path) if path is not None else DEFAULT_CLAIMS
    claims: list[Claim] = []
    seen: set[str] = set()
    for i, raw in enumerate(_read(path)):
        cid = raw.get("id") if isinstance(raw, dict) else None
        label = f"claim {cid!r}" if isinstance(cid, str) and cid else f"claim #{i + 1} (no id)"
        if not isinstance(raw, dict):
            raise ClaimsError(f"{path}: {label}: expected a mapping of fields, got {type(raw).__name__}")
        try:
            claim = Claim.model_validate(raw)
        except ValidationError as e:
            field, msg = _describe(e)
            raise ClaimsError(f"{path}: {label}: field '{field}': {msg}") from None
        if claim.id in seen:
            raise ClaimsError(f"{path}: {label}: field 'id': duplicate id; ids must be unique")
        if regions is not None and claim.region is not None and claim.region not in regions:
            raise ClaimsError(
                f"{path}: {label}: field 'region': '{claim.region}' is not a named region "
                f"({', '.join(regions)}); use one of them or null with a region_label"
            )
        seen.add(claim.id)
        claims.append(claim)
    return claims
