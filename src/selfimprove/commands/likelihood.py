"""`selfimprove likelihood`: how likely a model finds a task's reference answers (a forgetting check)."""

from __future__ import annotations

import typer


def likelihood(
    task: str = typer.Option(..., help="A task with reference answers (countdown, hotpotqa, ...)."),
    model: str = typer.Option("smollm2-135m", help="A local transformers model spec."),
    adapter: str | None = typer.Option(None, help="A PEFT adapter directory, merged in before scoring."),
    data: str | None = typer.Option(None, help="The task's data source (default: its bundled demo)."),
    limit: int | None = typer.Option(None, min=1, help="Only the first N examples."),
    closed_book: bool = typer.Option(False, "--closed-book", help="HotpotQA: the question without its paragraphs."),
    batch_size: int = typer.Option(8, min=1),
    output_dir: str = typer.Option(..., "--output-dir", "--out", help="Where records.jsonl and summary.json go."),
    overwrite: bool = typer.Option(False, help="Start afresh in a directory holding another run."),
) -> None:
    """Mean log-probability per token of each reference answer; compare two runs with `report compare --metric logprob`."""
    from selfimprove.eval.likelihood import LikelihoodSettings, run_likelihood, summary_markdown

    if closed_book and task != "hotpotqa":
        from selfimprove.errors import ConfigError

        raise ConfigError(f"--closed-book: only hotpotqa has paragraphs to leave out (task: {task})")
    options = {"with_context": False} if closed_book else {}
    summary = run_likelihood(LikelihoodSettings(task=task, task_options=options, model=model, adapter=adapter,
                                                data=data, limit=limit, batch_size=batch_size, output_dir=output_dir,
                                                overwrite=overwrite))
    typer.echo(summary_markdown(summary))


def register(app: typer.Typer) -> None:
    app.command("likelihood")(likelihood)
