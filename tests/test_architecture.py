"""The package's imports point one way, down the layer table of the README ("Architecture"), and
no cycles anywhere; nothing but the command line imports the commands layer (tools/ included).

Read from the source (every import, at module level or inside a function), so a lazy import that
closes a cycle counts too: a cycle is two modules that each need the other to be understood. The
table is read from README.md, so that the rule and its documentation cannot drift apart.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gsedit"
COMMAND_LAYER = ("gsedit.commands", "gsedit.cli")
ENTRY_POINTS = (*COMMAND_LAYER, "gsedit.__main__")  # the modules that may import the command layer
BASE = "*"  # the table's row of the package's top-level modules (`gsedit/*.py`)


def layer_table(readme: str) -> list[str]:
    """The layers of the README's "Architecture" table, top first: "cli", "commands", ..., "*"."""
    section = readme[readme.index("## Architecture"):]
    section = section[: section.index("\n## ", 1)]
    layers = []
    for cell in re.findall(r"^\| `gsedit/([^`]+)` \|", section, re.M):
        layers.append(BASE if cell == "*.py" else cell.removesuffix("/").removesuffix(".py"))
    return layers


def layer_of(module: str) -> str:
    """gsedit.edit.api -> "edit"; gsedit.cli, gsedit.__main__ -> "cli"; gsedit.errors, gsedit -> "*"."""
    parts = module.split(".")
    if len(parts) == 1:
        return BASE
    if len(parts) == 2 and (PACKAGE / f"{parts[1]}.py").is_file():
        return "cli" if parts[1] in ("cli", "__main__") else BASE
    return parts[1]


def layer_violations(graph: dict[str, set[str]], layers: list[str]) -> list[str]:
    """"importer -> imported" for every import of a layer placed above the importer's."""
    rank = {layer: i for i, layer in enumerate(layers)}
    return sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if rank[layer_of(target)] < rank[layer_of(module)]
    )


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str], name: str | None = None) -> set[str]:
    """The gsedit modules that the file at `path` (the module `name`, default: its own) imports."""
    name = name or _module_name(path)
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


def tools_imports() -> dict[str, set[str]]:
    """The gsedit modules that each script of tools/ imports."""
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    return {f"tools.{p.stem}": _imports(p, modules, f"tools.{p.stem}") for p in sorted((ROOT / "tools").glob("*.py"))}


def test_imports_point_down_the_readme_layer_table():
    layers = layer_table((ROOT / "README.md").read_text())
    assert layers[:2] == ["cli", "commands"] and layers[-1] == BASE
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert folders - set(layers) == set(), "every folder of the package has its row in the table"
    assert set(layers) - folders - {"cli", BASE} == set(), "the table names no folder that is gone"
    assert layer_violations(import_graph(), layers) == []


def test_only_the_command_line_imports_the_commands_layer():
    graph = {**import_graph(), **tools_imports()}
    offenders = {
        module: sorted(t for t in targets if t.startswith(COMMAND_LAYER))
        for module, targets in graph.items()
        if not module.startswith(ENTRY_POINTS)
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
    layers = ["cli", "commands", "edit", "scene", BASE]
    assert layer_violations({"gsedit.scene.a": {"gsedit.edit.api", "gsedit.errors"}}, layers) == [
        "gsedit.scene.a -> gsedit.edit.api"]
    assert layer_violations({"gsedit.errors": {"gsedit.scene.a"}, "gsedit.cli": {"gsedit.commands.x"}}, layers) == [
        "gsedit.errors -> gsedit.scene.a"]
    real = import_graph()  # the walk sees real edges, lazy ones inside functions included
    assert "gsedit.scene.gaussians" in real["gsedit.scene.gaussian_scene"]
    assert "gsedit.commands.sessions" in real["gsedit.commands.edit"]  # imported inside Edit.run
    assert "gsedit.data.demo" in tools_imports()["tools.bench_multiturn"]  # and in tools/
    assert layer_table((ROOT / "README.md").read_text())[2:7] == ["studio", "batch", "evaluation", "viewer", "edit"]
