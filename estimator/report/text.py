"""Estimates as plain-text tables on the console (``run``, ``assess`` and the demo print them)."""

from __future__ import annotations

from pathlib import Path

from estimator.stages.estimate import failed_read_fraction, map_outside_interval

__all__ = ["print_estimates", "print_summary"]


def print_estimates(records, target: str, *, synthetic: bool, truth=None, all_classes: bool = False) -> None:
    """Print estimates per region (the target class, or all), beside the truth when known."""
    if synthetic:
        print("SYNTHETIC DEMO DATA - these figures come from a generated world, not real imagery")
    head = f"{'region':<12}{'class':<12}{'observed':>9}{'mapped ha':>11}{'estimate ha':>13}{'95% CI (ha)':>22}"
    if truth is not None:
        head += f"{'true ha':>10}{'in CI':>7}"
    print(head)
    for r in records:
        if r["class"] != target and not all_classes:
            continue
        obs = "n/a" if r["observed_fraction"] is None else f"{100 * r['observed_fraction']:.1f}%"
        has_ci = r.get("ci95_low_ha") is not None
        ci = f"{r['ci95_low_ha']:,.1f} - {r['ci95_high_ha']:,.1f}" if has_ci else "none (mapped)"
        mapped = "none" if r.get("mapped_area_ha") is None else f"{r['mapped_area_ha']:,.1f}"  # none: a cold start
        line = f"{r['region']:<12}{r['class']:<12}{obs:>9}{mapped:>11}{r['area_ha']:>13,.1f}{ci:>22}"
        if truth is not None:
            t = truth.get(r["region"], {}).get(r["class"])
            inside = "" if t is None or not has_ci else ("yes" if r["ci95_low_ha"] <= t <= r["ci95_high_ha"] else "NO")
            line += f"{t if t is not None else float('nan'):>10,.1f}{inside:>7}"
        print(line)
    for note in map_outside_interval(records, target):
        print(f"map outside the interval - {note}")


def print_summary(records, manifest, run_dir: Path | str, truth=None) -> None:
    """Print a finished run: the target class per region (the strata of a cold start), failed
    tiles, where outputs are."""
    if "strata" in manifest["model"]:
        _print_strata(records, bool(manifest.get("synthetic")))
    else:
        print_estimates(records, manifest["model"]["target_class"], synthetic=bool(manifest.get("synthetic")), truth=truth)
    failed = [t for t in manifest["tiles"] if t["status"] == "failed" or t.get("failed_items")]
    share = failed_read_fraction(records)
    if failed or share:
        print(
            f"failed reads: {100 * share:.1f} % of a region's expected observations at most, in {len(failed)} tile(s); "
            "those pixels count as unobserved, never as absence (see manifest.json)"
        )
    print(f"run directory: {run_dir}")


def _print_strata(rows, synthetic: bool) -> None:
    if synthetic:
        print("SYNTHETIC DEMO DATA - these strata come from a generated world, not real imagery")
    print("no model was used (model: none): label-free strata, no class area until a labelled sample is assessed")
    strata = list(dict.fromkeys(r["stratum"] for r in rows))
    print(f"{'region':<14}" + "".join(f"{s + ' ha':>11}" for s in strata))
    by = {(r["region"], r["stratum"]): r["stratum_area_ha"] for r in rows}
    for region in dict.fromkeys(r["region"] for r in rows):
        print(f"{region:<14}" + "".join(f"{by[(region, s)]:>11,.1f}" for s in strata))
    print("next: estimator sample RUN_DIR --n N --out sample.geojson, label it, then estimator assess")
