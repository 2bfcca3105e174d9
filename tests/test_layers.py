"""The package's parts import one way: a module never imports from a layer above its own.

Layers, lowest first (docs/reference/layout.md draws them from LAYERS); siblings in one layer do not
import each other either.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "d4rl_lite"

LAYERS = [
    {"errors"},  # exceptions with actionable messages
    {"device", "files", "locking", "paths", "plotting", "profiling", "records"},  # plumbing; what a run is
    {"schema"},  # what the JSON files the project reads must hold (reads them through files)
    {"references"},  # the tasks' reference scores, shipped and re-measured
    {"tasks"},  # task registry: env factories, protocols, normalized scores
    {"envs", "nets"},  # env copies and what drives them; network modules
    {"datasets", "evaluation"},  # storing and building data; evaluating policies
    {"algorithms"},  # the update math
    {"training"},  # the one training loop, checkpoints, run logs
    {"production", "benchmark"},  # dataset-production tooling; suites, runner, table, report
    {"cli"},
]


def part_of(module: str) -> str:
    """'d4rl_lite.datasets.storage' -> 'datasets'; 'd4rl_lite.tasks' -> 'tasks'."""
    return module.split(".")[1]


def layer_of(part: str) -> int:
    return next(i for i, parts in enumerate(LAYERS) if part in parts)


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("d4rl_lite."):
            found.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.module == "d4rl_lite":
            found.update(f"d4rl_lite.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("d4rl_lite."))
    return found


def test_every_part_of_the_package_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.name != "__init__.py") or (p.is_dir() and (p / "__init__.py").exists())}
    assert parts == set().union(*LAYERS)


def test_no_module_imports_from_a_layer_above_or_beside_it():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        if rel.parts == ("d4rl_lite", "__init__"):
            continue  # the package's facade re-exports from every layer
        own = part_of(".".join(rel.parts))
        for module in imports_of(path):
            other = part_of(module)
            if other != own and layer_of(other) >= layer_of(own):
                wrong.append(f"{'/'.join(rel.parts)}.py imports {module} ({other} is not below {own})")
    assert not wrong, "\n".join(wrong)


def test_the_layering_test_catches_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from d4rl_lite.training.loop import train\n")
    assert imports_of(bad) == {"d4rl_lite.training.loop"} and layer_of(part_of("d4rl_lite.training.loop")) > layer_of("datasets")


def module_graph() -> dict[str, set[str]]:
    """Every module of the package and the package modules it imports (at any depth of its code)."""
    modules = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for module in imports_of(path):
            found.add(module if module in modules else module.rsplit(".", 1)[0])
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):  # from d4rl_lite.benchmark import stats: the module stats
            if isinstance(node, ast.ImportFrom) and node.module in modules:
                found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each module that can reach itself (depth-first), or none."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_two_modules_import_each_other_even_through_others():
    package_facade = "d4rl_lite"  # re-exports from every layer, imported by no module of the package
    graph = {k: v - {package_facade} for k, v in module_graph().items() if k != package_facade}
    assert not cycles(graph), "\n".join(" -> ".join(c) for c in cycles(graph))


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
