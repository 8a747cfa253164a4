"""How the comparison report groups and names judged claims (``comparison.json`` entries).

A registry of a hundred claims is read region by region: a claim was either judged against
a run of its period, or is about another period (``period mismatch``). Figures of one
source over the years (DEVIDA's Loreto series 2017-2024) form a *series*: one line in the
chart, one entry in its key. Keys number the groups of a region in time order, so the
chart, the headlines and the verdict table can point at the same claim.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ClaimGroup",
    "claim_groups",
    "is_other_period",
    "midpoint",
    "period_label",
    "short_who",
]

Claim = Mapping[str, Any]


def is_other_period(c: Claim) -> bool:
    """True when the claim is about a period no run covers (its verdict says so)."""
    return str(c.get("reason") or "").startswith("period mismatch")


def _plain(s: str | None) -> str:
    """A name without its parenthetical asides ("DEVIDA (central government)" -> "DEVIDA")."""
    return re.sub(r"\s*\([^)]*\)", "", s or "").strip()


def short_who(c: Claim, limit: int = 34) -> str:
    """Who said it, short enough for a chart key: the claimant up to the first comma, without
    asides; the organisation when that is too long; cut at ``limit`` characters."""
    who = _plain(c.get("claimant")).split(",")[0].strip()
    org = _plain(c.get("organisation"))
    if not who or (len(who) > limit and org and len(org) <= limit):
        who = org or "unattributed"
    return who if len(who) <= limit else who[: limit - 1].rstrip() + "…"


def _day(s: str) -> dt.date:
    return dt.date.fromisoformat(s[:10])


def period_label(start: str, end: str) -> str:
    """``2011`` for a calendar year or a 31 December cut-off, ``2011-2012`` for whole years,
    the dates otherwise."""
    a, b = _day(start), _day(end)
    if a == b:
        return str(a.year) if (a.month, a.day) == (12, 31) else a.isoformat()
    if (a.month, a.day, b.month, b.day) == (1, 1, 12, 31):
        return str(a.year) if a.year == b.year else f"{a.year}-{b.year}"
    if (a.month, a.day) == (12, 31) == (b.month, b.day):  # from one cut-off to another
        return f"{a.year}-{b.year}"
    return f"{a.isoformat()} to {b.isoformat()}"


def midpoint(c: Claim) -> dt.date:
    a, b = _day(c["period_start"]), _day(c["period_end"])
    return dt.date.fromordinal((a.toordinal() + b.toordinal()) // 2)


@dataclass(frozen=True)
class ClaimGroup:
    """Area claims of one region drawn and keyed together: one claim, or a series."""

    number: int
    """Place in the region's key, from 1."""
    claims: tuple[Claim, ...]
    """In time order."""

    @property
    def is_series(self) -> bool:
        return len(self.claims) > 1

    @property
    def who(self) -> str:
        return short_who(self.claims[0])

    @property
    def span(self) -> str:
        first, last = self.claims[0], self.claims[-1]
        a, b = period_label(first["period_start"], first["period_end"]), period_label(last["period_start"], last["period_end"])
        return a if a == b else f"{a.split('-')[0]}-{b.split('-')[-1]}"

    def key_text(self) -> str:
        """The chart key's entry: number, who, value(s), period."""
        if self.is_series:
            lo = min(float(c["value_ha"]) for c in self.claims)
            hi = max(float(c["value_ha"]) for c in self.claims)
            return f"{self.number}  {self.who}: {lo:,.0f}-{hi:,.0f} ha, {self.span} ({len(self.claims)} figures)"
        c = self.claims[0]
        sign = {"lower_bound": "at least ", "upper_bound": "at most "}.get(c["kind"], "")
        return f"{self.number}  {self.who}: {sign}{float(c['value_ha']):,.0f} ha, {self.span}"


def _series_key(c: Claim) -> tuple[str, str, str, str]:
    return (str(c["region"]), str(c["kind"]), _plain(c.get("organisation")), _plain(c.get("claimant")))


def claim_groups(claims: Sequence[Claim]) -> dict[str, list[ClaimGroup]]:
    """Area claims (with a value in hectares) per region id, grouped and numbered.

    A series is two or more claims of one region, kind and source (claimant and
    organisation, asides in parentheses ignored) about different dates; any other claim is
    a group of its own. Groups are numbered from 1 in each region by the date of their first
    claim (then by value).
    """
    by: dict[tuple[str, str, str, str], list[Claim]] = {}
    for c in claims:
        if c["kind"] != "growth_rate" and c.get("value_ha") is not None:
            by.setdefault(_series_key(c), []).append(c)
    pieces: dict[str, list[list[Claim]]] = {}
    for key, members in by.items():
        dates = {midpoint(c) for c in members}
        split = [members] if len(dates) == len(members) and len(members) > 1 else [[c] for c in members]
        pieces.setdefault(key[0], []).extend(split)
    out: dict[str, list[ClaimGroup]] = {}
    for region, groups in pieces.items():
        groups.sort(key=lambda g: (min(midpoint(c) for c in g), float(g[0]["value_ha"])))
        out[region] = [ClaimGroup(i + 1, tuple(sorted(g, key=midpoint))) for i, g in enumerate(groups)]
    return out
