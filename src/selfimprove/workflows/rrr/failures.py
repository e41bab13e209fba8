"""The offline failure dataset of Reflect-Retry-Reward: sample the model, keep its failed attempts.

`collect_failures(task, examples, generator, settings, out_dir)` samples `k` attempts per example
(temperature > 0; k single-turn episodes, `agent.single_turn`, run by the text loop) and appends every attempt to `out_dir/attempts.jsonl`, a resumable
`RecordStore` keyed by (example_id, attempt): a rerun skips what is already there. It then
writes `out_dir/failures.jsonl`: the failed attempts with their context (the task row, with the
task's chat `prompt`, the completion and the verifier's verdict), at most `per_example` distinct
failed completions per example, and `out_dir/summary.json` (counts, first-try accuracy). An
attempt that cannot be parsed is a failure like any other (scored 0 by the task, never raised).
A rerun resumes only with the same settings, task, model and examples (`out_dir/run.json`);
others are a ConfigError naming them unless `settings.overwrite` starts afresh; `out_dir/.lock`
keeps a second process out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from selfimprove.config import StrictModel
from selfimprove.data.jsonl import RecordStore, write_jsonl


class FailureSettings(StrictModel):
    """How failures are sampled."""

    k: int = Field(4, ge=1)
    temperature: float = Field(0.9, gt=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1)
    seed: int | None = 0
    per_example: int = Field(1, ge=1)
    batch_examples: int = Field(8, ge=1)
    overwrite: bool = False


OWNED = ("attempts.jsonl", "failures.jsonl", "summary.json")


def run_settings(task: Any, examples: list, generator: Any, settings: FailureSettings,
                 source: dict[str, Any] | None) -> dict[str, Any]:
    """What a resumed failure collection must share with the run it continues."""
    from selfimprove.run_dir import ids_digest

    return {**settings.model_dump(exclude={"overwrite"}), "task": getattr(task, "name", type(task).__name__),
            "model": getattr(generator, "name", None), "examples": len(examples),
            "example_ids": ids_digest(str(e.id) for e in examples), **(source or {})}


def attempt_key(record: dict[str, Any]) -> list:
    return [record["example_id"], record["attempt"]]


def sample_batch(task: Any, examples: list, generator: Any, settings: FailureSettings, batch_index: int) -> list[dict]:
    """k attempts for each example of one batch, scored, as attempt records."""
    from selfimprove.agent.single_turn import single_turns
    from selfimprove.models import SamplingParams

    seed = None if settings.seed is None else settings.seed + batch_index
    params = SamplingParams(max_tokens=settings.max_tokens, temperature=settings.temperature, top_p=settings.top_p,
                            seed=seed)
    tries = [(example, attempt) for example in examples for attempt in range(settings.k)]
    prompts = [task.render(example) for example in examples]
    turns = single_turns([prompt for prompt in prompts for _ in range(settings.k)], generator,
                         lambda spec, turn: params, task.extract)
    records = []
    for (example, attempt), turn in zip(tries, turns, strict=True):
        score = task.score(example, turn.text)
        records.append({"example_id": str(example.id), "attempt": attempt, "row": task.to_row(example),
                        "completion": turn.text, "finish_reason": turn.finish_reason,
                        "correct": bool(score.correct), "score": score.value, "error": score.error})
    return records


def collect_failures(task: Any, examples: list, generator: Any, settings: FailureSettings,
                     out_dir: str | Path, progress: bool = True, source: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sample, store every attempt (resumable), write failures.jsonl and summary.json; return the summary.

    `source`: more settings that identify the run (e.g. the data source), checked on resume.
    """
    from selfimprove.run_dir import run_in

    out_dir = Path(out_dir)
    with run_in(out_dir, "rrr failures", run_settings(task, examples, generator, settings, source),
                settings.overwrite, OWNED):
        return _collect(task, examples, generator, settings, out_dir, progress)


def _collect(task: Any, examples: list, generator: Any, settings: FailureSettings, out_dir: Path,
             progress: bool) -> dict[str, Any]:
    from rich.progress import Progress

    store = RecordStore(out_dir / "attempts.jsonl", key=attempt_key)
    todo = [e for e in examples if any([str(e.id), a] not in store for a in range(settings.k))]
    with Progress(disable=not progress) as bar:
        task_bar = bar.add_task("sampling attempts", total=len(examples), completed=len(examples) - len(todo))
        for index in range(0, len(todo), settings.batch_examples):
            batch = todo[index : index + settings.batch_examples]
            for record in sample_batch(task, batch, generator, settings, index // settings.batch_examples):
                store.append(record)
            bar.advance(task_bar, len(batch))
    return write_failures(store.records(), {str(e.id) for e in examples}, settings, out_dir)


def select_failures(attempts: list[dict[str, Any]], per_example: int) -> list[dict[str, Any]]:
    """Failed attempts, at most `per_example` distinct completions per example, in file order.

    >>> rows = [{"example_id": "a", "attempt": i, "correct": c, "completion": t}
    ...         for i, (c, t) in enumerate([(False, "x"), (False, "x"), (True, "y"), (False, "z")])]
    >>> [r["attempt"] for r in select_failures(rows, 2)]
    [0, 3]
    """
    kept: dict[str, list[str]] = {}
    failures = []
    for record in attempts:
        seen = kept.setdefault(record["example_id"], [])
        if record["correct"] or record["completion"] in seen or len(seen) >= per_example:
            continue
        seen.append(record["completion"])
        failures.append(record)
    return failures


def write_failures(attempts: list[dict[str, Any]], example_ids: set[str], settings: FailureSettings,
                   out_dir: Path) -> dict[str, Any]:
    attempts = [a for a in attempts if a["example_id"] in example_ids]
    failures = select_failures(attempts, settings.per_example)
    write_jsonl(out_dir / "failures.jsonl", failures)
    solved = {a["example_id"] for a in attempts if a["correct"]}
    summary = {"examples": len(example_ids), "attempts": len(attempts),
               "attempt_accuracy": sum(a["correct"] for a in attempts) / max(len(attempts), 1),
               "examples_solved_at_least_once": len(solved), "failures_kept": len(failures),
               "failures": str(out_dir / "failures.jsonl"), "settings": settings.model_dump(exclude={"overwrite"})}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary
