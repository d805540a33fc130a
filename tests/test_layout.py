"""The package layout keeps its promises (issue 14): no import circles, dependencies point
inward to the query side, and the query side holds no torch model or DataLoader.

Every ``import`` in ``src/medactive`` counts, also those inside functions (a lazy import is
still a dependency). Groups, innermost first:

- foundation: errors, seeds, validation, progress bars, the optimiser step;
- query side: ``scoring/``, ``selection/``, ``strategies/``, ``predictions.py`` (numpy only);
- data: every loader (``data/``);
- encoders: backbones, self-supervised pretraining, external encoders (``encoders/``);
- tasks: ``tasks/classification/``, ``tasks/segmentation/``, ``inference.py``;
- loop: the active-learning cycle and the oracle (``loop/``, ``oracle/``), task-agnostic;
- application: the runner, bench, project, commands and CLI (anything else).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = SRC / "medactive"

FOUNDATION = {"medactive.errors", "medactive._random", "medactive._validation",
              "medactive.progress", "medactive._optim", "medactive._version"}
QUERY_PACKAGES = ("medactive.scoring", "medactive.selection", "medactive.strategies")
ALLOWED = {
    "foundation": {"foundation"},
    "query": {"foundation", "query"},
    "data": {"foundation", "data"},
    "encoders": {"foundation", "data", "encoders"},
    "tasks": {"foundation", "query", "data", "encoders", "tasks"},
    "loop": {"foundation", "query", "loop"},
}
TORCH_LIKE = ("torch", "monai", "timm", "torchvision")


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> tuple[set[str], set[str]]:
    """``(medactive modules imported, top-level third-party packages imported)``."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    ours, theirs = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] == "medactive":
                for alias in node.names:  # `from pkg import module` imports the module
                    sub = f"{source}.{alias.name}"
                    ours.add(sub if sub in MODULES else source)
            else:
                theirs.add(source.split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "medactive":
                    ours.add(alias.name)
                else:
                    theirs.add(alias.name.split(".")[0])
    return ours, theirs


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def group(module: str) -> str:
    if module in FOUNDATION:
        return "foundation"
    if module == "medactive.predictions" or module.startswith(QUERY_PACKAGES):
        return "query"
    for prefix, name in (("medactive.data", "data"), ("medactive.encoders", "encoders"),
                         ("medactive.tasks", "tasks"), ("medactive.inference", "tasks"),
                         ("medactive.loop", "loop"), ("medactive.oracle", "loop")):
        if module == prefix or module.startswith(prefix + "."):
            return name
    return "application"


def package(module: str) -> str:
    """The folder a module lives in; a module at the top of medactive is its own node."""
    path = MODULES[module]
    if path.parent == ROOT and path.name != "__init__.py":
        return module
    return ".".join(path.parent.relative_to(SRC).parts)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_walker_sees_lazy_and_relative_imports():
    ours, theirs = GRAPH["medactive.data.segmentation.nifti"]
    assert "medactive.data.segmentation.dicom" in ours  # imported inside functions
    assert "nibabel" in theirs
    assert "medactive.strategies.base" in GRAPH["medactive.strategies"][0]


def test_no_import_circles_between_modules():
    edges = {m: {d for d in deps if d in MODULES and d != m} for m, (deps, _) in GRAPH.items()}
    assert _cycles(edges) == []


def test_no_import_circles_between_packages():
    edges: dict[str, set[str]] = defaultdict(set)
    for module, (deps, _) in GRAPH.items():
        for dep in deps:
            if dep in MODULES and package(dep) != package(module):
                edges[package(module)].add(package(dep))
    assert _cycles(edges) == []


def test_dependencies_point_inward():
    wrong = sorted(f"{m} -> {d}" for m, (deps, _) in GRAPH.items() for d in deps
                   if d in MODULES and group(m) in ALLOWED and group(d) not in ALLOWED[group(m)])
    assert wrong == []


def test_tasks_and_their_loaders_stay_apart():
    pairs = [("medactive.tasks.classification", "medactive.tasks.segmentation"),
             ("medactive.data.classification", "medactive.data.segmentation")]
    wrong = []
    for a, b in pairs + [(b, a) for a, b in pairs]:
        wrong += [f"{m} -> {d}" for m, (deps, _) in GRAPH.items() if m.startswith(a)
                  for d in deps if d.startswith(b)]
    assert wrong == []


def test_nothing_inside_imports_the_public_facade():
    """``medactive/__init__.py`` gathers the public API; a module importing it would import
    everything (and circle back)."""
    assert sorted(m for m, (deps, _) in GRAPH.items() if "medactive" in deps) == []


def test_the_query_side_imports_no_torch():
    query = [m for m in MODULES if group(m) == "query"]
    assert "medactive.strategies.badge" in query and "medactive.predictions" in query
    wrong = sorted(f"{m} imports {t}" for m in query for t in GRAPH[m][1] if t in TORCH_LIKE)
    assert wrong == []
