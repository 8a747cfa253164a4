"""Compare stage: set each claim beside the estimate of its region and period.

Verdicts (pure functions, :func:`judge_area` and :func:`judge_growth`) use the estimate's
95 % confidence interval ``[lo, hi]`` and a claim value ``v`` in hectares:

==============  =========================  ===========================
kind            consistent                 contradicted
==============  =========================  ===========================
point           ``lo <= v <= hi``          ``v < lo`` or ``v > hi``
lower_bound     ``hi >= v``                ``hi < v``
upper_bound     ``lo <= v``                ``lo > v``
growth_rate     ``g`` in the implied CI    ``g`` outside it
==============  =========================  ===========================

A verdict is *inconclusive*, with the reason, when

- the run's period does not overlap the claim's (``period mismatch``; see
  :func:`period_relation`);
- the estimate has no CI (a mapped area: run ``estimator assess`` first);
- the region is only partly observed (``observed_fraction`` below ``min_observed``,
  default 0.9) and the run did not extrapolate to the whole region: the estimate covers
  the observed part only, and a claim is about the whole region. The whole region holds at
  least the observed part, so evidence that survives adding unobserved area still counts:
  ``lo > v`` contradicts a point or upper-bound claim, ``hi >= v`` supports a lower bound;
- a *consistent* outcome comes from a CI too wide to discriminate: half-width above
  ``max_rel_half_width`` (default 1.0) times the estimate. Contradictions stand whatever
  the width: a wide interval that still excludes ``v`` is evidence.

Growth: with runs of two periods (periods that do not overlap) the implied annual growth
is ``r = (A2/A1)**(1/t) - 1``, ``t`` the years between the periods' midpoints. Its CI comes
from the delta method on the log ratio, ``SE(ln A2/A1)**2 = (SE1/A1)**2 + (SE2/A2)**2``
(the two estimates come from independent samples), transformed back; inconclusive when an
estimate's relative SE exceeds 0.5, where that first-order approximation fails.

Interface: :func:`compare` (read, judge, write), :func:`compare_runs`, :func:`format_table`, :func:`judge_area`,
:func:`judge_growth`, :func:`implied_growth`, :func:`period_relation`, :func:`read_run`.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from estimator.claims.registry import Claim
from estimator.errors import EstimatorError
from estimator.location import check_writable
from estimator.run.rundir import Comparison, Run, RunDirError, is_strata_manifest, read_estimates, read_manifest
from estimator.warnings import ClaimPeriodMismatchWarning, RegionDefinitionWarning

__all__ = [
    "MAX_REL_HALF_WIDTH",
    "MIN_OBSERVED",
    "Estimate",
    "Growth",
    "RunEstimates",
    "Verdict",
    "compare",
    "compare_claims",
    "compare_runs",
    "format_table",
    "implied_growth",
    "judge_area",
    "judge_growth",
    "period_relation",
    "read_run",
]

MIN_OBSERVED = 0.9
MAX_REL_HALF_WIDTH = 1.0
#: Relative SE above which the delta-method growth interval is not trusted.
MAX_REL_SE_GROWTH = 0.5
Z95 = 1.96
NO_CI = "no confidence interval (mapped estimate only): run `estimator sample` and `estimator assess` first"
NEEDS_TWO_PERIODS = "needs runs of two periods"
PERIOD_MISMATCH = "period mismatch"

Outcome = Literal["consistent", "contradicted", "inconclusive"]


@dataclass(frozen=True)
class Estimate:
    """The figure of one region in one run that a claim is set beside."""

    area_ha: float
    ci95_low_ha: float | None
    ci95_high_ha: float | None
    observed_fraction: float | None
    """Share of the region with a clear observation (None: unknown)."""
    whole_region: bool = False
    """True when the figure was extrapolated to the whole region (coverage ``extrapolate``)."""
    estimator: str = "mapped"
    se_ha: float | None = None

    @property
    def has_ci(self) -> bool:
        return self.ci95_low_ha is not None and self.ci95_high_ha is not None

    @property
    def se(self) -> float | None:
        """Standard error; from the upper half of the CI when not recorded (the lower end may be clipped at 0)."""
        if self.se_ha is not None:
            return self.se_ha
        return None if self.ci95_high_ha is None else (self.ci95_high_ha - self.area_ha) / Z95

    @classmethod
    def from_record(cls, r: Mapping[str, Any]) -> Estimate:
        """The whole-region figure when the run extrapolated one with a CI, else the observed part's."""
        if r.get("coverage_policy") == "extrapolated" and r.get("extrapolated_ci95_high_ha") is not None:
            return cls(
                float(r["extrapolated_area_ha"]), r["extrapolated_ci95_low_ha"], r["extrapolated_ci95_high_ha"],
                r.get("observed_fraction"), True, f"{r.get('estimator', 'mapped')}+extrapolated",
            )
        return cls(
            float(r["area_ha"]), r.get("ci95_low_ha"), r.get("ci95_high_ha"), r.get("observed_fraction"),
            False, str(r.get("estimator", "mapped")), r.get("se_area_ha"),
        )


