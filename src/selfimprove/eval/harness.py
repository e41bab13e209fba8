"""The evaluation harness: models x a task x N repeats, resumable, then summary, tables and plots.

`run_eval(settings)` evaluates each model on the task's examples `repeats` times. Repeat r
samples with seed `seed + 1000 * r` (the agent adds the turn number, so repeats never share a
seed). Agent tasks (format react / xml / tools) run `selfimprove.agent.run_agent` (`on_parse_error`:
"continue" answers an unparseable step and goes on, "end" stops the episode there with score 0,
as Araft does); single-turn
tasks (format "single", e.g. countdown) go through `selfimprove.eval.single_turn` (with
`reflect`, failed first tries get a reflection and a second try, as in Reflect-Retry-Reward).
Either way every episode is appended, as it ends, to `OUTPUT_DIR/trajectories/<model>/repeat-<r>.jsonl`
(a `RecordStore` of the shared trajectory schema keyed by example id and attempt), so a killed
eval resumes where it stopped and never writes an episode twice. Resumed sampled runs are valid samples but not
bit-identical to an uninterrupted run (batch composition changes the random stream).
`only_repeats` runs just those repeat indices, so repeats can be split across processes (each
writes its own files); the summary covers the repeat files that exist, and a last plain run
with the same output dir completes and summarises everything.
A re-run resumes only with the same settings (`only_repeats` aside): `output_dir/run.json` records
them and other settings are a ConfigError naming each difference, unless `overwrite` deletes the
eval's outputs first. A plain run holds `output_dir/.lock` exclusively; `only_repeats` runs share
it (and each repeat has its own exclusive lock), so split repeats still run side by side while a
second plain run into the same output dir is refused.
The agent knobs (`searcher`, `corpus`, `index_dir`, `max_turns`, `search_k`, the observation and
query caps, `on_parse_error`, `max_tokens`) are `AgentSettings`' fields, with its names,
constraints and defaults; each repeat runs the agent with `agent_settings(settings, seed)`.
Outputs: records.jsonl (one flat row per model x repeat x example), summary.json, summary.md,
levels.png, pass_at_k.png. Model output is only parsed and scored, never executed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from selfimprove.agent.settings import AgentSettings
from selfimprove.config import StrictModel
from selfimprove.data.jsonl import RecordStore, read_jsonl, write_jsonl
from selfimprove.data.trajectory import trajectory_key
from selfimprove.errors import UserError
from selfimprove.eval.records import behaviour_by_repeat, eval_rows
from selfimprove.eval.report import markdown_report, write_run_plots
from selfimprove.eval.single_turn import SINGLE_TURN, run_single_turn
from selfimprove.eval.summary import summarize_run
from selfimprove.models.adapters import check_adapter, load_generator_with_adapter
from selfimprove.models.generator import Generator, SamplingParams, default_temperature
from selfimprove.tasks.base import Example, Task
from selfimprove.tasks.selection import select_examples

AUTO = "auto"
REPEAT_SEED_STRIDE = 1000
AGENT = AgentSettings.model_fields  # eval's agent knobs are these fields (one spelling, one default)


class EvalSettings(StrictModel):
    """Everything one eval run needs (also written into summary.json as `run`)."""

    task: str = "hotpotqa"
    models: list[str] = Field(default_factory=lambda: ["smollm2-135m"], min_length=1)
    adapter: str | None = None
    data: str | list[str] | None = None
    limit: int | None = Field(None, ge=1)
    per_level: int | None = Field(None, ge=1)
    repeats: int = Field(1, ge=1)
    only_repeats: list[int] | None = None
    seed: int = 0
    format: str = AUTO
    searcher: str = AGENT["searcher"]
    corpus: str | None = AGENT["corpus"]
    index_dir: str | None = AGENT["index_dir"]
    temperature: float | None = Field(None, ge=0.0)  # None: default_temperature(repeats)
    max_tokens: int = AGENT["max_tokens"]
    max_turns: int = AGENT["max_turns"]
    search_k: int = AGENT["search_k"]
    max_observation_chars: int = AGENT["max_observation_chars"]
    max_query_chars: int = AGENT["max_query_chars"]
    on_parse_error: Literal["continue", "end"] = AGENT["on_parse_error"]
    batch_size: int = Field(8, ge=1)
    reflect: bool = False
    output_dir: str = "runs/eval"
    overwrite: bool = False

    @model_validator(mode="after")
    def _default_temperature(self) -> EvalSettings:
        if self.temperature is None:
            self.temperature = default_temperature(self.repeats)
        return self

    def agent_format(self) -> str:
        if self.format != AUTO:
            return self.format
        from selfimprove.tasks import TASKS

        return getattr(TASKS.get(self.task), "agent_format", SINGLE_TURN)  # the task's own default


OWNED = ("trajectories", "records.jsonl", "summary.json", "summary.md", "levels.png", "pass_at_k.png")
RESUME_IRRELEVANT = {"output_dir", "overwrite", "only_repeats"}
AGENT_KNOBS = ("searcher", "corpus", "index_dir", "max_tokens", "max_turns", "search_k", "max_observation_chars",
               "max_query_chars", "on_parse_error", "temperature")


def run_settings(settings: EvalSettings) -> dict[str, Any]:
    """The settings a resumed eval must share with the run it continues."""
    return settings.model_dump(exclude=RESUME_IRRELEVANT)


def model_slug(model: str) -> str:
    """A file-system-safe name for a model spec.

    >>> model_slug("openai:gpt-4o@http://h:8000/v1")
    'openai_gpt-4o_http_h_8000_v1'
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_") or "model"


