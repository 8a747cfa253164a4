"""Model registry: ``ROOT/<model_id>/`` model directories and ``ROOT/registry.json``.

``registry.json`` lists every registered model (id, created, label batches, headline
metrics) and names the ``promoted`` one, which jobs use with ``model: promoted``. The index
is rewritten atomically; model directories are never modified once registered (their id is
the first 12 hex digits of the skops file's sha256). Reading and resolving references is in
:mod:`estimator.stages.model` (jobs need it; ``estimator`` never imports ``training``).
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from estimator.errors import ModelFileError
from estimator.location import write_json
from estimator.modelrefs import REGISTRY_FILE, is_registry_ref, read_registry, resolve_model_ref
from estimator.stages.model import Model, load_model

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_REGISTRY", "incoming_dir", "models", "promote", "register", "resolve"]

#: Registry root used by the CLI when ``--registry`` is not given.
DEFAULT_REGISTRY = Path("models")


def _summary(model: Model) -> dict[str, Any]:
    card, t = model.card, model.target_class
    metrics = card.get("metrics", {})
    labels = card.get("labels", {})
    batches = labels.get("batches") or [{"id": Path(str(labels.get("path", ""))).name, "sha256": labels.get("sha256")}]
    return {
        "id": model.model_id,
        "sha256": model.sha256,
        "created": card.get("created"),
        "label_batches": [{"id": b.get("id"), "sha256": b.get("sha256")} for b in batches],
        "cv": metrics.get("cv"),
        f"{t}_f1": metrics.get("per_class", {}).get(t, {}).get("f1"),
        "overall_accuracy": metrics.get("overall_accuracy"),
    }


def incoming_dir(root: Path) -> Path:
    """A fresh directory inside ``root`` to train into before :func:`register` names it."""
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".incoming-", dir=root))


def register(root: Path | str, model_dir: Path | str) -> Model:
    """Add the model in ``model_dir`` to the registry at ``root`` as ``root/<model_id>``
    (moved when it lies inside ``root``, copied otherwise) and list it in the index.

    Examples
    --------
    >>> import tempfile
    >>> import training
    >>> from estimator.demo import example
    >>> model = training.register(tempfile.mkdtemp(), example().model_dir)
    >>> model.path.name == model.model_id
    True
    """
    root, model_dir = Path(root), Path(model_dir)
    model = load_model(model_dir)
    dst = root / model.model_id
    if model_dir.resolve() != dst.resolve():
        if dst.exists():  # the very same skops bytes are already registered
            if model_dir.resolve().parent == root.resolve():
                shutil.rmtree(model_dir)
        elif model_dir.resolve().parent == root.resolve():
            model_dir.rename(dst)
        else:
            shutil.copytree(model_dir, dst)
    model = load_model(dst)
    index = read_registry(root)
    index["models"][model.model_id] = _summary(model)
    write_json(root / REGISTRY_FILE, index)
    return model


def resolve(root: Path, ref: str | Path) -> Path:
    """A model directory from a directory path, ``promoted``, a registry id (or unique
    prefix) or ``registry:<id>``."""
    if is_registry_ref(ref):
        return resolve_model_ref(str(ref), root)
    p = Path(ref)
    if (p / "model.skops").is_file():
        return p
    if (root / REGISTRY_FILE).is_file() and "/" not in str(ref):
        return resolve_model_ref(f"registry:{ref}", root)
    raise ModelFileError(f"{ref} is neither a model directory nor a model id in the registry {root}")


def promote(root: Path | str, ref: str | Path) -> Model:
    """Make ``ref`` the registry's promoted model (registering it first if it is a model
    directory outside the registry); the previous one is kept in ``history``.

    Jobs whose ``model`` is ``promoted`` then use it. ``ref`` is a model directory, a model
    id in the registry (or a unique prefix), or ``promoted``.

    Examples
    --------
    >>> import tempfile
    >>> import training
    >>> from estimator.demo import example
    >>> registry = tempfile.mkdtemp()
    >>> model = training.promote(registry, example().model_dir)
    >>> training.models(registry)["promoted"].tolist()
    [True]
    """
    root = Path(root)
    model = register(root, resolve(root, ref))
    index = read_registry(root)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    if index.get("promoted") != model.model_id:
        index.setdefault("history", []).append({"promoted": model.model_id, "at": now, "previous": index.get("promoted")})
    index["promoted"] = model.model_id
    write_json(root / REGISTRY_FILE, index)
    return model


def models(root: Path | str) -> pd.DataFrame:
    """The models of the registry at ``root``, one row each, the promoted one flagged.

    Columns: ``id``, ``created``, ``promoted``, the label batches, the cross-validation
    scheme and the headline metrics (``overall_accuracy``, ``<target>_f1``), in the order
    the models were registered.

    Examples
    --------
    >>> import tempfile
    >>> import training
    >>> from estimator.demo import example
    >>> registry = tempfile.mkdtemp()
    >>> model = training.promote(registry, example().model_dir)
    >>> table = training.models(registry)
    >>> table.loc[table["promoted"], "id"].tolist() == [model.model_id]
    True
    """
    import pandas as pd

    index = read_registry(Path(root))
    rows = [{"id": mid, "promoted": mid == index.get("promoted"), **{k: v for k, v in m.items() if k != "id"}}
            for mid, m in index["models"].items()]
    first = ["id", "created", "promoted"]
    df = pd.DataFrame(rows)
    return df[[*first, *[c for c in df.columns if c not in first]]] if rows else pd.DataFrame(columns=first)
