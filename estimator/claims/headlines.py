"""The comparison in words: a headline per region and period, verdict tables, unmatched claims.

Written for a registry of a hundred claims read by an editor in two minutes. Per region
and run period, a headline gives the estimate with its interval and observed share, counts
claims by verdict and names each consistent or contradicted claim in one sentence (who,
what, how far off); claims about periods no run covers are counted and pointed to, never
narrated one by one. The verdict tables group claims by region, then verdict, with sources
and quotes folded away. Everything here reads ``comparison.json`` as ``compare`` writes it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from estimator.report.claim_groups import ClaimGroup, claim_groups, is_other_period, period_label
from estimator.report.document import Block, Cell, Details, Fold, Heading, Headline, Paragraph, Table, linkify

__all__ = ["claim_value", "ha", "headlines", "pct", "unmatched_blocks", "verdict_tables"]

Claim = Mapping[str, Any]
_ORDER = ("contradicted", "consistent", "inconclusive")

# -- numbers in words -------------------------------------------------------------------


def ha(v: float | None) -> str:
    if v is None:
        return "n/a"
    return "0" if v == 0 else f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.1f}" if abs(v) >= 1 else f"{v:.2f}"


def _sig(v: float) -> str:
    """Hectares rounded to three significant figures, for sentences (tables keep every hectare)."""
    return ha(float(f"{v:.3g}")) if abs(v) >= 1000 else ha(v)


def pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}".removesuffix(".0") + " %"


def _times(r: float) -> str:
    return f"{r:,.0f}" if r >= 10 else f"{r:.2f}".rstrip("0").rstrip(".") if r >= 1 else f"{r:.2f}"


def _growth(g: float | None) -> str:
    return "n/a" if g is None else f"{g:+,.0f}" if abs(g) >= 10 else f"{g:+.1f}"


def _plain(s: str | None) -> str:
    return re.sub(r"\s*\([^)]*\)", "", s or "").strip()


def _who(c: Claim) -> str:
    """Claimant (organisation), without asides: "Col. PNP Jorge Angulo (DIRANDRO-Loreto)"."""
    who, org = _plain(c.get("claimant")).split(",")[0].strip(), _plain(c.get("organisation"))
    if who and org and who in org:
        return org
    return f"{who} ({org})" if who and org and org not in who else who or org or "An unattributed source"


def _period_of_run(runs: Sequence[Mapping[str, Any]], i: int) -> str:
    r = runs[i]
    return period_label(r["period_start"], r["period_end"]) if r.get("period_start") else str(r["period"])


def claim_value(c: Claim) -> str:
    """What was claimed, in hectares (the original unit kept when it was another)."""
    if c["kind"] == "growth_rate":
        return f"{_growth(c.get('growth_percent_per_year'))} % per year"
    v = f"{ha(c.get('value_ha'))} ha"
    v = {"lower_bound": f"at least {v}", "upper_bound": f"at most {v}"}.get(c["kind"], v)
    unit = c.get("original_unit")
    if unit and unit not in ("ha", "percent_per_year") and c.get("original_value") is not None:
        o = c["original_value"]
        v += f" (reported as {o:,g} {unit})" if isinstance(o, int | float) else f" (reported as {o} {unit})"
    return v


def _estimate_text(c: Claim, runs: Sequence[Mapping[str, Any]]) -> str:
    if c["kind"] == "growth_rate":
        g = c.get("implied_growth")
        if not g:
            return "no growth estimate"
        i, j = g["runs"]
        ci = f" [{_growth(g['ci95_low'])} to {_growth(g['ci95_high'])}]" if g.get("ci95_low") is not None else " [no CI]"
        return f"{_growth(g['percent_per_year'])} % per year{ci}, {_period_of_run(runs, i)} to {_period_of_run(runs, j)}"
    e = c.get("estimate")
    if not e:
        return "no estimate"
    ci = f" [{ha(e['ci95_low_ha'])} to {ha(e['ci95_high_ha'])}]" if e.get("ci95_low_ha") is not None else " [no CI]"
    return f"{ha(e['area_ha'])} ha{ci}, {_period_of_run(runs, e['run'])}"


# -- one sentence per claim ---------------------------------------------------------------


def _how_far(c: Claim) -> str:
    """Why the claim stands or falls against the interval, in hectares and times."""
    e = c["estimate"]
    v, a, lo, hi = float(c["value_ha"]), float(e["area_ha"]), e.get("ci95_low_ha"), e.get("ci95_high_ha")
    if lo is None or hi is None:
        return f"the estimate, {_sig(a)} ha, has no interval"
    kind, verdict = c["kind"], c["verdict"]
    if kind == "lower_bound":
        return (f"even the interval's upper end, {_sig(hi)} ha, falls {_sig(v - hi)} ha short" if v > hi
                else f"the interval reaches {_sig(hi)} ha")
    if kind == "upper_bound":
        return (f"even the interval's lower end, {_sig(lo)} ha, is {_times(lo / v)} times that" if lo > v and v > 0
                else f"the interval's lower end, {_sig(lo)} ha, is below it")
    ratio = f"{_times(v / a)} times the estimate" if a > 0 else "the estimate is 0"
    if v > hi:
        return f"{ratio}, {_sig(v - hi)} ha above the interval's upper end ({_sig(hi)} ha)"
    if v < lo:
        return f"{ratio}, {_sig(lo - v)} ha below the interval's lower end ({_sig(lo)} ha)"
    return f"inside the interval ({_sig(lo)} to {_sig(hi)} ha), {ratio}" if verdict == "consistent" else ratio


def _partial_note(c: Claim) -> str:
    whose = "the span between the runs" if c["kind"] == "growth_rate" else "the run's"
    return next((f" The claim's period only partly overlaps {whose}." for w in c.get("warnings") or []
                 if w.startswith("period only partly")), "")


def claim_sentence(c: Claim, runs: Sequence[Mapping[str, Any]]) -> str:
    """One sentence: who said what, and how far it is from the estimate."""
    said = f"{_who(c)} said {claim_value(c)}"
    if c["kind"] == "growth_rate":
        g = c.get("implied_growth")
        about = period_label(c["period_start"], c["period_end"])
        if not g:
            return f"{said} ({about}): {c.get('reason') or 'no growth estimate'}."
        return f"{said} ({about}): the runs imply {_estimate_text(c, runs)}." + _partial_note(c)
    if c["verdict"] == "inconclusive":
        return f"{said}: {c.get('reason') or 'inconclusive'}." + _partial_note(c)
    return f"{said}: {_how_far(c)}." + _partial_note(c)


# -- headlines ------------------------------------------------------------------------------


def _lead(e: Mapping[str, Any], target: str) -> str:
    obs, failed = e.get("observed_fraction"), e.get("failed_read_fraction")
    if e.get("ci95_low_ha") is not None and e.get("ci95_high_ha") is not None:
        s = (f"Imagery supports {_sig(e['ci95_low_ha'])} to {_sig(e['ci95_high_ha'])} ha of {target} "
             f"(95 % CI; best estimate {_sig(e['area_ha'])} ha, {e['estimator']})")
    else:
        mapped = float(e["mapped_area_ha"] if e.get("mapped_area_ha") is not None else e["area_ha"])
        s = (f"The classifier maps {_sig(mapped)} "
             f"ha of {target}, with no confidence interval until a labeled reference sample is assessed")
    if obs is None:
        s += "; how much of the region was observed is not known."
    elif obs >= 0.9995:
        s += "; 100 % of the region observed."
    else:
        s += f"; {pct(obs)} of the region seen clear, and the figure covers that part only."
    if e.get("coverage_policy") == "extrapolated" and e.get("extrapolated_ci95_high_ha") is not None:
        s += (f" Extrapolated to the whole region: {_sig(e['extrapolated_area_ha'])} ha "
              f"[{_sig(e['extrapolated_ci95_low_ha'])} to {_sig(e['extrapolated_ci95_high_ha'])}].")
    if failed:
        s += f" {pct(failed)} of the region could not be read (failed reads)."
    return s


def _counts(claims: Sequence[Claim]) -> tuple[tuple[str, int], ...]:
    return tuple((v, sum(c["verdict"] == v for c in claims)) for v in _ORDER)


def _items(claims: Sequence[Claim], runs: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, str], ...]:
    """Contradicted, then consistent claims, one sentence each; inconclusive ones by reason."""
    items = [(c["verdict"], claim_sentence(c, runs)) for v in _ORDER[:2] for c in claims if c["verdict"] == v]
    reasons: dict[str, list[Claim]] = {}
    for c in claims:
        if c["verdict"] == "inconclusive":
            reasons.setdefault(str(c.get("reason") or "no reason given"), []).append(c)
    for reason, cs in reasons.items():
        who = "; ".join(f"{_who(c)}, {claim_value(c)}" for c in cs)
        items.append(("inconclusive", f"{who}: {reason}." if len(cs) == 1 else f"{len(cs)} claims ({who}): {reason}."))
    return tuple(items)


def _others_note(name: str, others: Sequence[Claim], groups: Sequence[ClaimGroup]) -> str:
    if not others:
        return ""
    ids = {c["id"] for c in others}
    years = sorted({period_label(c["period_start"], c["period_end"]) for c in others})
    first, last = years[0].split("-")[0].split(" ")[0], years[-1].split("-")[-1].split(" ")[-1]
    span = first if first == last else f"{first} to {last}"
    series = [g for g in groups if g.is_series and all(c["id"] in ids for c in g.claims)]
    among = ("; among them " + ", ".join(f"{g.who}'s series {g.span} ({len(g.claims)} figures)" for g in series)) if series else ""
    n = len(others)
    return (f"{n} claim{'s' if n > 1 else ''} about other periods ({span}) {'were' if n > 1 else 'was'} not judged: "
            f"no run covers {'them' if n > 1 else 'it'}{among}. See the verdict table, {name}, “about other periods”.")


def headlines(comparison: Mapping[str, Any], target: str) -> list[Block]:
    """Per region: a headline per run period, one for growth claims, and a note on the rest."""
    estimates, claims, runs = comparison.get("estimates", []), comparison.get("claims", []), comparison["runs"]
    groups = claim_groups(claims)
    judged = [c for c in claims if not is_other_period(c)]
    n_other = len(claims) - len(judged)
    out: list[Block] = [Paragraph(
        f"{len(claims)} claim(s) about the regions of these runs: "
        + ", ".join(f"{n} {v}" for v, n in _counts(judged)) + f" against a run of their period; {n_other} about other periods.",
        "note")] if claims else [Paragraph("No claim of the registry concerns the regions of these runs.", "note")]
    for rid in _regions(comparison):
        mine = sorted((e for e in estimates if e["region"] == rid), key=lambda e: (e["period"], e["run"]))
        rc = [c for c in claims if c["region"] == rid]
        name = next((str(x["region_name"]) for x in [*mine, *rc] if x.get("region_name")), rid)
        out.append(Heading(3, name))
        area = [c for c in rc if c["kind"] != "growth_rate" and not is_other_period(c)]
        for period in dict.fromkeys(e["period"] for e in mine):
            here = [c for c in area if c.get("estimate") and runs[c["estimate"]["run"]]["period"] == period]
            e = next((x for x in mine if x["period"] == period and any(c["estimate"]["run"] == x["run"] for c in here)),
                     next(x for x in mine if x["period"] == period))
            out.append(Headline(
                f"{name}, {_period_of_run(runs, e['run'])}", _lead(e, target),
                _counts(here) if here else (), _items(here, runs),
                "" if here else "No claim about this period.",
            ))
        growth = [c for c in rc if c["kind"] == "growth_rate" and not is_other_period(c)]
        if growth:
            out.append(Headline(f"{name}, growth", _growth_lead(growth, runs), _counts(growth), _items(growth, runs)))
        out += [Paragraph(t, "note") for t in [_others_note(name, [c for c in rc if is_other_period(c)], groups.get(rid, []))] if t]
    return out


def _growth_lead(growth: Sequence[Claim], runs: Sequence[Mapping[str, Any]]) -> str:
    g = next((c["implied_growth"] for c in growth if c.get("implied_growth")), None)
    if g is None:
        return "Growth needs runs of two periods that do not overlap; these runs give one."
    return f"Between the runs, the estimates imply {_estimate_text({'kind': 'growth_rate', 'implied_growth': g}, runs)} (95 % CI)."


# -- verdict tables ------------------------------------------------------------------------


def _fold(c: Claim) -> Fold:
    parts: list[Any] = [*linkify(str(c.get("source") or "no source given"))]
    if c.get("quote"):
        parts.append(f"\nquote: {c['quote']}")
    for label in ("status", "note"):
        if c.get(label):
            parts.append(f"\n{label}: {c[label]}")
    parts += [f"\nwarning: {w}" for w in c.get("warnings") or [] if not w.startswith("period mismatch")]
    parts.append(f"\nclaim id: {c['id']}")
    return Fold("source and quote", tuple(parts))


def _row(c: Claim, key: Mapping[str, int], runs: Sequence[Mapping[str, Any]], *, judged: bool, why: bool) -> tuple[Cell, ...]:
    cells: list[Cell] = [str(key.get(c["id"], "-")), _who(c), claim_value(c), period_label(c["period_start"], c["period_end"])]
    if judged:
        cells += [_estimate_text(c, runs), "-" if c.get("ratio") is None else _times(float(c["ratio"]))]
    if why:
        cells.append(str(c.get("reason") or ""))
    return (*cells, _fold(c))


def _regions(comparison: Mapping[str, Any]) -> list[str]:
    """Region ids in the order of the runs' estimates, then of the claims."""
    return list(dict.fromkeys([*(e["region"] for e in comparison.get("estimates", [])),
                               *(c["region"] for c in comparison.get("claims", []))]))