@dataclass(frozen=True)
class Verdict:
    verdict: Outcome
    reason: str | None = None


@dataclass(frozen=True)
class Growth:
    """Implied annual growth in percent per year, with its 95 % CI (None without one)."""

    percent_per_year: float
    ci95_low: float | None
    ci95_high: float | None


def _partial_reason(est: Estimate, min_observed: float) -> str | None:
    if est.whole_region:
        return None
    f = est.observed_fraction
    if f is None:
        return "region only partly observed (observed fraction unknown); the estimate covers the observed part only"
    if f < min_observed:
        return (
            f"region only partly observed ({100 * f:.1f} % < {100 * min_observed:.0f} %); the estimate covers "
            "the observed part only (rerun with coverage.unobserved: extrapolate for a whole-region figure)"
        )
    return None


def judge_area(
    kind: str, value_ha: float, est: Estimate, *,
    min_observed: float = MIN_OBSERVED, max_rel_half_width: float = MAX_REL_HALF_WIDTH,
) -> Verdict:
    """Verdict of an area claim (``point``, ``lower_bound``, ``upper_bound``); see the module doc."""
    if est.ci95_low_ha is None or est.ci95_high_ha is None:
        return Verdict("inconclusive", NO_CI)
    lo, hi, v = est.ci95_low_ha, est.ci95_high_ha, value_ha
    if kind == "point":
        ok = lo <= v <= hi
    elif kind == "lower_bound":
        ok = hi >= v
    elif kind == "upper_bound":
        ok = lo <= v
    else:
        raise ValueError(f"judge_area takes an area claim, not {kind!r}")
    partial = _partial_reason(est, min_observed)
    # Adding unobserved area can only raise the whole-region figure.
    if partial is not None and not ((kind == "lower_bound" and ok) or (kind != "lower_bound" and lo > v)):
        return Verdict("inconclusive", partial)
    if ok:
        half = (hi - lo) / 2
        rel = half / est.area_ha if est.area_ha > 0 else (math.inf if half > 0 else 0.0)
        if rel > max_rel_half_width:
            return Verdict(
                "inconclusive",
                f"CI too wide to discriminate (half-width {100 * rel:.0f} % of the estimate > {100 * max_rel_half_width:.0f} %)",
            )
        return Verdict("consistent")
    return Verdict("contradicted")


def implied_growth(a1: float, se1: float | None, a2: float, se2: float | None, years: float, z: float = Z95) -> Growth:
    """Annual growth from area ``a1`` to ``a2`` over ``years``, CI by the delta method on the log ratio."""
    if a1 <= 0 or a2 <= 0 or years <= 0:
        raise ValueError("growth needs two positive areas and a positive time span")
    log_ratio = math.log(a2 / a1)
    pct = 100 * math.expm1(log_ratio / years)
    if se1 is None or se2 is None:
        return Growth(pct, None, None)
    s = math.hypot(se1 / a1, se2 / a2)
    return Growth(pct, 100 * math.expm1((log_ratio - z * s) / years), 100 * math.expm1((log_ratio + z * s) / years))


