"""The notebooks in notebooks/ execute top to bottom against the SYNTHETIC demo world."""

from __future__ import annotations

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


def test_there_are_the_two_notebooks():
    assert {p.stem[:2] for p in NOTEBOOKS} >= {"01", "02"}
