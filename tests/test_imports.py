"""The package's import graph, read from the source with ``ast``: no cycle, and the layering rules.

Every ``import`` / ``from ... import`` counts, at module level, inside functions and
under ``TYPE_CHECKING`` alike (a function-local import hides a cycle, it does not remove
it). ``from a import b`` is an edge to the module ``a.b`` when that is a module, else to
``a``; a parent package's ``__init__`` is not an edge (Python initialises it first).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "benchmark"

# Cycles the lead accepts for now, each as the sorted modules of its strongly connected
# component, with the reason. Empty: a cycle anywhere in benchmark/ fails the test.
ALLOWED_CYCLES: dict[tuple[str, ...], str] = {}


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package."""
    mods = {}
    for file in package.rglob("*.py"):
        parts = list(file.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = file
    return mods


def _import_nodes(tree: ast.Module, executed_on_import: bool):
    """Every import statement; with ``executed_on_import`` only those that run when the
    module is imported (not inside functions, not under ``if TYPE_CHECKING``)."""
    if not executed_on_import:
        yield from (n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)))
        return
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo += node.orelse
        else:
            todo += list(ast.iter_child_nodes(node))


def import_graph(package: Path = PACKAGE, executed_on_import: bool = False) -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its source (or, with
    ``executed_on_import``, only by the statements that run when it is imported)."""
    mods = module_files(package)
    root = package.name

    def resolve(name: str):
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for module, file in mods.items():
        is_package = file.name == "__init__.py"
        for node in _import_nodes(ast.parse(file.read_text(), str(file)), executed_on_import):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: from the module's package, up level - 1 packages
                    here = module.split(".") if is_package else module.split(".")[:-1]
                    base = ".".join(here[:len(here) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for name in targets:
                if name == root or name.startswith(root + "."):
                    target = resolve(name)
                    if target and target != module:
                        graph[module].add(target)
    return graph


def reachable_from(graph: dict[str, set[str]], module: str) -> set[str]:
    """``module`` and every module it imports, directly or not."""
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += graph[m]
    return seen


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle (a -> ... -> a) through each strongly connected component of >1 module."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def connect(v):  # Tarjan; the graph is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    found = []
    for component in components:
        start = min(component)
        paths, seen = [[start]], {start}  # breadth-first: the shortest way back to start
        while paths:
            path = paths.pop(0)
            if start in graph[path[-1]] and len(path) > 1:
                found.append(path + [start])
                break
            for w in sorted(graph[path[-1]] & component - seen):
                seen.add(w)
                paths.append(path + [w])
    return found


def test_the_cycle_finder_sees_function_local_and_from_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import c\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    (pkg / "d.py").write_text("from pkg.sub.b import f\n")
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.c"} and graph["pkg.d"] == {"pkg.sub.b"}
    assert cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]]


def test_the_package_has_no_import_cycle():
    found = {tuple(sorted(set(c))): c for c in cycles(import_graph())}
    unexpected = [" -> ".join(path) for key, path in found.items() if key not in ALLOWED_CYCLES]
    assert not unexpected, "import cycles:\n" + "\n".join(unexpected)
    fixed = [key for key in ALLOWED_CYCLES if key not in found]
    assert not fixed, f"allowed cycles no longer present (remove them from ALLOWED_CYCLES): {fixed}"


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _importers(graph, package: str) -> dict[str, set[str]]:
    """Modules outside ``package`` that import it -> the modules of it they import."""
    return {m: {t for t in deps if _in(t, package)} for m, deps in graph.items()
            if not _in(m, package) and any(_in(t, package) for t in deps)}


def test_data_never_imports_world_and_world_is_reached_only_through_its_entry_points():
    graph = import_graph()
    assert not {m: d for m, d in _importers(graph, "benchmark.world").items() if _in(m, "benchmark.data")}
    # DESIGN.md: world/ is reached only through its source, its judge and the model loader.
    entry_points = {"benchmark.world.source", "benchmark.world.judge"}
    allowed_importers = {"benchmark.models.backbone": {"benchmark.world.build", "benchmark.world.generator"}}
    wrong = {m: d - entry_points - allowed_importers.get(m, set())
             for m, d in _importers(graph, "benchmark.world").items()}
    assert not {m: d for m, d in wrong.items() if d}, wrong


HEAVY = {"torch", "numpy", "transformers", "diffusers", "cleanfid", "torchmetrics", "lightning"}


@pytest.mark.parametrize("module", ["benchmark.metrics.base", "benchmark.metrics.catalog", "benchmark.report.report"])
def test_metric_declarations_import_no_model_code(module):
    """The report and the W&B set-up read the declarations; importing them must not load torch."""
    graph, files = import_graph(executed_on_import=True), module_files()
    reachable = reachable_from(graph, module)
    heavy = {}
    for m in reachable:
        for node in _import_nodes(ast.parse(files[m].read_text()), executed_on_import=True):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            heavy.update({m: n for n in names if n.split(".")[0] in HEAVY})
    assert not heavy, f"{module} loads model code on import: {heavy}"


def test_evaluation_never_reaches_the_world_build():
    """Loading the judge must not load the build's training code (DESIGN.md: world via its judge)."""
    reachable = reachable_from(import_graph(), "benchmark.metrics.evaluate")
    assert "benchmark.world.judge" in reachable and "benchmark.world.build" not in reachable
