"""Security invariants checked on the source tree: model output is never executed or unpickled.

The AST of every module under src/ is scanned for calls to eval/exec/compile/__import__ (as
names or builtins attributes), imports of pickle-like modules, yaml.load without a safe
loader, torch.load without weights_only=True, read_pickle() and allow_pickle=True. One module may import pickle/joblib:
data/safe_load.py, which unpickles a DATASET only when the user opts in (SELFIMPROVE_ALLOW_PICKLE=1,
see tests/test_reliability_pickle.py), and only inside a function, never at import time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "selfimprove"
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_MODULES = {"pickle", "cPickle", "dill", "marshal", "shelve", "joblib", "cloudpickle"}
FILES = sorted(SRC.rglob("*.py"))
OPT_IN_UNPICKLER = SRC / "data" / "safe_load.py"


SAFE_LOADERS = {"SafeLoader", "CSafeLoader"}


def safe_loader_classes(tree: ast.Module) -> set[str]:
    """yaml's safe loaders plus the classes of this module that subclass one of them."""
    safe = set(SAFE_LOADERS)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(ast_name(base) in safe for base in node.bases):
            safe.add(node.name)
    return safe


def ast_name(node: ast.expr | None) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def problems_in(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    safe_loaders = safe_loader_classes(tree)
    found = []
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call):
            found += [f"{where}: {msg}" for msg in call_problems(node, safe_loaders)]
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{where}: imports {n}" for n in names if n.split(".")[0] in FORBIDDEN_MODULES]
    return found


def call_problems(node: ast.Call, safe_loaders: set[str]) -> list[str]:
    func = node.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
    keywords = {k.arg: k.value for k in node.keywords}
    if isinstance(func, ast.Name) and name in FORBIDDEN_CALLS or owner == "builtins" and name in FORBIDDEN_CALLS:
        return [f"calls {name}()"]
    if owner == "yaml" and name == "load" and ast_name(keywords.get("Loader")) not in safe_loaders:
        return ["yaml.load without SafeLoader"]
    if name == "read_pickle" or isinstance(keywords.get("allow_pickle"), ast.Constant) and keywords["allow_pickle"].value:
        return [f"{name}() unpickles"]
    if owner == "torch" and name == "load":
        weights_only = keywords.get("weights_only")
        if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
            return ["torch.load without weights_only=True"]
    return []


def test_scanner_catches_what_it_should(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text("import pickle\nimport yaml, torch\neval('1')\nyaml.load('a')\ntorch.load('x')\n"
                   "np.load('x', allow_pickle=True)\npd.read_pickle('x')\nnp.load('x', allow_pickle=False)\n"
                   "class NotSafeLoader(yaml.Loader): pass\nyaml.load('a', Loader=NotSafeLoader)\n"
                   "yaml.load('a', Loader=yaml.UnsafeLoader)\n")
    assert len(problems_in(bad)) == 8


def test_scanner_accepts_safe_loaders_and_their_subclasses(tmp_path):
    good = tmp_path / "probe.py"
    good.write_text("import yaml\nclass Bounded(yaml.SafeLoader): pass\nclass Deeper(Bounded): pass\n"
                    "yaml.load('a', Loader=yaml.SafeLoader)\nyaml.load('a', Loader=Bounded)\n"
                    "yaml.load('a', Loader=Deeper)\nyaml.load('a', Loader=yaml.CSafeLoader)\n")
    assert problems_in(good) == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_code_execution_or_unpickling(path):
    found = problems_in(path)
    if path == OPT_IN_UNPICKLER:
        found = [p for p in found if not p.endswith(("imports pickle", "imports joblib"))]
    assert found == []


def test_the_opt_in_unpickler_imports_pickle_only_inside_a_function():
    tree = ast.parse(OPT_IN_UNPICKLER.read_text(encoding="utf-8"))
    top_level = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    names = {alias.name for node in top_level for alias in node.names} | {node.module for node in top_level
                                                                          if isinstance(node, ast.ImportFrom)}
    assert not names & FORBIDDEN_MODULES
