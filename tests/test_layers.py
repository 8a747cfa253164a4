"""The package layout's rules, checked on the source: imports go downwards only.

Every import is walked with ``ast``, including those inside functions (a lazy import is
still a dependency), so an upward import or a cycle cannot hide behind one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Layers from the bottom up: a module may import its own layer's modules (without a cycle)
#: and any layer below. Foundation modules are the top-level modules of ``estimator``.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("estimator.errors", "estimator.warnings", "estimator.bands", "estimator.grid", "estimator.synthetic",
     "estimator.lazy", "estimator.location", "estimator.modelrefs", "estimator.config", "estimator.console"),
    ("estimator.regions",),
    ("estimator.stages",),
    ("estimator.testing",),
    ("estimator.report",),
    ("estimator.run",),
    ("estimator.stats",),
    ("estimator.interpret",),
    ("estimator.claims",),
    ("training",),
    ("estimator.demo",),
    ("estimator.cli",),
)
#: Package facades: they re-export their own modules (lazily) and sit above everything.
FACADES = {"estimator", "estimator.__main__", "training.__main__"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in ("estimator", "training") for p in sorted((ROOT / pkg).rglob("*.py"))}


def _layer(module: str) -> int:
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{module} is in no layer of tests/test_layers.py; place it in one")


def _imports(module: str, path: Path, known: set[str]) -> list[tuple[str, str, int]]:
    """(imported module, imported name or '', line) for every project import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, "", node.lineno) for a in node.names if a.name.split(".")[0] in ("estimator", "training")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] not in ("estimator", "training"):
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                # ``from pkg import module`` imports the module, not a name of the package
                out.append((sub, "", node.lineno) if sub in known else (target, a.name, node.lineno))
    return out


MODULES = _modules()
GRAPH = {m: _imports(m, p, set(MODULES)) for m, p in MODULES.items()}


def test_every_module_has_a_layer() -> None:
    for m in MODULES:
        if m not in FACADES and m not in ("estimator.cli.__main__",):
            _layer(m)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m not in FACADES))
def test_imports_go_downwards(module: str) -> None:
    own = _layer(module)
    bad = []
    for target, _name, line in GRAPH[module]:
        if target in FACADES and target != "estimator":
            continue
        if target == "estimator":
            bad.append(f"line {line}: imports the package facade 'estimator'; import the module that defines the name")
            continue
        if _layer(target) > own:
            bad.append(f"line {line}: {target} (layer {_layer(target)}) is above {module} (layer {own})")
    assert not bad, f"{module}: upward imports:\n" + "\n".join(bad)


def _package(module: str) -> str:
    """The package a module belongs to for the private-name rule: the foundation modules are
    each their own package."""
    return module if _layer(module) == 0 else ".".join(module.split(".")[:2]) if module.startswith("estimator.") else "training"


def test_no_private_name_across_packages() -> None:
    bad = []
    for module, imports in GRAPH.items():
        for target, name, line in imports:
            if name.startswith("_") and target in MODULES and _package(target) != _package(module):
                bad.append(f"{module}:{line} imports {target}.{name}")
    assert not bad, "private names imported across packages:\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    edges = {m: {t for t, _n, _l in GRAPH[m] if t in MODULES and t not in FACADES} for m in MODULES}
    state: dict[str, int] = {}
    path: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                cycles.append([*path[path.index(t):], t])
            elif t not in state:
                visit(t)
        path.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_rules_catch_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: a stage importing the orchestrator is reported."""
    fake = tmp_path / "estimator" / "stages" / "bad.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from estimator.run.pipeline import run\n")
    imports = _imports("estimator.stages.bad", fake, set(MODULES))
    assert [(t, _layer(t)) for t, _n, _l in imports] == [("estimator.run.pipeline", _layer("estimator.run.pipeline"))]
    assert _layer("estimator.run.pipeline") > _layer("estimator.stages.bad")
