"""The house runs one way: every import in syncd goes down the floors, never across or up.

Floors, bottom up (docs/architecture.md draws them):

0. ``syncd.model``: the shared vocabulary; imports nothing of the project;
1. ``syncd.connectors``, ``syncd.mapping``, ``syncd.store``, ``syncd.outputs``: each
   imports the vocabulary and itself, never one another;
2. ``syncd.config`` and ``syncd.secrets``: the config schema, assembled from the
   registry of connector kinds;
3. orchestration (pipeline, service, CLI and their helpers): everything else.

Every import counts, also those inside functions; only ``if TYPE_CHECKING:`` blocks are
left out of the cycle check (they never run). The checker is run on the real tree and on
a copy with one deliberate backward import, which it must catch.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"syncd": ROOT / "syncd", "syncd.connectors": ROOT / "connectors", "syncd.mapping": ROOT / "mapping"}
ROOMS: tuple[tuple[str, str, int], ...] = (  # (module prefix, room, floor)
    ("syncd.model", "model", 0),
    ("syncd.connectors", "connectors", 1),
    ("syncd.mapping", "mapping", 1),
    ("syncd.store", "store", 1),
    ("syncd.outputs", "outputs", 1),
    ("syncd.config", "config", 2),
    ("syncd.config_tables", "config", 2),
    ("syncd.secrets", "config", 2),
)
ORCHESTRATION = ("orchestration", 3)


def room_of(module: str) -> tuple[str, int]:
    for prefix, room, floor in ROOMS:
        if module == prefix or module.startswith(prefix + "."):
            return room, floor
    return ORCHESTRATION


def project_sources() -> dict[str, str]:
    """Module name -> source text of every module of the installed layout."""
    found: dict[str, str] = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            if package == "syncd" and path.relative_to(folder).parts[0] in ("connectors", "mapping"):
                continue
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path.read_text(encoding="utf-8")
    return found


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(name: str, source: str, modules: set[str]) -> Iterator[tuple[str, int, bool]]:
    """(imported project module, line, only for type checking) for each import in ``source``."""
    tree = ast.parse(source)
    typing_only = _type_checking_lines(tree)
    package = name if name in modules and _is_package(name, modules) else name.rpartition(".")[0]
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target, node.lineno, node.lineno in typing_only


def _is_package(name: str, modules: set[str]) -> bool:
    return any(other.startswith(name + ".") for other in modules)


def violations(sources: dict[str, str]) -> list[str]:
    """Every import that runs against the floors, and every import cycle."""
    modules = set(sources)
    problems: list[str] = []
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, source in sorted(sources.items()):
        room, floor = room_of(name)
        for target, line, typing_only in imports_of(name, source, modules):
            target_room, target_floor = room_of(target)
            if target_room != room and target_floor >= floor:
                problems.append(
                    f"{name}:{line} imports {target} ({target_room}, floor {target_floor}) from {room}, floor {floor}"
                )
            if not typing_only:
                graph[name].add(target)
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in _cycles(graph)]
    return problems


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of modules (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_import_runs_down_the_floors_and_none_forms_a_cycle() -> None:
    assert violations(project_sources()) == []


@pytest.mark.parametrize(
    "module, line",
    [
        ("syncd.model.records", "from syncd.pipeline import Pipeline"),  # the vocabulary importing orchestration
        ("syncd.connectors.maildir", "from syncd.mapping.matcher import skip_reason"),  # a connector that matches
        ("syncd.store.store", "from syncd.outputs.view import build_view"),  # across floor 1
        ("syncd.mapping.matcher", "from syncd.config import Config"),  # up to the config
    ],
)
def test_a_deliberate_backward_import_is_caught(module: str, line: str) -> None:
    sources = project_sources()
    sources[module] = sources[module] + f"\n\ndef _backward():\n    {line}\n"
    found = violations(sources)
    assert any(problem.startswith(f"{module}:") for problem in found), found


def test_a_deliberate_cycle_is_caught() -> None:
    sources = project_sources()
    sources["syncd.model.errors"] += "\n\ndef _cycle():\n    from syncd.model.records import Batch\n"
    sources["syncd.model.records"] += "\n\ndef _cycle():\n    from syncd.model.errors import SourceError\n"
    assert any("cycle" in problem for problem in violations(sources))


def test_modules_stay_small_unless_they_say_why() -> None:
    """About 500 lines at most; a longer module's docstring must say why it is one piece."""
    long = []
    for name, source in project_sources().items():
        lines = source.count("\n")
        docstring = ast.get_docstring(ast.parse(source)) or ""
        if lines > 520 and "one piece" not in docstring:
            long.append(f"{name}: {lines} lines")
    assert long == []


def test_the_registry_is_the_only_place_that_lists_source_kinds() -> None:
    """Outside the kind's own module and the registry, no module names a kind."""
    from syncd.connectors.registry import BUILTIN_KINDS

    kinds = {name for name, _path in BUILTIN_KINDS}
    offenders = []
    for name, source in project_sources().items():
        if name in ("syncd.connectors.registry",) or name.startswith("syncd.connectors."):
            continue  # the registry, and the connectors, each of which declares its own kind
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in kinds:
                offenders.append(f"{name}:{node.lineno} names the kind {node.value!r}")
    assert offenders == []
