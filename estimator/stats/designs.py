"""One entry point for both sample designs: ``estimator.sample`` and ``estimator sample``.

``class`` (:func:`estimator.stats.sample.sample_run`) stratifies by map class (and
region), for error-adjusted areas of every class; ``target-area``
(:func:`estimator.stats.target_design.draw_target_sample`) stratifies by the target class's
probability, for the tightest interval on its area. Both modules build on
``estimator.stats.sample``, so the dispatch lives here, above them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from estimator.errors import EstimatorError
from estimator.location import check_writable, write_json
from estimator.run.rundir import Run, open_run
from estimator.stats.sample import sample_frame, sample_run
from estimator.stats.target_design import DEFAULT_STRATA_PER_REGION, draw_target_sample

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["DESIGNS", "sample"]

DESIGNS = ("class", "target-area")


def sample(
    run: Run | Path | str,
    *,
    design: Literal["class", "target-area"] = "class",
    n: int | None = None,
    target_se: float = 0.01,
    target_se_ha: float | None = None,
    expected_ua: Mapping[str, float] | None = None,
    min_per_stratum: int | None = None,
    strata: Literal["region-class", "class"] = "region-class",
    buffer_px: int = 1,
    prob_strata: int = DEFAULT_STRATA_PER_REGION,
    seed: int = 0,
    out: Path | str | None = None,
    progress: bool = False,
) -> gpd.GeoDataFrame:
    """Draw a stratified random sample of a run's pixels for reference labeling.

    This is ``estimator sample``. Interpreters fill ``interpreter_1``, ``interpreter_2``
    and, where they disagree, ``consensus``; :func:`estimator.assess` then turns the labels
    into design-based areas with 95 % intervals.

    Parameters
    ----------
    run
        A :class:`~estimator.Run` or the path of a local run directory.
    design
        ``"class"``: strata are region x map class (or map classes only), allocated as
        Olofsson et al. (2014) recommend (a minimum per stratum, the rest proportional).
        ``"target-area"``: strata are bins of the target class's probability per region
        plus a buffer of pixels next to mapped target pixels, allocated to minimise the
        standard error of the target area (docs/intervals.md); assessed with Stehman (2014).
    n
        Total sample size (default: from ``target_se`` or ``target_se_ha``).
    target_se
        ``class``: target standard error of overall accuracy, used when ``n`` is not given.
    target_se_ha
        ``target-area``: target standard error of the target area (ha) in every region,
        used when ``n`` is not given.
    expected_ua
        ``class``: conjectured user's accuracy per class (default ``coca`` 0.7, others 0.9).
    min_per_stratum
        Minimum units per stratum (default 50 for ``class``, 10 for ``target-area``).
    strata
        ``class``: ``"region-class"`` (one estimate per region) or ``"class"``.
    buffer_px
        ``target-area``: width in pixels of the buffer stratum around mapped target pixels.
    prob_strata
        ``target-area``: probability bins per region.
    seed
        Random seed; the same seed on the same run draws the same sample.
    out
        Also write the sample as GeoJSON here (the file ``estimator sample --out`` writes).
    progress
        Show progress bars.

    Returns
    -------
    geopandas.GeoDataFrame
        One point (lon/lat) per sample unit with its stratum, map class, pixel row and
        column and empty label columns; the design in ``attrs["sampling"]``.

    Examples
    --------
    >>> import estimator
    >>> from estimator.demo import example
    >>> from estimator.stats.target_design import DESIGN_ID
    >>> sample = estimator.sample(estimator.open_run(example().run_dir), n=300, min_per_stratum=5, seed=1)
    >>> len(sample), sample.crs.to_string(), sample.attrs["sampling"]["seed"]
    (300, 'EPSG:4326', 1)
    >>> sample[["stratum", "map_class", "interpreter_1"]].iloc[0].to_dict()
    {'stratum': 'north|bare_soil', 'map_class': 'bare_soil', 'interpreter_1': None}
    >>> target = estimator.sample(example().run_dir, design="target-area", n=300, seed=1)
    >>> target.attrs["sampling"]["kind"] == DESIGN_ID
    True
    """
    if design not in DESIGNS:
        raise EstimatorError(f"design must be one of {', '.join(DESIGNS)}, not {design!r}")
    if design == "class":
        if target_se_ha is not None:
            raise EstimatorError("target_se_ha (--target-se-ha) needs the target-area design")
        return sample_run(
            run, n=n, target_se=target_se, expected_ua=expected_ua,
            min_per_stratum=50 if min_per_stratum is None else min_per_stratum,
            strata=strata, seed=seed, out=out, progress=progress,
        )
    if target_se_ha is not None and n is not None:
        raise EstimatorError("give n (--n) or target_se_ha (--target-se-ha), not both")
    if out is not None:  # before drawing, as ``estimator sample --out`` does
        check_writable(Path(out), "out")
    fc = draw_target_sample(
        open_run(run.run_dir if isinstance(run, Run) else run), n=n if target_se_ha is None else None,
        target_se_ha=target_se_ha, min_per_stratum=10 if min_per_stratum is None else min_per_stratum,
        buffer_px=buffer_px, strata_per_region=prob_strata, seed=seed, progress=progress,
    )
    if out is not None:
        write_json(Path(out), fc)
    return sample_frame(fc)
