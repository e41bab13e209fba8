"""Distillation / rejection sampling: run a teacher agent, keep the trajectories that pass.

`distill(config)` runs the agent (`selfimprove.agent.run_agent`) with a teacher model (any model
spec: a local/hub checkpoint, `openai:...`, or the student itself for STaR/ReST-style
self-distillation, with `adapter` merged in when given; or `gold-path`, the oracle that replays
HotpotQA's supporting facts, for warm-starting students too small to act yet) for `agent.attempts` attempts per question, and writes to `output_dir/`:
- `attempts.jsonl`: EVERY attempt (one trajectory per (example id, attempt));
- `kept.jsonl`: the attempts whose `metric` reaches `threshold` (Araft: f1 >= 1.0);
- `summary.json`: kept / tried overall and per level, and `trajectory_metrics` of both sets
  (`behaviour_attempts`, `behaviour_kept`: the numbers `agent run` and `eval` report too).
Both JSONL files are `RecordStore`s keyed by (example id, attempt): a killed run restarts where it
stopped (only with the same settings: `output_dir/run.json` records them and a re-run with others is a
ConfigError naming them, unless `overwrite` starts afresh; `output_dir/.lock` keeps a second process out), and every key appears exactly once in each file (kept.jsonl is also re-derived from
attempts.jsonl on start, so a kill between the two appends loses nothing). Several attempts need
sampling: `attempts > 1` with temperature 0 is a ConfigError (the attempts would be identical).
`skip_eval_per_level: N` / `skip_eval_limit: M` leave out the examples an eval with `per_level: N` /
`limit: M` uses, so a recipe can train on the rest of a file and evaluate on held-out questions
(the recipe overlap check verifies this by content fingerprint before anything runs).
The agent's knobs, format and searcher included, are the `agent:` block (`AgentSettings`, as
GRPO's): `agent: {format: xml, searcher: bm25, max_turns: 5, attempts: 4, temperature: 0.7}`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from selfimprove.agent.settings import AgentSettings
from selfimprove.config import StrictModel
from selfimprove.data.jsonl import RecordStore
from selfimprove.data.trajectory import Trajectory, trajectory_key
from selfimprove.data.trajectory_metrics import metric_value
from selfimprove.errors import ConfigError
from selfimprove.models.embedded import DEFAULT_MODEL


class DistillConfig(StrictModel):
    """What to distil from whom, and what to keep. `metric` is "value" or a score breakdown key."""

    renamed: ClassVar[dict[str, str]] = {
        "format": "agent.format", "search": "agent.searcher", "searcher": "agent.searcher",
        "corpus": "agent.corpus", "index": "agent.index_dir", "index_dir": "agent.index_dir"}

    teacher: str = DEFAULT_MODEL
    adapter: str | None = None
    task: str = "hotpotqa"
    data: str | list[str] | None = None
    limit: int | None = Field(None, ge=1)
    skip_eval_per_level: int | None = Field(None, ge=1)
    skip_eval_limit: int | None = Field(None, ge=1)
    metric: str = "f1"
    threshold: float = 1.0
    agent: AgentSettings = Field(default_factory=AgentSettings)
    output_dir: str
    overwrite: bool = False


OWNED = ("attempts.jsonl", "kept.jsonl", "summary.json")


def run_settings(config: DistillConfig) -> dict[str, Any]:
    """The settings a resumed distillation must share with the run it continues."""
    return config.model_dump(exclude={"output_dir": True, "overwrite": True, "agent": {"progress"}})


def check_sampling(config: DistillConfig) -> None:
    if config.agent.attempts > 1 and config.agent.temperature <= 0:
        raise ConfigError(f"distill: {config.agent.attempts} attempts per question need agent.temperature > 0 "
                          "(greedy attempts would all be identical)")


class KeepingStore:
    """The store handed to `run_agent`: appends every attempt, and the passing ones to kept.jsonl."""

    def __init__(self, out: Path, metric: str, threshold: float):
        self.attempts = RecordStore(out / "attempts.jsonl", key=trajectory_key)
        self.kept = RecordStore(out / "kept.jsonl", key=trajectory_key)
        self.path, self.metric, self.threshold = self.attempts.path, metric, threshold
        for record in self.attempts.records():
            self.keep_if_passing(record)

    def passes(self, record: dict[str, Any]) -> bool:
        return metric_value(Trajectory.from_dict(record, self.path), self.metric) >= self.threshold

    def keep_if_passing(self, record: dict[str, Any]) -> None:
        if self.passes(record):
            self.kept.append(record)

    def append(self, record: dict[str, Any]) -> bool:
        written = self.attempts.append(record)
        self.keep_if_passing(record)
        return written


def level_counts(attempts: list[Trajectory], kept: list[Trajectory]) -> dict[str, dict[str, int]]:
    """{"all" and each level: {"tried", "kept", "questions", "questions_kept"}}."""
    table: dict[str, dict[str, Any]] = defaultdict(lambda: {"tried": 0, "kept": 0, "q": set(), "qk": set()})
    for group, key in ((attempts, "tried"), (kept, "kept")):
        for t in group:
            for level in ("all", t.level or "none"):
                table[level][key] += 1
                table[level]["q" if key == "tried" else "qk"].add(t.example_id)
    return {level: {"tried": row["tried"], "kept": row["kept"], "questions": len(row["q"]),
                    "questions_kept": len(row["qk"])} for level, row in sorted(table.items())}


def summarize_distillation(config: DistillConfig, out: Path) -> dict[str, Any]:
    """Write and return summary.json from the two JSONL files."""
    from selfimprove.data.trajectory import read_trajectories
    from selfimprove.data.trajectory_metrics import trajectory_metrics

    attempts = read_trajectories(out / "attempts.jsonl") if (out / "attempts.jsonl").exists() else []
    kept = read_trajectories(out / "kept.jsonl") if (out / "kept.jsonl").exists() else []
    counts = level_counts(attempts, kept)
    overall = counts.get("all", {"tried": 0, "kept": 0})
    summary = {"teacher": config.teacher, "adapter": config.adapter, "task": config.task, "metric": config.metric,
               "threshold": config.threshold, "tried": overall["tried"], "kept": overall["kept"], "attempts_per_question": config.agent.attempts,
               "temperature": config.agent.temperature, "counts": counts,
               "behaviour_attempts": trajectory_metrics(attempts),
               "behaviour_kept": trajectory_metrics(kept)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def distill(config: DistillConfig, generator: Any = None, searcher: Any = None) -> dict[str, Any]:
    """Run (or resume) a distillation; returns the summary. `generator`/`searcher` override the config."""
    from selfimprove.agent import run_agent
    from selfimprove.agent.searchers import searcher_for_run
    from selfimprove.run_dir import run_in

    check_sampling(config)
    out, agent = Path(config.output_dir), config.agent
    task, examples = distill_examples(config)
    with run_in(out, "distill", run_settings(config), config.overwrite, OWNED):
        searcher = searcher or searcher_for_run(agent.searcher, examples, agent.corpus, agent.index_dir)
        generator = generator or load_teacher(config, examples)
        store = KeepingStore(out, config.metric, config.threshold)
        run_agent(generator, task, examples, searcher, agent.format, agent, store)
        return summarize_distillation(config, out)


def distill_examples(config: DistillConfig) -> tuple[Any, list[Any]]:
    """(task, the examples distillation attempts): the source less the skipped eval examples, then `limit`."""
    from selfimprove.tasks import get_task
    from selfimprove.tasks.selection import held_out_examples

    task = get_task(config.task)
    examples = held_out_examples(task.load(config.data), config.skip_eval_per_level, config.skip_eval_limit)
    return task, examples[: config.limit]


def load_teacher(config: DistillConfig, examples: list[Any]) -> Any:
    """The teacher Generator: the gold-path oracle, or a model spec (with its adapter merged in)."""
    from selfimprove.agent.gold_path import GOLD_PATH, GoldPathTeacher
    from selfimprove.models.adapters import load_generator_with_adapter

    if config.teacher == GOLD_PATH:
        if config.adapter is not None:
            raise ConfigError(f"teacher {GOLD_PATH} takes no adapter")
        return GoldPathTeacher(examples, config.agent.format)
    return load_generator_with_adapter(config.teacher, config.adapter)


def print_summary(summary: dict[str, Any]) -> None:
    """Kept/tried per level and the behaviour metrics, as rich tables."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    counts = Table(title=f"kept ({summary['metric']} >= {summary['threshold']}) / tried")
    for column in ("level", "kept", "tried", "questions kept", "questions"):
        counts.add_column(column)
    for level, row in summary["counts"].items():
        counts.add_row(escape(str(level)), str(row["kept"]), str(row["tried"]), str(row["questions_kept"]), str(row["questions"]))
    behaviour = Table(title="agent behaviour")
    for column in ("metric", "all attempts", "kept"):
        behaviour.add_column(column)
    kept = flat_metrics(summary["behaviour_kept"])
    for key, value in flat_metrics(summary["behaviour_attempts"]).items():
        behaviour.add_row(key, str(value), str(kept.get(key)))
    console = Console()
    console.print(counts)
    console.print(behaviour)


def flat_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """`trajectory_metrics` with its `breakdown` means spelled `breakdown.KEY`, for one table."""
    flat = {key: value for key, value in metrics.items() if key != "breakdown"}
    flat.update({f"breakdown.{key}": value for key, value in (metrics.get("breakdown") or {}).items()})
    return flat
