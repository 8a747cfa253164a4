"""Sphinx configuration: the reference docs (API from the docstrings, the README's guide,
docs/*.md and the notebooks as stored, not re-run).

Build: ``python -m sphinx -W -b html docs docs/_build/html``; doctests:
``python -m sphinx -W -b doctest docs docs/_build/doctest``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

project = "coca-estimator"
author = "coca-estimator contributors"
copyright = "coca-estimator contributors, Apache-2.0"

extensions = [
    "myst_nb",  # Markdown (MyST) pages and notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
]

# Notebooks are shown with the outputs they were stored with; tests/demo/test_notebooks.py
# is what runs them.
nb_execution_mode = "off"
myst_heading_anchors = 3
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
suppress_warnings = ["myst.xref_missing"]  # README links to source files (configs/, estimator/) GitHub resolves

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

# Docstring examples are doctests; the demo example they start from is built once (cached).
doctest_test_doctest_blocks = "default"
doctest_global_setup = """
import warnings
warnings.filterwarnings("ignore", message=".*does not support server-side filters.*")
warnings.filterwarnings("ignore", message="Dataset has no geotransform.*")
warnings.filterwarnings("ignore", message=".*has no test pixel.*")
"""

html_theme = "alabaster"
html_title = "coca-estimator"

# The notebooks live in notebooks/ (executed by the tests there); Sphinx reads sources from
# docs/ only, so they are copied in on each build.
_NB = Path(__file__).parent / "notebooks"
_NB.mkdir(exist_ok=True)
for _src in sorted((ROOT / "notebooks").glob("*.ipynb")):
    shutil.copyfile(_src, _NB / _src.name)
