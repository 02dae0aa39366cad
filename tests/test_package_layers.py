"""The package tree follows the pipeline: no package imports one that stands later, and no import cycles.

The order is the one docs/architecture.md describes; a new package must be placed in it here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import archbench

ROOT = Path(archbench.__file__).resolve().parent

#: Pipeline order; packages on one line of the docs share a rank (neither imports the other).
LAYERS: list[set[str]] = [
    {"errors", "files", "quiet"},
    {"spec"},
    {"neck"},
    {"models"},
    {"data"},
    {"detection", "segmentation"},
    {"train"},
    {"costs"},
    {"runs"},
    {"search"},
    {"board"},
    {"results"},
    {"cli"},
    {"__main__"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
#: Modules allowed loose at the top of archbench/: the entry points and the three base modules.
LOOSE = {"__init__", "__main__", "errors", "files", "quiet"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported archbench module, imported at module level?) for every import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] == "archbench":
                found.append((name, id(node) in top_level))
    return found


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def test_every_top_level_package_has_a_place_in_the_pipeline():
    loose = {p.stem for p in ROOT.glob("*.py")}
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert loose <= LOOSE, f"modules loose at the top of archbench/: {sorted(loose - LOOSE)}"
    assert packages <= set(RANK), f"packages missing from the pipeline order: {sorted(packages - set(RANK))}"


def test_no_package_imports_a_later_stage():
    modules = _modules()
    wrong = []
    for module, path in modules.items():
        source = _package(module)
        if source == "__init__":
            continue
        for target, _ in _imports(path):
            dest = _package(target)
            if dest in RANK and RANK[dest] > RANK[source]:
                wrong.append(f"{module} imports {target} ({source} stands before {dest})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles_between_modules():
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        graph[module] = set()
        for target, _ in _imports(path):
            # "from pkg import name" names either a module or an attribute: keep what is a module
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != module and not module.startswith(target + "."):
                graph[module].add(target)
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]) if nxt in stack else nxt)
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