def verdict_tables(comparison: Mapping[str, Any]) -> list[Block]:
    """Per region, a table per verdict (contradicted, consistent, inconclusive) and the
    claims about other periods folded; ``#`` is the claim's number in the chart's key."""
    claims, runs = comparison.get("claims", []), comparison["runs"]
    key = {c["id"]: g.number for gs in claim_groups(claims).values() for g in gs for c in g.claims}
    out: list[Block] = []
    for rid in [r for r in _regions(comparison) if any(c["region"] == r for c in claims)]:
        rc = sorted((c for c in claims if c["region"] == rid), key=lambda c: (key.get(c["id"], 10**6), c["period_start"]))
        out.append(Heading(3, str(rc[0].get("region_name") or rid)))
        head = ("#", "who", "claimed", "about", "estimate [95 % CI]", "claim ÷ estimate")
        for v in _ORDER:
            cs = [c for c in rc if c["verdict"] == v and not is_other_period(c)]
            if cs:
                why = v == "inconclusive"
                out += [Heading(4, f"{v.capitalize()} ({len(cs)})"),
                        Table((*head, *(("why",) if why else ()), "source"), [_row(c, key, runs, judged=True, why=why) for c in cs],
                              frozenset({0, 5}), css="verdicts")]
        other = [c for c in rc if is_other_period(c)]
        if other:
            out.append(Details(f"About other periods ({len(other)}): not judged, no run covers them",
                               table=Table((*head[:4], "source"), [_row(c, key, runs, judged=False, why=False) for c in other],
                                           frozenset({0}), css="verdicts")))
    return out


