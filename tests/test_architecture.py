"""The package's imports point one way: commands over the library, and no cycles anywhere.

Read from the source (every import, at module level or inside a function), so a lazy import that
closes a cycle counts too: a cycle is two modules that each need the other to be understood.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gsedit"
LIBRARY = ("scene", "render", "cameras", "edit", "models", "metrics", "data", "viewer")
COMMAND_LAYER = ("gsedit.commands", "gsedit.cli")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The gsedit modules that the file at `path` imports."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # `from pkg import sub` needs pkg/sub.py; `from pkg import name` needs pkg/__init__.py
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: _imports(path, set(files)) for name, path in files.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_the_package_has_no_import_cycle():
    assert import_cycles(import_graph()) == []


def test_the_library_never_imports_the_commands_layer():
    offenders = {
        module: sorted(t for t in targets if t.startswith(COMMAND_LAYER))
        for module, targets in import_graph().items()
        if module.split(".")[1:2] and module.split(".")[1] in LIBRARY
    }
    assert {m: t for m, t in offenders.items() if t} == {}


def test_cli_only_assembles_the_commands():
    """cli.py imports the command modules, the preset loader (the edit defaults) and the session lock
    (a busy folder is refused before the commands load), nothing else."""
    targets = import_graph()["gsedit.cli"]
    allowed = {"gsedit.edit.config", "gsedit.edit.lock"}
    assert all(t.startswith("gsedit.commands.") or t in allowed for t in targets), sorted(targets)
    assert sum(t.startswith("gsedit.commands.") for t in targets) >= 13  # every subcommand's module


def test_the_checks_see_a_cycle_and_a_layer_violation():
    """The two checks above on a made-up graph: they must not pass vacuously."""
    graph = {"gsedit.scene.a": {"gsedit.scene.b"}, "gsedit.scene.b": {"gsedit.scene.a"}, "gsedit.cli": set()}
    assert import_cycles(graph) == [["gsedit.scene.a", "gsedit.scene.b"]]
    real = import_graph()  # the walk sees real edges, lazy ones inside functions included
    assert "gsedit.scene.gaussians" in real["gsedit.scene.gaussian_scene"]
    assert "gsedit.commands.sessions" in real["gsedit.commands.edit"]  # imported inside Edit.run