def judge_growth(
    claimed_percent: float, e1: Estimate, e2: Estimate, years: float, *, min_observed: float = MIN_OBSERVED,
) -> tuple[Verdict, Growth | None]:
    """Verdict of a growth claim against estimates of one region in two periods (``e1`` earlier)."""
    if e1.area_ha <= 0 or e2.area_ha <= 0:
        return Verdict("inconclusive", "an estimate is zero: growth is undefined"), None
    if not (e1.has_ci and e2.has_ci):
        return Verdict("inconclusive", NO_CI), implied_growth(e1.area_ha, None, e2.area_ha, None, years)
    growth = implied_growth(e1.area_ha, e1.se, e2.area_ha, e2.se, years)
    partial = _partial_reason(e1, min_observed) or _partial_reason(e2, min_observed)
    if partial is not None:
        return Verdict("inconclusive", partial), growth
    rel = max(float(e1.se or 0) / e1.area_ha, float(e2.se or 0) / e2.area_ha)
    if rel > MAX_REL_SE_GROWTH:
        return Verdict("inconclusive", f"CI too wide to discriminate (relative SE {100 * rel:.0f} % > 50 %)"), growth
    ok = growth.ci95_low is not None and growth.ci95_high is not None and growth.ci95_low <= claimed_percent <= growth.ci95_high
    return Verdict("consistent" if ok else "contradicted"), growth


def period_relation(claim: tuple[dt.date, dt.date], run: tuple[dt.date, dt.date]) -> Literal["match", "partial", "none"]:
    """How a claim's date interval relates to a run's period (both closed intervals).

    ``match``: one contains the other (a 31 December cut-off inside the run's period, or a
    run inside the calendar year a statement is about); ``partial``: they overlap otherwise
    (the verdict stands, with a warning); ``none``: no common day (period mismatch).
    """
    (cs, ce), (rs, re) = claim, run
    if ce < rs or cs > re:
        return "none"
    if (rs <= cs and ce <= re) or (cs <= rs and re <= ce):
        return "match"
    return "partial"


@dataclass(frozen=True)
class RunEstimates:
    """What compare needs from a run directory (estimates.json + manifest.json)."""

    run_dir: Path
    period: str
    start: dt.date
    end: dt.date
    model_id: str
    synthetic: bool
    target_class: str
    region_notes: dict[str, str]
    records: dict[str, dict[str, Any]]
    """Target-class record per region id."""

    @property
    def midpoint(self) -> dt.date:
        return self.start + (self.end - self.start) / 2


def read_run(path: Path | str) -> RunEstimates:
    """Read a finished run's estimates and manifest; a one-line error when it is not one."""
    path = Path(path)
    manifest = read_manifest(path)
    estimates = read_estimates(path)
    if is_strata_manifest(manifest) and not estimates["records"]:
        raise RunDirError(
            f"{path} is a cold start (model: none): it holds strata, no estimate yet; `estimator sample` it, label "
            "the sample and `estimator assess` it, then compare"
        )
    target = manifest.get("model", {}).get("target_class") or manifest.get("config", {}).get("target_class", "coca")
    period = str(estimates.get("period") or manifest["period"])
    start, _, end = period.partition("/")
    records = {r["region"]: r for r in estimates["records"] if r["class"] == target}
    notes = {r["id"]: str(r.get("note") or "") for r in manifest.get("regions", [])}
    return RunEstimates(
        path, period, dt.date.fromisoformat(start), dt.date.fromisoformat(end),
        str(manifest.get("model", {}).get("id") or estimates.get("model_id", "")),
        bool(manifest.get("synthetic") or estimates.get("synthetic")), target, notes, records,
    )


def _iso(d: dt.date) -> str:
    return d.isoformat()


