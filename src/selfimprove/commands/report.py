"""`selfimprove report compare RUN_A RUN_B ...`, `selfimprove report view A.jsonl [B.jsonl ...] --out viewer.html`
and `selfimprove report curves RUN_DIR`."""

from __future__ import annotations

import typer

report_app = typer.Typer(help="Compare eval runs; view trajectories in a static HTML page; redraw training curves.", no_args_is_help=True)


@report_app.command("compare")
def compare(runs: list[str] = typer.Argument(..., help="Eval output dirs (or summary.json files); the first is A."),
            metric: str = typer.Option("f1", help="Metric by level (a run without it shows score); unknown names are refused."),
            out: str | None = typer.Option(None, "--output-dir", "--out",
                                           help="Directory for compare.md, compare.json and compare.png (95% interval "
                                                "error bars); --out for short.")) -> None:
    """Side-by-side table of runs by level, with differences against the first run (B - A); with the runs'
    records.jsonl, each change's 95% paired-bootstrap interval over examples, n and verdict (gain / loss / within noise)."""
    from selfimprove.eval.compare import compare_files

    text, written = compare_files(runs, metric, out)
    typer.echo(text)
    for path in written:
        typer.echo(f"wrote {path}")


@report_app.command("view")
def view(paths: list[str] = typer.Argument(..., help="Trajectory JSONL files, one run each (e.g. RUN/trajectories/*/*.jsonl)."),
         out: str = typer.Option("viewer.html", help="Output HTML file."),
         title: str | None = typer.Option(None, help="Page title."),
         compare: bool | None = typer.Option(None, "--compare/--no-compare",
                                             help="Two runs side by side per shared question (default: when exactly two files are given).")) -> None:
    """Write a self-contained HTML viewer: figures per run on top (answered, correct, mean score, parse errors,
    turns), then the episodes (filters: correct/incorrect, level, flags; opens offline). With two files, A and B
    side by side on the questions they share, with B - A."""
    from selfimprove.eval.viewer import write_viewer

    typer.echo(f"wrote {write_viewer(paths, out, title, compare)}")


@report_app.command("curves")
def curves(run_dir: str = typer.Argument(..., help="A training output dir (or its log_history.json)."),
           out: str | None = typer.Option(None, "--output-dir", "--out",
                                          help="Directory for curves.png (default: beside log_history.json); --out for short.")) -> None:
    """Redraw a training run's learning curves (curves.png) from its log_history.json."""
    from selfimprove.train.curves import redraw_curves

    path, metrics = redraw_curves(run_dir, out)
    typer.echo(f"wrote {path} ({', '.join(metrics)})")


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")
