"""Estimates as plain-text tables on the console (``run``, ``assess`` and the demo print them)."""

from __future__ import annotations

from pathlib import Path

from estimator.stages.estimate import failed_read_fraction

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
        line = f"{r['region']:<12}{r['class']:<12}{obs:>9}{r['mapped_area_ha']:>11,.1f}{r['area_ha']:>13,.1f}{ci:>22}"
        if truth is not None:
            t = truth.get(r["region"], {}).get(r["class"])
            inside = "" if t is None or not has_ci else ("yes" if r["ci95_low_ha"] <= t <= r["ci95_high_ha"] else "NO")
            line += f"{t if t is not None else float('nan'):>10,.1f}{inside:>7}"
        print(line)


def print_summary(records, manifest, run_dir: Path | str, truth=None) -> None:
    """Print a finished run: the target class per region, failed tiles, where outputs are."""
    print_estimates(records, manifest["model"]["target_class"], synthetic=bool(manifest.get("synthetic")), truth=truth)
    failed = [t for t in manifest["tiles"] if t["status"] == "failed" or t.get("failed_items")]
    share = failed_read_fraction(records)
    if failed or share:
        print(
            f"failed reads: {100 * share:.1f} % of a region's expected observations at most, in {len(failed)} tile(s); "
            "those pixels count as unobserved, never as absence (see manifest.json)"
        )
    print(f"run directory: {run_dir}")
