"""`selfimprove convert sft|dpo`: trajectories JSONL -> TRL training rows JSONL."""

from __future__ import annotations

from pathlib import Path

import typer

convert_app = typer.Typer(help="Turn trajectories into SFT rows or DPO pairs.", no_args_is_help=True)

SOURCE = typer.Option(..., "--in", help="Trajectories JSONL (e.g. distill's kept.jsonl).")
OUT = typer.Option(..., "--out", help="Output JSONL (TRL conversational format).")


def output_lock(out: Path):
    """An exclusive lock on `out` (a hidden `.NAME.lock` beside it): two converts never write it at once."""
    from selfimprove.run_dir import exclusive

    return exclusive(out.parent, name=f".{out.name}.lock", label=out)


def required_trajectories(path: Path) -> list:
    """The trajectories in `path`; a file with none is a DataError (there is nothing to convert)."""
    from selfimprove.data.trajectory import read_trajectories
    from selfimprove.errors import DataError

    trajectories = read_trajectories(path)
    if not trajectories:
        raise DataError(path, "no trajectories in this file (nothing to convert)")
    return trajectories


@convert_app.command("sft")
def sft(source: Path = SOURCE, out: Path = OUT,
        min_score: float | None = typer.Option(None, help="Skip trajectories whose score is below this.")) -> None:
    """One row per step: prompt = what the agent saw, completion = the step it wrote."""
    from selfimprove.convert.sft import sft_rows
    from selfimprove.data.jsonl import write_jsonl

    rows = list(sft_rows(required_trajectories(source), min_score=min_score))  # bad input fails before out is touched
    with output_lock(out):
        count = write_jsonl(out, rows)
    typer.echo(f"wrote {count} SFT rows to {out}")


@convert_app.command("dpo")
def dpo(
    source: Path = SOURCE, out: Path = OUT,
    attempts: Path | None = typer.Option(None, help="All attempts (distill's attempts.jsonl): adds failure pairs."),
    metric: str = typer.Option("f1", help="Score that marks an attempt successful (value or a breakdown key)."),
    success: float = typer.Option(1.0, help="An attempt with metric >= this is a success."),
    first_step: str = typer.Option("fixed", help="Step 0 has nothing to repeat: 'fixed' reply or 'skip'."),
    fixed_reply: str | None = typer.Option(None, help="The fixed useless reply for step 0."),
) -> None:
    """Pairs: chosen = the correct step, rejected = a repeat of the previous one (+ failure pairs)."""
    from selfimprove.convert.dpo import FIXED_USELESS_REPLY, dpo_rows
    from selfimprove.data.jsonl import write_jsonl
    from selfimprove.errors import UserError

    if first_step not in ("fixed", "skip"):
        raise UserError(f"--first-step must be 'fixed' or 'skip', got '{first_step}'")
    failed = required_trajectories(attempts) if attempts else []
    rows = dpo_rows(required_trajectories(source), failed, metric, success, first_step,
                    fixed_reply or FIXED_USELESS_REPLY)
    with output_lock(out):
        count = write_jsonl(out, rows)
    by_source = {s: sum(r["source"] == s for r in rows) for s in ("repetition", "failure")}
    typer.echo(f"wrote {count} DPO pairs to {out} ({by_source['repetition']} repetition, {by_source['failure']} failure)")


def register(app: typer.Typer) -> None:
    app.add_typer(convert_app, name="convert")