def _claim_period(c: Claim) -> str:
    return _iso(c.period_start) if c.period_start == c.period_end else f"{_iso(c.period_start)}/{_iso(c.period_end)}"


def _region_warnings(claim: Claim, run: RunEstimates) -> list[str]:
    out = []
    if claim.region_note:
        out.append(f"region definition: {claim.region_note}")
    note = run.region_notes.get(str(claim.region))
    if note:
        out.append(f"run region '{claim.region}': {note}")
    return out


def _unmatched_reason(claim: Claim, runs: Sequence[RunEstimates], named_units: Mapping[str, frozenset[str]]) -> str:
    if claim.region is None:
        return f"no matching region: '{claim.region_label}' has no named region (region: null)"
    present = sorted({r for run in runs for r in run.records})
    why = f"region '{claim.region}' is not in the run(s) (regions: {', '.join(present)})"
    mine = named_units.get(claim.region)
    related = [r for r in present if mine is not None and r in named_units and (named_units[r] < mine or mine < named_units[r])]
    if related:
        why += f"; {', '.join(related)} is a different definition of an overlapping area, not compared"
    return why


def _pick_run(claim: Claim, runs: Sequence[RunEstimates]) -> tuple[int, str] | None:
    """The run to set an area claim beside: best period relation, then the nearest in time, one with a CI, the first."""
    rank = {"match": 0, "partial": 1, "none": 2}
    best: tuple[tuple[int, int, int, int], int, str] | None = None
    for i, run in enumerate(runs):
        rec = run.records.get(str(claim.region))
        if rec is None:
            continue
        rel = period_relation((claim.period_start, claim.period_end), (run.start, run.end))
        gap = max((run.start - claim.period_end).days, (claim.period_start - run.end).days, 0)
        key = (rank[rel], gap, 0 if rec.get("ci95_low_ha") is not None else 1, i)
        if best is None or key < best[0]:
            best = (key, i, rel)
    return None if best is None else (best[1], best[2])


def _area_entry(claim: Claim, runs: Sequence[RunEstimates], i: int, rel: str, **limits: float) -> dict[str, Any]:
    run = runs[i]
    rec = run.records[str(claim.region)]
    est = Estimate.from_record(rec)
    value = float(claim.value_ha or 0.0)
    warns = _region_warnings(claim, run)
    if rel == "none":
        verdict = Verdict("inconclusive", f"{PERIOD_MISMATCH}: claim about {_claim_period(claim)}, run covers {run.period}")
        warns.insert(0, f"period mismatch: the claim is about {_claim_period(claim)}, the run covers {run.period}")
    else:
        verdict = judge_area(claim.kind, value, est, **limits)
        if rel == "partial":
            warns.insert(0, f"period only partly shared: claim {_claim_period(claim)}, run {run.period}")
    return {
        "verdict": verdict.verdict, "reason": verdict.reason,
        "ratio": value / est.area_ha if est.area_ha > 0 else None,
        "estimate": {"run": i, "area_ha": est.area_ha, "ci95_low_ha": est.ci95_low_ha, "ci95_high_ha": est.ci95_high_ha,
                     "estimator": est.estimator},
        "implied_growth": None, "warnings": warns,
    }


