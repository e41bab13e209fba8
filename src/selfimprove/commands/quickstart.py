"""`selfimprove quickstart`: the README's main job (the `quickstart` recipe plus a before/after report)."""

from __future__ import annotations

import typer

NEXT_STEPS = """Where to look next:
  {out}/report.md                 the before/after table (also printed above)
  {out}/report/<metric>/compare.png  plots per metric
  {out}/after/summary.md          the full eval of the trained adapter; records.jsonl per example
  {out}/sft/train_summary.json    the training run (loss, steps, time); the adapter is in {out}/sft/adapter
  selfimprove recipes             other recipes: araft (distill -> SFT -> DPO), search-grpo, rrr-countdown, ..."""


def quickstart(
    out: str = typer.Option("runs/quickstart", "--output-dir", "--out",
                            help="Output directory (re-running skips finished stages); --out for short."),
    from_stage: str | None = typer.Option(None, "--from", help="Re-run this stage (from an empty directory; its old files go to STAGE.previous/) and every later one."),
    overrides: list[str] = typer.Option([], "--set", help="Override a recipe key: a.b=c (repeatable)."),
) -> None:
    """Baseline eval -> SFT on verified solutions -> eval again -> before/after report, on the embedded model."""
    from pathlib import Path

    from selfimprove.workflows.pipeline.before_after import write_before_after
    from selfimprove.workflows.pipeline.recipe import load_recipe
    from selfimprove.workflows.pipeline.run_recipe import run_recipe

    recipe = load_recipe("quickstart", overrides)
    run_recipe(recipe, Path(out), from_stage=from_stage)
    path, text = write_before_after(Path(out))
    typer.echo(text)
    typer.echo(NEXT_STEPS.format(out=out))
    typer.echo(f"report: {path}")


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart)
