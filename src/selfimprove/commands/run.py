"""`selfimprove run RECIPE` and `selfimprove recipes`: run a chain of stages, resumably."""

from __future__ import annotations

import typer


def run(
    recipe: str | None = typer.Argument(None, help="Recipe YAML path, or the name of a shipped recipe."),
    config: str | None = typer.Option(None, "--config", help="The recipe, as an option (instead of RECIPE)."),
    out: str | None = typer.Option(None, "--output-dir", "--out",
                                   help="Output directory (default: the recipe's `out`); --out for short."),
    from_stage: str | None = typer.Option(None, "--from", help="Re-run this stage (from an empty directory; its old files go to STAGE.previous/) and every later one."),
    overrides: list[str] = typer.Option([], "--set", help="Override a recipe key: a.b=c (repeatable)."),
    variant: str | None = typer.Option(None, help="A variant of the recipe, e.g. cpu."),
    check: bool = typer.Option(False, "--check", help="Resolve every stage's data (no model loaded), print the "
                               "train/eval overlap per stage pair; exit 0 only when nothing overlaps, else 2."),
    ablate: str | None = typer.Option(None, "--ablate", help="Also train every stage that uses this reward "
                                      "without it, evaluate that copy the same way and compare with/without "
                                      "(95% intervals); finished stages of the recipe are reused."),
) -> None:
    """Run a recipe: each stage in its own directory with a manifest; finished stages are skipped."""
    from selfimprove.errors import ConfigError
    from selfimprove.workflows.pipeline.recipe import load_recipe, output_dir
    from selfimprove.workflows.pipeline.run_recipe import check_recipe_params, run_recipe

    if (recipe is None) == (config is None):
        raise ConfigError("run: give the recipe once, as RECIPE or as --config FILE")
    loaded = load_recipe(recipe or config, overrides, variant)
    if ablate is not None:
        from selfimprove.workflows.pipeline.ablation import ablate as with_ablation

        loaded = with_ablation(loaded, ablate)
    if check:
        check_recipe_params(loaded)
        raise typer.Exit(print_overlap(loaded))
    target = output_dir(loaded, out)
    run_recipe(loaded, target, from_stage=from_stage)
    typer.echo(f"recipe {loaded.name} finished: {target}")


def print_overlap(recipe) -> int:
    """Print the recipe's overlap lines; 0 when nothing overlaps at all (allowed overlaps too give 2)."""
    from selfimprove.workflows.pipeline.overlap import check_overlap

    report = check_overlap(recipe)
    for line in report.lines():
        typer.echo(line)
    verdict = "no train/eval overlap" if report.clean else "overlap allowed (allow_overlap: true)" if report.ok \
        else "OVERLAP: refused"
    typer.echo(f"recipe {recipe.name}: {verdict}")
    return 0 if report.clean else 2


def list_recipes() -> None:
    """List the recipes shipped with selfimprove."""
    from selfimprove.workflows.pipeline.recipe import load_recipe, shipped_recipes

    for name, path in shipped_recipes().items():
        recipe = load_recipe(path)
        variants = f" [variants: {', '.join(recipe.variants)}]" if recipe.variants else ""
        typer.echo(f"{name}\t{recipe.description}{variants}")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("recipes")(list_recipes)
