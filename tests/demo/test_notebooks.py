"""The notebooks in notebooks/ execute top to bottom against the SYNTHETIC demo world, and
use the public API only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_says_synthetic(path, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    # Raises CellExecutionError (with the failing cell and traceback) on any error.
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
        for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
    assert "SYNTHETIC" in text, "a notebook on the demo world must say its outputs are synthetic"
    assert "Traceback" not in text
    if path.stem.startswith("01"):
        # The run's inline view: the quicklook and the estimates table, rendered as HTML.
        shown = [o["data"]["text/html"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
                 if "text/html" in o.get("data", {}) and "Run <code>" in o["data"]["text/html"]]
        assert shown and all("data:image/png;base64," in h and "ci95_low_ha" in h and "SYNTHETIC" in h for h in shown)


#: What a notebook may import from the project: the two packages' public names and the
#: demo world's (``estimator.demo``); everything else is internal.
PUBLIC = {"estimator", "training", "estimator.demo"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_imports_only_the_public_api(path):
    import importlib

    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Import):
                mods = [(a.name, None) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [(node.module or "", a.name) for a in node.names]
            else:
                continue
            for mod, name in mods:
                if mod.split(".")[0] not in ("estimator", "training"):
                    continue
                assert mod in PUBLIC, f"{path.name} imports {mod}: use the public API ({', '.join(sorted(PUBLIC))})"
                if name is not None:
                    assert name in importlib.import_module(mod).__all__, f"{path.name}: {mod}.{name} is not public"


def test_there_are_the_two_notebooks():
    assert {p.stem[:2] for p in NOTEBOOKS} >= {"01", "02"}