def _growth_entry(claim: Claim, runs: Sequence[RunEstimates], min_observed: float) -> dict[str, Any]:
    having = sorted((i for i, run in enumerate(runs) if str(claim.region) in run.records), key=lambda i: runs[i].start)
    entry: dict[str, Any] = {"ratio": None, "estimate": None, "implied_growth": None, "warnings": []}
    if len(having) < 2 or runs[having[0]].end >= runs[having[-1]].start:
        n = len({(runs[i].start, runs[i].end) for i in having})
        return {**entry, "verdict": "inconclusive", "reason": f"{NEEDS_TWO_PERIODS} (the runs give {n} for this region)"}
    i, j = having[0], having[-1]
    a, b = runs[i], runs[j]
    entry["warnings"] = _region_warnings(claim, b)
    span = (a.midpoint, b.midpoint)
    rel = period_relation((claim.period_start, claim.period_end), span)
    years = (b.midpoint - a.midpoint).days / 365.25
    verdict, growth = judge_growth(
        float(claim.value), Estimate.from_record(a.records[str(claim.region)]), Estimate.from_record(b.records[str(claim.region)]),
        years, min_observed=min_observed,
    )
    if growth is not None:
        entry["implied_growth"] = {"percent_per_year": growth.percent_per_year, "ci95_low": growth.ci95_low,
                                   "ci95_high": growth.ci95_high, "runs": [i, j]}
    between = f"{_iso(span[0])}/{_iso(span[1])}"
    if rel == "none":
        entry["warnings"].insert(0, f"period mismatch: the claim is about {_claim_period(claim)}, the runs span {between}")
        verdict = Verdict("inconclusive", f"{PERIOD_MISMATCH}: claim about {_claim_period(claim)}, runs span {between}")
    elif rel == "partial":
        entry["warnings"].insert(0, f"period only partly shared: claim {_claim_period(claim)}, runs span {between}")
    return {**entry, "verdict": verdict.verdict, "reason": verdict.reason}


def compare_runs(
    runs: Sequence[RunEstimates], claims: Sequence[Claim], *,
    min_observed: float = MIN_OBSERVED, max_rel_half_width: float = MAX_REL_HALF_WIDTH,
    named_units: Mapping[str, frozenset[str]] | None = None,
) -> dict[str, Any]:
    """The comparison (``comparison.json`` contents): estimates, a verdict per matched claim, unmatched claims.

    ``named_units`` (named region id -> ubigeo set) lets the reason of an unmatched claim
    say that a run holds a differently defined overlapping region (VRAE vs VRAEM).
    Emits one :class:`ClaimPeriodMismatchWarning` and one :class:`RegionDefinitionWarning`
    summarising the claims concerned.
    """
    if not runs:
        raise EstimatorError("compare needs at least one run directory")
    targets = {r.target_class for r in runs}
    if len(targets) > 1:
        raise EstimatorError(f"the runs estimate different target classes ({', '.join(sorted(targets))}); compare runs of one model target")
    out: dict[str, Any] = {
        "schema_version": 1,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "synthetic": any(r.synthetic for r in runs),
        "target_class": runs[0].target_class,
        "runs": [
            {"run_dir": str(r.run_dir), "period": r.period, "period_start": _iso(r.start), "period_end": _iso(r.end),
             "model_id": r.model_id, "synthetic": r.synthetic}
            for r in runs
        ],
        "estimates": [
            {"run": i, "region": rec["region"], "region_name": rec.get("region_name") or rec["region"], "period": r.period,
             "estimator": rec.get("estimator", "mapped"), "area_ha": rec["area_ha"], "ci95_low_ha": rec.get("ci95_low_ha"),
             "ci95_high_ha": rec.get("ci95_high_ha"), "mapped_area_ha": rec.get("mapped_area_ha"),
             "observed_fraction": rec.get("observed_fraction"), "failed_read_fraction": rec.get("failed_read_fraction"),
             "region_area_ha": rec.get("region_area_ha"), "users_accuracy": rec.get("users_accuracy"),
             "producers_accuracy": rec.get("producers_accuracy"),
             "coverage_policy": rec.get("coverage_policy"), "extrapolated_area_ha": rec.get("extrapolated_area_ha"),
             "extrapolated_ci95_low_ha": rec.get("extrapolated_ci95_low_ha"),
             "extrapolated_ci95_high_ha": rec.get("extrapolated_ci95_high_ha")}
            for i, r in enumerate(runs) for rec in r.records.values()
        ],
        "claims": [],
        "unmatched": [],
    }
    region_names = {rec["region"]: rec.get("region_name") or rec["region"] for r in runs for rec in r.records.values()}
    for c in claims:
        picked = _pick_run(c, runs) if c.region is not None else None
        if picked is None:
            out["unmatched"].append({"id": c.id, "reason": _unmatched_reason(c, runs, named_units or {})})
            continue
        if c.kind == "growth_rate":
            judged = _growth_entry(c, runs, min_observed)
        else:
            judged = _area_entry(c, runs, *picked, min_observed=min_observed, max_rel_half_width=max_rel_half_width)
        out["claims"].append({
            "id": c.id, "region": c.region, "region_name": region_names[str(c.region)], "region_label": c.region_label,
            "kind": c.kind, "value_ha": c.value_ha, "growth_percent_per_year": c.growth_percent_per_year,
            "original_value": c.value, "original_unit": c.unit,
            "period_start": _iso(c.period_start), "period_end": _iso(c.period_end),
            "claimant": c.claimant, "organisation": c.organisation, "source": c.source, "quote": c.quote,
            "status": c.status, "note": c.note, **judged,
        })
    _summary_warnings(out["claims"])
    return out


