"""`selfimprove eval`: models x a task x N repeats -> records, summary.json/.md and plots (resumable)."""

from __future__ import annotations

import typer


def eval_command(
    task: str = typer.Option("hotpotqa", help="Task name (hotpotqa, countdown, ...), a task plugin, or module:Class (with --allow-import)."),
    model: list[str] = typer.Option(["smollm2-135m"], "--model", "-m", help="Model spec; repeat to compare."),
    adapter: str | None = typer.Option(None, help="PEFT adapter dir applied to every local --model."),
    repeats: int = typer.Option(1, min=1, help="Independent runs (different seeds); mean ± std over them."),
    seed: int = typer.Option(0, help="Base seed; repeat r uses seed + 1000 * r."),
    only_repeat: list[int] = typer.Option([], help="Run only this repeat index (repeatable), to split repeats "
                                                   "across processes; a final plain run summarises all."),
    data: str | None = typer.Option(
        None, help="Examples: a file (.jsonl/.json/.parquet/.csv, .gz), several (a,b or a glob), or "
                   "hf:ORG/NAME[:CONFIG[:SPLIT]]; default: the task's bundled demo."),
    limit: int | None = typer.Option(None, min=1, help="Use only the first N examples."),
    per_level: int | None = typer.Option(None, min=1, help="Use the first N examples of each level."),
    format: str = typer.Option("auto", help="react | xml | tools | single (auto: react for hotpotqa)."),
    searcher: str = typer.Option("bm25", help="Searcher for agent formats: bm25, dense or wikipedia."),
    corpus: str | None = typer.Option(None, help="Corpus JSONL (default: the examples' contexts)."),
    index_dir: str | None = typer.Option(None, help="Index dir from `selfimprove index build` (overrides --corpus)."),
    temperature: float | None = typer.Option(None, min=0.0, help="Default: 0 for one repeat, 0.7 for several."),
    max_tokens: int = typer.Option(128, min=1, help="Per model turn."),
    max_turns: int = typer.Option(5, min=1, help="Agent turns per episode."),
    on_parse_error: str = typer.Option("continue", help="continue: an unparseable step gets an error observation; "
                                       "end: it ends the episode with score 0 (Araft)."),
    batch_size: int = typer.Option(8, min=1, help="Single-turn examples per batch (the unit of resume)."),
    reflect: bool = typer.Option(False, help="Single-turn: reflect on failures and retry (first vs second try)."),
    output_dir: str = typer.Option("runs/eval", "--output-dir", "--out",
                                   help="Output directory (re-run the same command to resume); --out for short."),
    overwrite: bool = typer.Option(False, help="Start afresh: delete this command's outputs in --output-dir first "
                                   "(needed to re-run an existing --output-dir with other settings)."),
) -> None:
    """Evaluate models on a task: Araft table by level/type, pass@k, behaviour, cost."""
    from selfimprove.config import validate
    from selfimprove.eval.harness import EvalSettings, run_eval
    from selfimprove.eval.report import group_table, table_metrics

    options = {"task": task, "models": model, "adapter": adapter, "repeats": repeats, "seed": seed,
               "only_repeats": only_repeat or None,
               "data": data, "limit": limit, "per_level": per_level, "format": format, "searcher": searcher,
               "corpus": corpus, "index_dir": index_dir, "temperature": temperature, "max_tokens": max_tokens,
               "max_turns": max_turns, "on_parse_error": on_parse_error, "batch_size": batch_size, "reflect": reflect,
               "output_dir": output_dir, "overwrite": overwrite}
    settings = validate(EvalSettings, options, "eval options")
    summary = run_eval(settings)
    for metric in table_metrics(summary):
        typer.echo(f"{metric} (%, mean ± std over {repeats} repeat(s)):\n{group_table(summary, 'by_level', metric)}\n")
    typer.echo(f"wrote {output_dir}/summary.md, summary.json, records.jsonl, trajectories/ and plots")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
