"""The import rule of docs/architecture.md: no import runs back up the layers, and no circle.

Every module of `src/selfimprove` is parsed (ast, nothing imported): each `from selfimprove.X ...`
and `import selfimprove.X`, at the top or inside a function, is an arrow from the module's unit to
unit X. `LAYERS` lists the floors from the bottom up; a unit may import units on lower floors
only (units sharing a floor, e.g. tasks/tools/models, do not import each other). Every top-level
module or package must be placed on a floor, so a new package has to be given its place here.
Relative imports are refused (they would hide arrows). A second check finds circles between
modules (all imports, including function-level ones).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "selfimprove"

# Floors from the bottom up; each floor holds units, a unit is a set of top-level modules/packages.
LAYERS: list[list[set[str]]] = [
    [{"__init__", "config", "registry", "errors", "run_dir", "cache", "launch"}],  # core
    [{"data"}],
    [{"tasks"}, {"tools"}, {"models"}],
    [{"agent"}],
    [{"rewards"}],
    [{"convert"}],
    [{"train"}],
    [{"eval"}],
    [{"workflows"}],
    [{"commands", "cli", "__main__"}],  # CLI
]

# Circles known today, by their modules (none: the reward catalogue has its own module).
KNOWN_CIRCLES: set[frozenset[str]] = set()


def place(top: str) -> tuple[int, int]:
    """(floor, unit) of a top-level module or package name."""
    for floor, units in enumerate(LAYERS):
        for unit, names in enumerate(units):
            if top in names:
                return floor, unit
    raise AssertionError(f"selfimprove.{top} is on no floor of tests/test_layers.py LAYERS: give it its layer")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every `selfimprove...` import in the file, wherever it is; relative ones fail."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import (write `from selfimprove.X import ...`)"
            names = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
            found += [(node.lineno, name) for name in names if name.split(".")[0] == "selfimprove"]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "selfimprove"]
    return found


def top_level(module: str) -> str:
    """`selfimprove.agent.loop` -> "agent"; `selfimprove` and `selfimprove.__version__` -> "__init__"."""
    parts = module.split(".")
    if len(parts) == 2 and not ((PACKAGE / parts[1]).is_dir() or (PACKAGE / f"{parts[1]}.py").is_file()):
        return "__init__"  # a name defined in selfimprove/__init__.py
    return parts[1] if len(parts) > 1 else "__init__"


def upward_arrows(files: list[Path]) -> list[str]:
    """Every import from a unit to a unit on a higher floor or a peer on its own floor."""
    wrong = []
    for path in files:
        here = place(top_level(module_name(path)))
        for line, module in imported(path):
            there = place(top_level(module))
            if there[0] > here[0] or (there[0] == here[0] and there[1] != here[1]):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: imports selfimprove.{top_level(module)} (floor {there[0]} "
                             f"from floor {here[0]})")
    return sorted(set(wrong))


def circles(files: list[Path]) -> set[frozenset[str]]:
    """Strongly connected groups of more than one module in the module import graph (Tarjan)."""
    modules = {module_name(path): path for path in files}
    graph = {name: {m for _, m in imported(path) if m in modules and m != name} for name, path in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = {stack.pop()}
            while node not in group:
                group.add(stack.pop())
            if len(group) > 1:
                found.add(frozenset(group))

    for name in graph:
        if name not in index:
            visit(name)
    return found


FILES = sorted(PACKAGE.rglob("*.py"))


def test_no_import_runs_back_up_the_layers():
    assert len(FILES) > 100
    assert upward_arrows(FILES) == []


def test_no_new_import_circle():
    assert circles(FILES) - KNOWN_CIRCLES == set()


def test_the_check_sees_function_level_upward_imports_and_circles(tmp_path):
    """What the rule catches: data importing agent inside a function, eval importing workflows, a circle."""
    package = tmp_path / "selfimprove"
    (package / "data").mkdir(parents=True)
    (package / "eval").mkdir()
    (package / "__init__.py").write_text("")
    (package / "data" / "convert.py").write_text("def f():\n    from selfimprove.agent.formats import get_format\n")
    (package / "eval" / "a.py").write_text("import selfimprove.workflows.rrr\nfrom selfimprove.eval import b\n")
    (package / "eval" / "b.py").write_text("def g():\n    from selfimprove.eval.a import x\n")
    files = sorted(package.rglob("*.py"))
    global PACKAGE
    saved, PACKAGE = PACKAGE, package
    try:
        arrows = upward_arrows(files)
        assert len(arrows) == 2 and "imports selfimprove.agent (" in arrows[0]
        assert "imports selfimprove.workflows (" in arrows[1]
        assert circles(files) == {frozenset({"selfimprove.eval.a", "selfimprove.eval.b"})}
        with pytest.raises(AssertionError, match="on no floor"):
            place("newpackage")
    finally:
        PACKAGE = saved
