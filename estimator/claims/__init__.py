"""Reported figures beside the estimates: the claims registry (``registry``), verdicts per
claim (``compare``) and the comparison report (``report``).

Imports everything below it but ``cli``, ``demo`` and ``testing``.
"""

from __future__ import annotations

from estimator.lazy import exports

__all__ = [
    "DEFAULT_CLAIMS",
    "HA_PER_ACRE",
    "HTML_NAME",
    "KINDS",
    "MAX_REL_HALF_WIDTH",
    "MD_NAME",
    "MIN_OBSERVED",
    "Claim",
    "ClaimsError",
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
    "load_claims",
    "period_relation",
    "read_run",
    "write_comparison_reports",
]

_WHERE = {
    "Claim": "registry",
    "ClaimsError": "registry",
    "DEFAULT_CLAIMS": "registry",
    "Estimate": "compare",
    "Growth": "compare",
    "HA_PER_ACRE": "registry",
    "HTML_NAME": "report",
    "KINDS": "registry",
    "MAX_REL_HALF_WIDTH": "compare",
    "MD_NAME": "report",
    "MIN_OBSERVED": "compare",
    "RunEstimates": "compare",
    "Verdict": "compare",
    "compare": "compare",
    "compare_claims": "compare",
    "compare_runs": "compare",
    "format_table": "compare",
    "implied_growth": "compare",
    "judge_area": "compare",
    "judge_growth": "compare",
    "load_claims": "registry",
    "period_relation": "compare",
    "read_run": "compare",
    "write_comparison_reports": "report",
}

__getattr__, __dir__ = exports(__name__, _WHERE)
