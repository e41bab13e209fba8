"""`selfimprove agent run`: run the search agent over a task and record trajectories."""

from __future__ import annotations

from pathlib import Path

import typer

from selfimprove.models.embedded import DEFAULT_MODEL

agent_app = typer.Typer(help="Run search agents and record trajectories.", no_args_is_help=True)


@agent_app.command("run")
def run(
    task: str = typer.Option("hotpotqa", help="Task name, an installed task plugin, or package.module:Class (with --allow-import)."),
    data: str | None = typer.Option(
        None, help="Examples: a file (.jsonl/.json/.parquet/.csv, .gz), several (a,b or a glob), or "
                   "hf:ORG/NAME[:CONFIG[:SPLIT]]; default: the task's bundled demo."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Model spec (see `models list`)."),
    fmt: str = typer.Option("react", "--format", help="Agent format: react, xml, tools, or an installed environment plugin."),
    searcher: str = typer.Option("bm25", help="Searcher: bm25, dense or wikipedia."),
    corpus: Path | None = typer.Option(None, help="Corpus JSONL {id,title,text}; default: the task's contexts."),
    index_dir: Path | None = typer.Option(None, help="Index directory from `selfimprove index build`."),
    output_dir: Path = typer.Option(..., "--output-dir", "--out",
                                    help="Output dir; writes trajectories.jsonl (resumable); --out for short."),
    limit: int | None = typer.Option(None, min=1, help="Run only the first N examples."),
    max_turns: int = typer.Option(5, min=1, help="Agent turns per episode."),
    max_tokens: int = typer.Option(128, min=1, help="Tokens per model turn."),
    temperature: float = typer.Option(0.0, min=0.0, help="0 = greedy."),
    seed: int | None = typer.Option(0, help="Sampling seed (the same default as eval and distill)."),
    attempts: int = typer.Option(1, min=1, help="Episodes per example."),
    overwrite: bool = typer.Option(False, help="Start afresh: delete this command's outputs in --output-dir first "
                                   "(needed to re-run an existing --output-dir with other settings)."),
) -> None:
    """Run the agent; resume (same settings only) skips (example, attempt) pairs already in OUTPUT_DIR/trajectories.jsonl."""
    import json

    from selfimprove.agent import AgentSettings, run_agent
    from selfimprove.agent.searchers import searcher_for_run
    from selfimprove.data.jsonl import RecordStore
    from selfimprove.data.trajectory import trajectory_key
    from selfimprove.data.trajectory_metrics import summary_lines, trajectory_metrics
    from selfimprove.models import load_generator
    from selfimprove.run_dir import run_in
    from selfimprove.tasks import get_task

    the_task = get_task(task)
    examples = the_task.load(data)
    config = AgentSettings(format=fmt, searcher=searcher, corpus=str(corpus) if corpus else None,
                           index_dir=str(index_dir) if index_dir else None, max_turns=max_turns,
                           max_tokens=max_tokens, temperature=temperature, seed=seed, attempts=attempts)
    settings = {"task": task, "data": data, "model": model, "limit": limit,
                "agent": config.model_dump(exclude={"progress"})}
    out = output_dir
    with run_in(out, "agent run", settings, overwrite, ("trajectories.jsonl", "summary.json")):
        search = searcher_for_run(config.searcher, examples, config.corpus, config.index_dir)
        store = RecordStore(out / "trajectories.jsonl", key=trajectory_key)
        trajectories = run_agent(load_generator(model), the_task, examples[:limit], search, fmt, config, store)
        summary = trajectory_metrics(trajectories)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    for line in summary_lines(summary):
        typer.echo(line)
    typer.echo(f"wrote {out / 'trajectories.jsonl'}")


def register(app: typer.Typer) -> None:
    app.add_typer(agent_app, name="agent")