def trajectory_path(output_dir: Path, model: str, repeat: int) -> Path:
    return output_dir / "trajectories" / model_slug(model) / f"repeat-{repeat}.jsonl"


def agent_settings(settings: EvalSettings, seed: int) -> AgentSettings:
    """The agent settings of one repeat: eval's agent knobs, its format and the repeat's seed."""
    knobs = {name: getattr(settings, name) for name in AGENT_KNOBS}
    return AgentSettings(**knobs, format=settings.agent_format(), seed=seed)


def build_task_searcher(settings: EvalSettings, examples: list[Example]):
    """The searcher for agent runs: `--index-dir`, else over `--corpus`, else over the examples' contexts."""
    from selfimprove.tools import build_searcher, load_index
    from selfimprove.tools.corpus import corpus_from_contexts, load_corpus_jsonl

    if settings.index_dir:
        return load_index(settings.index_dir)
    if settings.corpus:
        documents = load_corpus_jsonl(settings.corpus)
    else:
        documents = corpus_from_contexts(ex.meta.get("context") or [] for ex in examples)
    return build_searcher(settings.searcher, documents)


def run_repeat(generator: Generator, task: Task, examples: list[Example], searcher: Any,
               settings: EvalSettings, repeat: int, store: RecordStore) -> None:
    """Run (or finish) one repeat of one model; every episode lands in `store`."""
    seed = settings.seed + REPEAT_SEED_STRIDE * repeat
    fmt = settings.agent_format()
    if fmt == SINGLE_TURN:
        params = SamplingParams(max_tokens=settings.max_tokens, temperature=settings.temperature, seed=seed)
        run_single_turn(generator, task, examples, params, settings.batch_size, store, settings.reflect)
        return
    from selfimprove.agent import run_agent

    run_agent(generator, task, examples, searcher, fmt, agent_settings(settings, seed), store)


def eval_examples(settings: EvalSettings) -> tuple[Any, list[Example]]:
    """(task, the examples this eval uses): its source, then `select_examples` by `per_level`/`limit`."""
    from selfimprove.tasks import get_task

    task = get_task(settings.task)
    return task, select_examples(task.load(settings.data), settings.limit, settings.per_level)


def run_eval(settings: EvalSettings, generator_factory=None) -> dict[str, Any]:
    """Run (or resume) the whole eval and write its outputs; returns the summary.

    `generator_factory(spec) -> Generator` replaces model loading (tests pass scripted ones).
    """
    from selfimprove.run_dir import exclusive, run_in

    out = Path(settings.output_dir)
    if settings.adapter:
        check_adapter(settings.adapter)
    if settings.reflect and settings.agent_format() != SINGLE_TURN:
        raise UserError("--reflect (first vs second try) needs a single-turn task: pass --format single")
    task, examples = eval_examples(settings)
    if not examples:
        raise UserError(f"task {settings.task}: no examples loaded from {settings.data or 'the bundled demo'}")
    shared = settings.only_repeats is not None and not settings.overwrite
    with run_in(out, "eval", run_settings(settings), settings.overwrite, OWNED, shared=shared):
        searcher = None if settings.agent_format() == SINGLE_TURN else build_task_searcher(settings, examples)
        factory = generator_factory or (lambda spec: load_generator_with_adapter(spec, settings.adapter))
        for model in settings.models:
            run_model(settings, model, task, examples, searcher, factory)
        with exclusive(out, name=".lock-outputs", wait=True):
            return write_outputs(settings, [str(ex.id) for ex in examples], len(examples))


def run_model(settings: EvalSettings, model: str, task: Task, examples: list[Example], searcher: Any,
              factory) -> None:
    """Run (or finish) this model's repeats; it is loaded only when one of them has work left."""
    from selfimprove.run_dir import exclusive

    generator = None
    for repeat in range(settings.repeats):
        if settings.only_repeats is not None and repeat not in settings.only_repeats:
            continue
        with exclusive(settings.output_dir, name=f".lock-repeat-{repeat}"):
            store = RecordStore(trajectory_path(Path(settings.output_dir), model, repeat), key=trajectory_key)
            if all((str(ex.id), 0) in store for ex in examples):
                continue
            generator = generator or factory(model)
            run_repeat(generator, task, examples, searcher, settings, repeat, store)


def write_outputs(settings: EvalSettings, example_ids: list[str], count: int) -> dict[str, Any]:
    """Rows from the stored trajectories -> records.jsonl, summary.json/.md and plots."""
    out, wanted, rows = Path(settings.output_dir), set(example_ids), []
    behaviour: dict[str, list[dict[str, float]]] = {}
    for model in settings.models:
        for repeat in range(settings.repeats):
            path = trajectory_path(out, model, repeat)
            if not path.exists():  # a repeat another process (--only-repeat) has not started yet
                continue
            trajectories = [t for t in read_jsonl(path) if t["example_id"] in wanted]
            rows.extend(eval_rows(trajectories, model, repeat, agent=settings.agent_format() != SINGLE_TURN))
            behaviour.setdefault(model, []).append(behaviour_by_repeat(trajectories))
    write_jsonl(out / "records.jsonl", rows)
    run = {**settings.model_dump(), "format": settings.agent_format(), "examples": count}
    summary = summarize_run(rows, run, behaviour)
    summary["plots"] = [p.name for p in write_run_plots(summary, out)]
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    (out / "summary.md").write_text(markdown_report(summary), encoding="utf-8")
    return summary