# -- claims not compared --------------------------------------------------------------------


def unmatched_blocks(unmatched: Sequence[Mapping[str, Any]]) -> list[Block]:
    """A sentence counting the claims not compared by cause, and all of them folded."""
    if not unmatched:
        return []
    zones: dict[str, int] = {}
    regions: dict[str, int] = {}
    rest = 0
    for u in unmatched:
        # The reasons are worded by compare's _unmatched_reason.
        if m := re.match(r"no matching region: '(.*)' has no named region", u["reason"]):
            zone = _plain(m.group(1)) or m.group(1)
            zones[zone] = zones.get(zone, 0) + 1
        elif m := re.match(r"region '([^']+)' is not in the run", u["reason"]):
            regions[m.group(1)] = regions.get(m.group(1), 0) + 1
        else:
            rest += 1
    parts = []
    if zones:
        n = sum(zones.values())
        parts.append(f"{n} about zones with no named region ({', '.join(sorted(zones, key=lambda z: -zones[z])[:6])}"
                     + (", ..." if len(zones) > 6 else "") + ")")
    if regions:
        parts.append(f"{sum(regions.values())} about regions these runs do not cover ("
                     + ", ".join(f"{r}: {n}" for r, n in sorted(regions.items(), key=lambda x: -x[1])) + ")")
    if rest:
        parts.append(f"{rest} for other reasons")
    return [
        Paragraph(f"{len(unmatched)} claim(s) of the registry were not compared: {'; '.join(parts)}.", "note"),
        Details(f"All {len(unmatched)}, with the reason", table=Table(("claim", "reason"), [(u["id"], u["reason"]) for u in unmatched])),
    ]