def _summary_warnings(judged: Sequence[Mapping[str, Any]]) -> None:
    period = [c["id"] for c in judged if any(w.startswith(("period mismatch", "period only")) for w in c["warnings"])]
    region = [c["id"] for c in judged if any(w.startswith(("region definition", "run region")) for w in c["warnings"])]
    if period:
        warnings.warn(ClaimPeriodMismatchWarning(
            f"{len(period)} claim(s) refer to another period than the run(s): {', '.join(period)}"), stacklevel=3)
    if region:
        warnings.warn(RegionDefinitionWarning(
            f"{len(region)} claim(s) use a region defined differently from the run's: {', '.join(region)}"), stacklevel=3)


def _fmt_ha(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.1f}"


def _claim_value(c: Mapping[str, Any]) -> str:
    if c["kind"] == "growth_rate":
        return f"{c['growth_percent_per_year']:+g} %/yr"
    sign = {"lower_bound": ">= ", "upper_bound": "<= "}.get(c["kind"], "")
    text = f"{sign}{_fmt_ha(c['value_ha'])} ha"
    return text + (f" ({c['original_value']:,g} {c['original_unit']})" if c["original_unit"] != "ha" else "")


def _estimate_text(c: Mapping[str, Any]) -> str:
    g, e = c.get("implied_growth"), c.get("estimate")
    if g is not None:
        ci = "" if g["ci95_low"] is None else f" [{g['ci95_low']:+.0f} - {g['ci95_high']:+.0f}]"
        return f"{g['percent_per_year']:+.0f} %/yr{ci}"
    if e is None:
        return "-"
    ci = "" if e["ci95_low_ha"] is None else f" [{_fmt_ha(e['ci95_low_ha'])} - {_fmt_ha(e['ci95_high_ha'])}]"
    return f"{_fmt_ha(e['area_ha'])} ha{ci}"


def format_table(comparison: Mapping[str, Any]) -> str:
    """The verdict table printed by ``estimator compare``."""
    lines = []
    if comparison["synthetic"]:
        lines.append("SYNTHETIC DEMO DATA - estimates (and demo claims) come from a generated world, not real imagery")
    periods = ", ".join(f"[{i}] {r['period']}" for i, r in enumerate(comparison["runs"]))
    lines.append(f"claims vs estimates of {comparison['target_class']} (runs: {periods})")
    head = ("claim", "region", "kind", "claim value", "estimate [95% CI]", "ratio", "verdict", "reason")
    rows = [
        (c["id"], c["region"], c["kind"], _claim_value(c), _estimate_text(c),
         "-" if c["ratio"] is None else f"{c['ratio']:.2f}", c["verdict"], c["reason"] or "")
        for c in comparison["claims"]
    ]
    widths = [max(len(str(r[k])) for r in [head, *rows]) for k in range(len(head) - 1)]
    for r in [head, *rows] if rows else []:
        lines.append(("  ".join(str(v).ljust(w) for v, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]).rstrip())
    if not rows:
        lines.append("(no claim concerns the regions of these runs)")
    for c in comparison["claims"]:
        # A period mismatch is already the verdict's reason.
        lines.extend(f"warning [{c['id']}]: {w}" for w in c["warnings"] if not w.startswith(PERIOD_MISMATCH))
    unmatched = comparison["unmatched"]
    if unmatched:
        no_region = sum(u["reason"].startswith("no matching region") for u in unmatched)
        lines.append(
            f"{len(unmatched)} claim(s) not compared: {no_region} with no matching region, "
            f"{len(unmatched) - no_region} about regions not in the run(s) (reasons in comparison.json)"
        )
    return "\n".join(lines)


