"""The recipe schema: a named list of stages, each with a kind, params and inputs from earlier stages.

`variants:` maps a variant name (e.g. `cpu`) to values that replace some `vars` (the
full-scale defaults) when that variant is chosen. `vars:` holds named values that stage params use as `${name}`: a string that is exactly
`${name}` becomes the value itself (any type), `${name}` inside a longer string is replaced by
its text. `--set vars.model=...` thus switches the model of every stage at once. Unknown
variables are errors. A stage input is written `STAGE:FILE` (a file inside an earlier stage's directory) or
`STAGE:` (the directory itself); anything else is a path relative to the working directory.
Recipes are validated before anything runs: unknown keys, unknown stage kinds, duplicate
stage names, stage names that are not one plain path component (`^[A-Za-z0-9][A-Za-z0-9_.-]*$`,
so no `/`, `..` or absolute name can put a stage outside the run directory), `STAGE:FILE`
inputs whose FILE leaves the stage directory, and inputs that point at later or missing stages
are errors naming the recipe file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field

from selfimprove.config import StrictModel, apply_overrides, read_yaml, validate
from selfimprove.errors import ConfigError


class Stage(StrictModel):
    name: str
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, str] = Field(default_factory=dict)
    allow_overlap: bool = False


class Recipe(StrictModel):
    name: str
    description: str = ""
    out: str = "runs/{name}"
    vars: dict[str, Any] = Field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = Field(default_factory=dict)
    stages: list[Stage]


_VAR = re.compile(r"\$\{(\w+)\}")
STAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def substitute(value: Any, variables: dict[str, Any], where: str) -> Any:
    """Replace `${name}` references in strings, recursively through lists and mappings.

    >>> substitute({"models": ["${m}"], "out": "runs/${m}", "n": "${n}"}, {"m": "x", "n": 3}, "r")
    {'models': ['x'], 'out': 'runs/x', 'n': 3}
    """
    if isinstance(value, dict):
        return {k: substitute(v, variables, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, variables, f"{where}.{i}") for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    for name in _VAR.findall(value):
        if name not in variables:
            raise ConfigError(f"{where}: unknown variable ${{{name}}} (vars: {', '.join(variables) or 'none'})")
    whole = _VAR.fullmatch(value)
    if whole:
        return variables[whole.group(1)]
    return _VAR.sub(lambda m: str(variables[m.group(1)]), value)


def load_recipe(path: str | Path, overrides: list[str] | None = None, variant: str | None = None) -> Recipe:
    """Load and check a recipe file (a path, or the name of a shipped recipe), with a variant's vars."""
    path = resolve_recipe_path(path)
    data = read_yaml(path)
    if variant is not None:
        variants = data.get("variants") or {}
        if variant not in variants:
            raise ConfigError(f"{path}: no variant '{variant}' (variants: {', '.join(variants) or 'none'})")
        data["vars"] = {**(data.get("vars") or {}), **variants[variant]}
    data = apply_overrides(data, overrides)
    if isinstance(data.get("stages"), list):
        data["stages"] = substitute(data["stages"], data.get("vars") or {}, f"{path}: stages")
    recipe = validate(Recipe, data, source=str(path))
    check_recipe(recipe, str(path))
    return recipe


def shipped_recipes() -> dict[str, Path]:
    """Recipes shipped inside the package, by name."""
    folder = Path(__file__).resolve().parents[2] / "recipes"
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def resolve_recipe_path(path: str | Path) -> Path:
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    shipped = shipped_recipes()
    if str(path) in shipped:
        return shipped[str(path)]
    raise ConfigError(f"{path}: recipe not found (shipped recipes: {', '.join(shipped) or 'none'})")


def check_recipe(recipe: Recipe, source: str) -> None:
    from selfimprove.workflows.pipeline.stages import STAGE_KINDS

    seen: set[str] = set()
    for index, stage in enumerate(recipe.stages):
        where = f"{source}: stages.{index} ({stage.name})"
        if not STAGE_NAME.fullmatch(stage.name) or ".." in stage.name:
            raise ConfigError(f"{source}: stages.{index}: stage name {stage.name!r} is not a plain name (letters, "
                              "digits, '_', '-', '.'; no '/', '..' or absolute path): each stage writes to "
                              "RUN_DIR/NAME")
        if stage.name in seen:
            raise ConfigError(f"{where}: duplicate stage name")
        if stage.kind not in STAGE_KINDS:
            raise ConfigError(f"{where}: {STAGE_KINDS.unknown_message(stage.kind)}")
        for key, ref in stage.inputs.items():
            producer = ref.partition(":")[0] if is_stage_ref(ref) else None
            if producer is not None and producer not in seen:
                raise ConfigError(f"{where}: input '{key}' refers to '{producer}', which is not an earlier stage")
            if producer is not None and not inside_stage(ref.partition(":")[2]):
                raise ConfigError(f"{where}: input '{key}' ({ref}): the file must be inside stage "
                                  f"'{producer}' (a relative path without '..')")
        seen.add(stage.name)


def is_stage_ref(ref: str) -> bool:
    """Whether an input is `STAGE:FILE` / `STAGE:` (not a plain path).

    >>> is_stage_ref("distill:kept.jsonl"), is_stage_ref("./data/x.jsonl"), is_stage_ref("/abs/x")
    (True, False, False)
    """
    return ":" in ref and not ref.startswith(("/", "./"))


def inside_stage(rel: str) -> bool:
    """Whether FILE of `STAGE:FILE` stays inside the stage directory.

    >>> inside_stage("kept.jsonl"), inside_stage(""), inside_stage("../../etc/x"), inside_stage("/etc/x")
    (True, True, False, False)
    """
    path = Path(rel)
    return not path.is_absolute() and not rel.startswith(("\\", "/")) and ".." not in path.parts \
        and ".." not in rel.replace("\\", "/").split("/")


def output_dir(recipe: Recipe, out: str | Path | None = None) -> Path:
    return Path(out) if out else Path(recipe.out.format(name=recipe.name))
