"""`selfimprove distill`: run a teacher agent k times per question, keep what passes (resumable)."""

from __future__ import annotations

from pathlib import Path

import typer

from selfimprove.models.embedded import DEFAULT_MODEL


def distill(
    output_dir: Path = typer.Option(..., "--output-dir", "--out",
                                    help="Output dir: attempts.jsonl, kept.jsonl, summary.json (resumable); --out for short."),
    teacher: str = typer.Option(DEFAULT_MODEL, help="Teacher model spec (the student itself = self-distillation), "
                                "or gold-path (an oracle replaying HotpotQA's supporting facts)."),
    adapter: str | None = typer.Option(None, help="PEFT adapter dir merged into the teacher (a warmed student)."),
    task: str = typer.Option("hotpotqa", help="Task name."),
    data: str | None = typer.Option(
        None, help="Examples: a file (.jsonl/.json/.parquet/.csv, .gz), several (a,b or a glob), or "
                   "hf:ORG/NAME[:CONFIG[:SPLIT]]; default: the task's bundled demo."),
    limit: int | None = typer.Option(None, min=1, help="Only the first N questions."),
    skip_eval_per_level: int | None = typer.Option(None, min=1, help="Leave out the questions `eval --per-level N` "
                                                   "uses (train on the rest, evaluate on those)."),
    fmt: str = typer.Option("react", "--format", help="Agent format: react, xml, tools, or an installed environment plugin."),
    searcher: str = typer.Option("bm25", help="Searcher: bm25, dense or wikipedia."),
    corpus: str | None = typer.Option(None, help="Corpus JSONL; default: the task's contexts."),
    index_dir: str | None = typer.Option(None, help="Index dir from `selfimprove index build`."),
    metric: str = typer.Option("f1", help="Keep on this score: value or a breakdown key (f1, em)."),
    threshold: float = typer.Option(1.0, help="Keep attempts with metric >= threshold (Araft: f1 = 1.0)."),
    attempts: int = typer.Option(1, "--attempts", "-k", min=1, help="Attempts per question."),
    temperature: float | None = typer.Option(None, min=0.0, help="Default: 0 for one attempt, 0.7 for several."),
    max_turns: int = typer.Option(5, min=1, help="Agent turns per episode."),
    max_tokens: int = typer.Option(128, min=1, help="Tokens per model turn."),
    seed: int | None = typer.Option(0),
    overwrite: bool = typer.Option(False, help="Start afresh: delete this command's outputs in --output-dir first "
                                   "(needed to re-run an existing --output-dir with other settings)."),
) -> None:
    """Distil trajectories from a teacher; prints kept/tried per level and behaviour metrics."""
    from selfimprove.agent import AgentSettings
    from selfimprove.models.generator import default_temperature
    from selfimprove.workflows.distill import DistillConfig, distill, print_summary

    temperature = temperature if temperature is not None else default_temperature(attempts)
    agent = AgentSettings(format=fmt, searcher=searcher, corpus=corpus, index_dir=index_dir, attempts=attempts,
                          temperature=temperature, max_turns=max_turns, max_tokens=max_tokens, seed=seed)
    config = DistillConfig(teacher=teacher, adapter=adapter, task=task, data=data, limit=limit,
                           skip_eval_per_level=skip_eval_per_level, metric=metric, threshold=threshold, agent=agent,
                           output_dir=str(output_dir), overwrite=overwrite)
    print_summary(distill(config))
    typer.echo(f"wrote {output_dir / 'kept.jsonl'} and {output_dir / 'attempts.jsonl'}")


def register(app: typer.Typer) -> None:
    app.command("distill")(distill)
