"""The import graph of groklab/: no cycle, counting the imports inside functions (an import moved into a function
still runs, it only hides the cycle), and reporting never reaches the trainer.

Layers, every arrow pointing down: config, tasks → model → the loop (train, warm starts, checkpoints) → sweeps and
curricula; runs (the run folder's owner) and stats at the bottom; results, report, figures, claims and
method_stats read run folders only.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "groklab"
# the reporting layer: it reads run folders (through groklab.runs) and draws them
READERS = ("groklab.results", "groklab.report", "groklab.claims", "groklab.curriculum_report",
           "groklab.method_stats", "groklab.stats", "groklab.figures")
# what trains, or writes checkpoints: reporting must not reach it, not even through another module
TRAINING = ("groklab.train", "groklab.sweep", "groklab.sweep_backends", "groklab.warm_start", "groklab.checkpoint",
            "groklab.curriculum", "groklab.trackers", "groklab.model", "groklab.optim", "groklab.accelerators",
            "groklab.analysis.over_checkpoints")
# what the run folder's owner may stand on
BELOW_RUNS = ("groklab.runs", "groklab.atomic", "groklab.config", "groklab.typed", "groklab.errors", "groklab.tasks",
              "groklab.grokking", "groklab.sizes")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at module level or inside functions, except under `if TYPE_CHECKING:` (annotations
    only: never run)."""
    found, todo = [], [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and is_type_checking(node):
            todo += node.orelse
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        todo += ast.iter_child_nodes(node)
    return found


def targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """The package's modules an import statement loads (`from groklab import runs` → groklab.runs), with the
    packages above them (importing groklab.tasks.io runs groklab/tasks/__init__.py first) unless they hold
    `module` itself (already being imported when it runs), and never the root."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the module's package, one level up per extra dot
            package = module.split(".") if is_package else module.split(".")[:-1]
            base = ".".join(package[: len(package) - node.level + 1] + [base] * bool(base))
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    out = set()
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        while "." in name and not f"{module}.".startswith(f"{name}."):
            out.add(name)
            name = name.rpartition(".")[0]
    return out


def import_graph(root: Path) -> dict[str, set[str]]:
    """module → the package's modules it imports (anywhere in its code). The root package's own imports are left
    out: its `__getattr__` is the public front door (`groklab.load_run`), which loads groklab.api on a user's first
    use of one of its names, never while any module of the package is imported."""
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph = {}
    for module, path in files.items():
        edges: set[str] = set()
        if module != root.name:
            for node in imports(ast.parse(path.read_text(), str(path))):
                edges |= targets(node, module, path.name == "__init__.py", set(files))
        graph[module] = edges - {module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def reach(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module `start` loads, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for w in graph.get(todo.pop(), ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_no_import_cycle_in_groklab():
    found = cycles(import_graph(PACKAGE))
    assert not found, "import cycles (imports inside functions count): " + "; ".join(" ↔ ".join(c) for c in found)


def test_reporting_never_reaches_training():
    graph = import_graph(PACKAGE)
    readers = [m for m in graph if within(m, READERS)]
    assert "groklab.report" in readers and "groklab.figures.across_runs" in readers
    upward = {m: sorted(t for t in reach(graph, m) if within(t, TRAINING)) for m in readers}
    assert not {m: t for m, t in upward.items() if t}, upward


def test_runs_and_stats_stand_at_the_bottom():
    graph = import_graph(PACKAGE)
    above = sorted(t for t in reach(graph, "groklab.runs") if not within(t, BELOW_RUNS))
    assert not above, f"groklab.runs imports {above}"
    assert not reach(graph, "groklab.stats"), "groklab.stats imports other groklab modules"


def test_a_cycle_hidden_in_a_function_is_found(tmp_path):
    """The graph counts imports inside functions and resolves relative ones; annotation-only imports do not count."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import c\n")
    (pkg / "c.py").write_text("import pkg.a as a\n")
    (pkg / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n")
    graph = import_graph(pkg)
    assert graph["pkg.sub.b"] == {"pkg.c"}
    assert graph["pkg.a"] == {"pkg.sub", "pkg.sub.b"}  # importing pkg.sub.b runs pkg/sub/__init__.py first
    assert cycles(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    assert graph["pkg.d"] == set()
    (pkg / "c.py").write_text("")
    assert cycles(import_graph(pkg)) == []
