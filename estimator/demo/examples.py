"""A small SYNTHETIC world with a model and a finished run, to try the API on.

:func:`example` builds it once (world, model, run and demo claims: about a minute on two
cores) and finds it again afterwards; docstring examples, the reference docs' doctests and
the notebooks start from it. :meth:`Example.label` plays the photo-interpreters with the
world's truth, so a reference sample can be labeled in a notebook.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from estimator.config import JobConfig, TrainConfig, load_job, load_train
from estimator.demo.claims import write_demo_claims
from estimator.demo.oracle import label_with_truth
from estimator.demo.runner import build_demo, demo_job, demo_train
from estimator.demo.world import World, WorldSpec, generator_version, load_world
from estimator.location import write_json
from estimator.run.checkpoints import TILE_FORMAT
from estimator.run.rundir import COMPARISON_FILE, MANIFEST_FILE
from estimator.stats.sample import sample_frame
from estimator.testing.servers import serve_world

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["Example", "example", "label_sample"]

#: The example world: small enough to build in about a minute, large enough for three
#: regions, several plots per class and a sample in every stratum.
EXAMPLE_SPEC = WorldSpec(seed=3, size_px=256, n_dates=12)


def label_sample(
    sample: gpd.GeoDataFrame, world: World, *, disagreement: float = 0.03, seed: int = 0, out: Path | str | None = None,
) -> gpd.GeoDataFrame:
    """Label a reference sample drawn on a run of ``world`` with its truth (a SYNTHETIC oracle).

    Interpreter 1 reads the world's class on its cut-off date at each point; interpreter 2
    picks another class for a share ``disagreement`` of the points; the consensus settles
    those. This stands in for photo-interpreters (``estimator interpret``) in the demo, the
    notebooks and the benchmarks.

    Parameters
    ----------
    sample
        A sample from :func:`estimator.sample` on a run of this world.
    world
        The generated world (:func:`estimator.demo.generate_world`).
    disagreement
        Share of points where interpreter 2 errs.
    seed
        Seed of interpreter 2's errors.
    out
        Also write the labeled sample as GeoJSON here, with its design (a file that
        ``estimator assess`` and ``training labels add`` read).

    Returns
    -------
    geopandas.GeoDataFrame
        The sample with ``interpreter_1``, ``interpreter_2`` and ``consensus`` filled.

    Examples
    --------
    >>> import estimator
    >>> from estimator.demo import example, label_sample
    >>> ex = example()
    >>> sample = estimator.sample(estimator.open_run(ex.run_dir), n=200, min_per_stratum=5)
    >>> bool(label_sample(sample, ex.world)["consensus"].notna().all())
    True
    """
    fc: dict[str, Any] = json.loads(sample.to_json(na="null", drop_id=True))
    fc["sampling"] = dict(sample.attrs["sampling"])
    labeled = label_with_truth(fc, world, disagreement=disagreement, seed=seed)
    if out is not None:
        write_json(Path(out), labeled)
    return sample_frame(labeled)


@dataclass(frozen=True)
class Example:
    """A SYNTHETIC demo world with its model, a finished run and claims about it."""

    root: Path
    """Directory holding everything below."""
    world: World
    """The generated world (imagery, STAC items, labeled plots, regions, truth)."""
    model_dir: Path
    """The demo model trained on the world's labeled plots."""
    run_dir: Path
    """A finished run of the demo job (mapped estimates: not yet assessed)."""
    claims: Path
    """SYNTHETIC claims about the world's regions (a claims registry file)."""

    @property
    def truth(self) -> dict[str, dict[str, float]]:
        """True hectares per region and class (known only because the world is generated)."""
        data = json.loads(self.world.truth_path.read_text())
        return {rid: {c: float(v) for c, v in r["area_ha"].items()} for rid, r in data["regions"].items()}

    def label(self, sample: gpd.GeoDataFrame, *, disagreement: float = 0.03, seed: int = 0) -> gpd.GeoDataFrame:
        """Label a reference sample with the world's truth (a SYNTHETIC oracle).

        Interpreter 1 reads the truth; interpreter 2 picks another class for a share
        ``disagreement`` of the points; the consensus settles those.

        Parameters
        ----------
        sample
            A sample from :func:`estimator.sample` on a run of this world.
        disagreement
            Share of points where interpreter 2 errs.
        seed
            Seed of interpreter 2's errors.

        Returns
        -------
        geopandas.GeoDataFrame
            The sample with ``interpreter_1``, ``interpreter_2`` and ``consensus`` filled.

        Examples
        --------
        >>> import estimator
        >>> from estimator.demo import example
        >>> ex = example()
        >>> labeled = ex.label(estimator.sample(estimator.open_run(ex.run_dir), n=200, min_per_stratum=5))
        >>> bool(labeled["interpreter_1"].notna().all())
        True
        """
        return label_sample(sample, self.world, disagreement=disagreement, seed=seed)

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Serve the world on 127.0.0.1 (a real STAC API and a COG server); yields the STAC API URL.

        Examples
        --------
        >>> from estimator.demo import example
        >>> ex = example()
        >>> with ex.serve() as stac_url:
        ...     stac_url.startswith("http://127.0.0.1:")
        True
        """
        with serve_world(self.world.root, self.root / "serve") as served:
            yield served.stac_url

    def job(self, stac_url: str, out: Path | str, *, model: Path | str | None = None) -> JobConfig:
        """The demo job on this world, served at ``stac_url``, writing to ``out``.

        Parameters
        ----------
        stac_url
            The URL :meth:`serve` yields.
        out
            Run directory (or fsspec URL) to write.
        model
            Model directory or registry reference (default: the example's model).

        Returns
        -------
        JobConfig
            The validated job, also written as ``<root>/jobs/<name>.yaml``.
        """
        data = demo_job(self.world, stac_url, self.model_dir, Path(out), tile_size=256)
        data["model"] = str(model if model is not None else self.model_dir)
        data["output"] = str(out)
        path = self.root / "jobs" / f"{Path(str(out)).name or 'run'}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# SYNTHETIC demo job\n" + yaml.safe_dump(data, sort_keys=False))
        return load_job(path)

    def run_copy(self, dst: Path | str | None = None) -> Path:
        """A private copy of the run directory (without tile checkpoints), for the commands
        that update a run (``assess``, ``compare``); a fresh temporary directory by default.

        Examples
        --------
        >>> from estimator.demo import example
        >>> ex = example()
        >>> copy = ex.run_copy()
        >>> copy != ex.run_dir and (copy / "manifest.json").is_file()
        True
        """
        dst = Path(dst) if dst is not None else Path(tempfile.mkdtemp(prefix="coca-run-")) / "run"
        shutil.copytree(self.run_dir, dst, ignore=shutil.ignore_patterns("tiles"))
        return dst

    def train_config(self, stac_url: str) -> TrainConfig:
        """The demo training configuration on this world, served at ``stac_url``."""
        path = self.root / "train-example.yaml"
        path.write_text("# SYNTHETIC demo training file\n" + yaml.safe_dump(demo_train(self.world, stac_url, tile_size=256), sort_keys=False))
        return load_train(path)


def _default_root(spec: WorldSpec) -> Path:
    import pooch

    # Keyed by what the cached world, model and run depend on: a cache made by other code
    # (another generator, tile format or decision rule) is not found again.
    preset = "" if spec.preset == "easy" else f"{spec.preset}-"
    return Path(pooch.os_cache("coca-estimator")) / (
        f"example-{preset}{spec.seed}-{spec.size_px}-{spec.n_dates}-{generator_version(spec.preset)}-t{TILE_FORMAT}"
    )


def example(root: Path | str | None = None, *, spec: WorldSpec = EXAMPLE_SPEC, progress: bool = False) -> Example:
    """A small SYNTHETIC world with its model, a finished run and claims; built once.

    Parameters
    ----------
    root
        Directory to build in (default: a cache directory of this package, shared by
        every call with the same ``spec``).
    spec
        The world to generate (default: 256 x 256 px, 12 dates).
    progress
        Show what is built (otherwise quiet).

    Returns
    -------
    Example

    Examples
    --------
    >>> import estimator
    >>> from estimator.demo import example
    >>> ex = example()
    >>> estimator.open_run(ex.run_dir).synthetic
    True
    """
    root = Path(root) if root is not None else _default_root(spec)
    run_dir, claims = root / "run", root / "claims.yaml"
    # The run's manifest is written last, and the claims after the run: both there means done.
    if not ((run_dir / MANIFEST_FILE).is_file() and claims.is_file()):
        out = io.StringIO()
        with contextlib.nullcontext() if progress else contextlib.redirect_stdout(out):
            _, truth, _ = build_demo(root, spec, progress=progress)
            (run_dir / COMPARISON_FILE).unlink(missing_ok=True)
            write_demo_claims(claims, {rid: a["coca"] for rid, a in truth.items()}, spec)
    return Example(root, load_world(root / "world"), root / "model", run_dir, claims)
