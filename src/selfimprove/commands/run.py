"""`selfimprove run RECIPE` and `selfimprove recipes`: run a chain of stages, resumably."""

from __future__ import annotations

import typer


def run(
    recipe: str = typer.Argument(..., help="Recipe YAML path, or the name of a shipped recipe."),
    out: str | None = typer.Option(None, help="Output directory (default: the recipe's `out`)."),
    from_stage: str | None = typer.Option(None, "--from", help="Re-run from this stage on."),
    overrides: list[str] = typer.Option([], "--set", help="Override a recipe key: a.b=c (repeatable)."),
    variant: str | None = typer.Option(None, help="A variant of the recipe, e.g. cpu."),
) -> None:
    """Run a recipe: each stage in its own directory with a manifest; finished stages are skipped."""
    from selfimprove.pipeline.recipe import load_recipe, output_dir
    from selfimprove.pipeline.runner import run_recipe

    loaded = load_recipe(recipe, overrides, variant)
    target = output_dir(loaded, out)
    run_recipe(loaded, target, from_stage=from_stage)
    typer.echo(f"recipe {loaded.name} finished: {target}")


def list_recipes() -> None:
    """List the recipes shipped with selfimprove."""
    from selfimprove.pipeline.recipe import load_recipe, shipped_recipes

    for name, path in shipped_recipes().items():
        recipe = load_recipe(path)
        variants = f" [variants: {', '.join(recipe.variants)}]" if recipe.variants else ""
        typer.echo(f"{name}\t{recipe.description}{variants}")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("recipes")(list_recipes)
