"""The recipe schema: a named list of stages, each with a kind, params and inputs from earlier stages.

A stage input is written `STAGE:FILE` (a file inside an earlier stage's directory) or
`STAGE:` (the directory itself); anything else is a path relative to the working directory.
Recipes are validated before anything runs: unknown keys, unknown stage kinds, duplicate
stage names and inputs that point at later or missing stages are errors naming the recipe file.
"""

from __future__ import annotations

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


class Recipe(StrictModel):
    name: str
    description: str = ""
    out: str = "runs/{name}"
    stages: list[Stage]


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Load and check a recipe file (a path, or the name of a recipe shipped with the package)."""
    path = resolve_recipe_path(path)
    data = apply_overrides(read_yaml(path), overrides)
    recipe = validate(Recipe, data, source=str(path))
    check_recipe(recipe, str(path))
    return recipe


def shipped_recipes() -> dict[str, Path]:
    """Recipes shipped inside the package, by name."""
    folder = Path(__file__).resolve().parent.parent / "recipes"
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
    from selfimprove.pipeline.stages import STAGE_KINDS

    seen: set[str] = set()
    for index, stage in enumerate(recipe.stages):
        where = f"{source}: stages.{index} ({stage.name})"
        if stage.name in seen:
            raise ConfigError(f"{where}: duplicate stage name")
        if stage.kind not in STAGE_KINDS:
            raise ConfigError(f"{where}: {STAGE_KINDS.unknown_message(stage.kind)}")
        for key, ref in stage.inputs.items():
            producer = ref.partition(":")[0] if ":" in ref else None
            if producer is not None and producer not in seen:
                raise ConfigError(f"{where}: input '{key}' refers to '{producer}', which is not an earlier stage")
        seen.add(stage.name)


def output_dir(recipe: Recipe, out: str | Path | None = None) -> Path:
    return Path(out) if out else Path(recipe.out.format(name=recipe.name))
