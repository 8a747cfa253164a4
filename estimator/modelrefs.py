"""References to models in a model registry: ``promoted`` and ``registry:<id>``.

A job's ``model:`` may name a registry entry instead of a directory; the job loader resolves
it here, when the job is loaded, so a run names one concrete model. Writing the registry
(fit, promote) is ``training.registry``'s job; this module only reads its index.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from estimator.errors import ModelFileError

__all__ = ["REGISTRY_ENV", "REGISTRY_FILE", "is_registry_ref", "read_registry", "resolve_model_ref"]

#: The registry's index file, in the registry root beside the ``<model_id>/`` directories.
REGISTRY_FILE = "registry.json"
#: Environment variable naming the registry root a job's ``model: promoted`` refers to.
REGISTRY_ENV = "ESTIMATOR_MODELS"


def read_registry(root: Path) -> dict[str, Any]:
    """The registry index (``{"models": {id: entry}, "promoted": id | None}``); empty if absent."""
    path = root / REGISTRY_FILE
    if not path.is_file():
        return {"schema": 1, "models": {}, "promoted": None}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise ModelFileError(f"{path} is not valid JSON; restore it or rebuild it with `python -m training promote`") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise ModelFileError(f"{path} is not a model registry index (no 'models' mapping)")
    return data


def is_registry_ref(ref: str | Path) -> bool:
    """Whether a job's ``model:`` names a registry entry (``promoted`` or ``registry:<id>``)."""
    return str(ref) == "promoted" or str(ref).startswith("registry:")


def resolve_model_ref(ref: str, root: Path) -> Path:
    """The model directory of ``promoted`` or ``registry:<id>`` (an id prefix is enough when
    unambiguous) in the registry at ``root``.

    Raises
    ------
    ModelFileError
        No registry, nothing promoted, or an unknown or ambiguous id.
    """
    reg = read_registry(root)
    if ref == "promoted":
        model_id = reg.get("promoted")
        if not model_id:
            raise ModelFileError(
                f"no model is promoted in the registry {root}; run `python -m training promote MODEL_ID --registry {root}`"
            )
    else:
        want = ref.removeprefix("registry:")
        found = [m for m in reg["models"] if m.startswith(want)] if want else []
        if len(found) != 1:
            what = "no" if not found else f"{len(found)}"
            raise ModelFileError(f"{what} model in the registry {root} matches '{want}' (have: {', '.join(sorted(reg['models']))})")
        model_id = found[0]
    return root / model_id