def compare(
    run_dirs: Sequence[Path | str], *, claims_path: Path | str | None = None, out_dir: Path | str | None = None,
    min_observed: float = MIN_OBSERVED, max_rel_half_width: float = MAX_REL_HALF_WIDTH,
) -> tuple[dict[str, Any], list[Path]]:
    """Compare runs with a claims registry; write ``comparison.json`` (and the reports when available).

    Parameters
    ----------
    run_dirs
        Finished run directories (several: different periods, for growth claims).
    claims_path
        Claims registry (default ``configs/claims.yaml``, whose regions must be named regions).
    out_dir
        Where to write (default: the first run directory).

    Returns
    -------
    (comparison, written files)
    """
    from estimator.claims.registry import load_claims
    from estimator.claims.report import write_comparison_reports
    from estimator.location import write_json
    from estimator.regions.named import list_regions

    named = {r.key: frozenset(r.units) for r in list_regions()}
    claims = load_claims(claims_path, regions=list(named) if claims_path is None else None)
    runs = [read_run(p) for p in run_dirs]
    comparison = compare_runs(runs, claims, min_observed=min_observed, max_rel_half_width=max_rel_half_width, named_units=named)
    out = Path(out_dir) if out_dir is not None else runs[0].run_dir
    write_json(out / "comparison.json", comparison)
    written = [out / "comparison.json"]
    written += list(write_comparison_reports(comparison, out))
    return comparison, written


def compare_claims(
    runs: Run | Path | str | Sequence[Run | Path | str],
    *,
    claims: Path | str | None = None,
    out: Path | str | None = None,
    min_observed: float = MIN_OBSERVED,
    max_relative_half_width: float = MAX_REL_HALF_WIDTH,
) -> Comparison:
    """Set reported claims beside the estimates of one or more runs.

    This is ``estimator compare``: each claim of the registry gets a verdict, consistent,
    contradicted or inconclusive (with the reason: period mismatch, region only partly
    observed, no or too wide an interval), from the estimates' 95 % intervals; growth claims
    need runs of two periods. ``comparison.json`` and the report (``report.html``,
    ``report_comparison.md``) are written into ``out``.

    Parameters
    ----------
    runs
        A run (or its local directory), or several runs of different periods.
    claims
        Claims registry (default ``configs/claims.yaml``; format in docs/claims.md).
    out
        Directory to write into (default: the first run's directory).
    min_observed
        Observed fraction below which a whole-region claim is inconclusive.
    max_relative_half_width
        CI half-width / estimate above which agreement is inconclusive.

    Returns
    -------
    Comparison
        Verdicts (``claims`` table), the estimates compared and unmatched claims; ``files``
        lists what was written.

    Examples
    --------
    >>> import estimator
    >>> from estimator.demo import example
    >>> ex = example()
    >>> comparison = estimator.compare(estimator.open_run(ex.run_copy()), claims=ex.claims)
    >>> sorted(set(comparison.claims["verdict"]) - {"consistent", "contradicted", "inconclusive"})
    []
    """
    if out is not None:  # before any work, as ``estimator compare --out`` does
        check_writable(Path(out), "out", directory=True)
    items = [runs] if isinstance(runs, (Run, Path, str)) else list(runs)
    dirs = [r.run_dir if isinstance(r, Run) else r for r in items]
    data, written = compare(
        dirs, claims_path=claims, out_dir=out, min_observed=min_observed, max_rel_half_width=max_relative_half_width
    )
    return Comparison(data, written)
