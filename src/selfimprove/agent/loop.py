"""The text-level loop: many episodes advanced together, and agent runs recorded as trajectories.

`drive_text(environments, generator, sampling)` runs any environments (`agent.environment`) to
their end: each turn, the live ones are grouped by `TurnSpec` and each group makes ONE batched
`generator.generate` call; the tool calls of the turn run batched (`run_tool_calls`: one
`search` call for all queries). It is the driver of evaluation, distillation, `agent run` and
Reflect-Retry-Reward's evaluation; GRPO drives the same environment objects token by token
(`train.rollouts`).

`run_agent(generator, task, examples, searcher, fmt, settings, store)` runs `settings.attempts`
search episodes (`agent.search_env.SearchEnvironment`) per example and records each as a
trajectory, scored by the task when it answered (0 otherwise) with `meta["end_reason"]`
("answer", "parse_error" or "step_limit"). With a `RecordStore`, each trajectory is appended as
soon as its episode ends, and a resumed run skips (example id, attempt) keys already written.

Guarantees: trajectories come back in (example, attempt) order whatever order episodes finish
in; with greedy decoding a batched run makes the same requests as a one-at-a-time run (the
model may still differ in rare cases through left-padding float rounding). With sampling and a
seed, the seed is applied per turn (seed + turn), so samples depend on the batch composition.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from selfimprove.agent.environment import Environment, ModelTurn, TurnSpec, observe_all
from selfimprove.agent.formats import AgentFormat, get_format
from selfimprove.agent.search_env import SearchEnvironment, SearchTool
from selfimprove.agent.settings import AgentSettings
from selfimprove.data.jsonl import RecordStore
from selfimprove.data.trajectory import Flags, Timing, Trajectory, trajectory_key
from selfimprove.models.generator import Completion, Generator, SamplingParams
from selfimprove.tasks.base import Example, Score, Task
from selfimprove.tools.base import Searcher

UNANSWERED = {"step_limit": "step limit reached without an answer",
              "parse_error": "episode ended at an unparseable step (on_parse_error: end)"}
SamplingFn = Callable[[TurnSpec, int], SamplingParams]


def model_turn(completion: Completion) -> ModelTurn:
    """A completion as a model turn (its text keeps the stop string the model wrote)."""
    return ModelTurn(text=completion.text + (completion.stop or ""),
                     ended=completion.finish_reason == "stop" and completion.stop is None,
                     ran_out=completion.finish_reason == "length", prompt_tokens=completion.num_prompt_tokens,
                     completion_tokens=completion.num_tokens)


@dataclass
class TurnSeconds:
    generate: float = 0.0
    tools: float = 0.0


def take_turn(environments: Sequence[Environment], generator: Generator, sampling: SamplingFn,
              turn: int) -> list[TurnSeconds]:
    """One model turn of every (live) environment: one generate call per TurnSpec, tools batched."""
    seconds = [TurnSeconds() for _ in environments]
    groups: dict[TurnSpec, list[int]] = {}
    for index, env in enumerate(environments):
        groups.setdefault(env.next_turn(), []).append(index)
    for spec, indices in groups.items():
        group = [environments[i] for i in indices]
        start = time.perf_counter()
        results = generator.generate([env.messages() for env in group], sampling(spec, turn))
        share = (time.perf_counter() - start) / len(group)
        calls = [env.step(model_turn(completions[0])) for env, completions in zip(group, results, strict=True)]
        start = time.perf_counter()
        observe_all(group, calls)
        tool_share = (time.perf_counter() - start) / max(sum(c is not None for c in calls), 1)
        for index, call in zip(indices, calls, strict=True):
            seconds[index] = TurnSeconds(share, tool_share if call is not None else 0.0)
    return seconds


def drive_text(environments: Sequence[Environment], generator: Generator, sampling: SamplingFn,
               on_turn: Callable[[list[Environment], list[TurnSeconds]], None] | None = None) -> None:
    """Run every environment to its end, all advanced together; `on_turn(live, seconds)` after each turn."""
    turn = 0
    while live := [env for env in environments if not env.done]:
        seconds = take_turn(live, generator, sampling, turn)
        if on_turn is not None:
            on_turn(live, seconds)
        turn += 1


@dataclass
class Episode:
    """One search episode of an agent run, with its timings."""

    example: Example
    attempt: int
    env: SearchEnvironment
    started: float = 0.0
    generate_seconds: float = 0.0
    search_seconds: float = 0.0

    @property
    def key(self) -> tuple[str, int]:
        return (self.example.id, self.attempt)


class AgentRun:
    """One call of `run_agent`: the shared context of its episodes."""

    def __init__(self, generator: Generator, task: Task, searcher: Searcher, fmt: AgentFormat,
                 settings: AgentSettings, store: RecordStore | None):
        self.generator, self.task, self.searcher, self.fmt = generator, task, searcher, fmt
        self.settings, self.store = settings, store
        self.tool = SearchTool(searcher, settings.search_k, settings.max_observation_chars)
        self.started_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def episode(self, example: Example, attempt: int) -> Episode:
        env = SearchEnvironment(self.fmt, self.fmt.prompt(example.question), self.tool, self.settings.max_turns,
                                self.settings.max_query_chars, self.settings.on_parse_error)
        return Episode(example, attempt, env, started=time.time())

    def sampling(self, spec: TurnSpec, turn: int) -> SamplingParams:
        return self.settings.sampling(spec.stop, turn, spec.max_tokens)

    def finish(self, episode: Episode) -> Trajectory:
        """Score the ended episode, build its trajectory and append it to the store."""
        env = episode.env
        if env.end_reason == "answer":
            score = self.task.score_answer(episode.example, env.answer)
        else:
            score = self.zero_score(episode.example, UNANSWERED[env.end_reason])
        trajectory = self.trajectory(episode, score)
        if self.store is not None:
            self.store.append(trajectory.to_dict())
        return trajectory

    def zero_score(self, example: Example, error: str) -> Score:
        """Score 0 with the task's breakdown keys all 0 (so averages stay comparable)."""
        keys = self.task.score_answer(example, "").breakdown
        return Score(value=0.0, correct=False, parsed=None, breakdown={k: 0.0 for k in keys}, error=error)

    def trajectory(self, episode: Episode, score: Score) -> Trajectory:
        env, meta = episode.env, episode.example.meta or {}
        flags = Flags(parse_errors=sum(s.parse_error is not None for s in env.steps),
                      repeated_queries=sum(s.repeated_query for s in env.steps),
                      step_limit=env.end_reason == "step_limit", finished=env.finished)
        timing = Timing(started=self.started_iso, seconds=round(time.time() - episode.started, 4),
                        generate_seconds=round(episode.generate_seconds, 4),
                        search_seconds=round(episode.search_seconds, 4))
        return Trajectory(
            task=getattr(self.task, "name", type(self.task).__name__), example_id=str(episode.example.id),
            attempt=episode.attempt, question=episode.example.question, gold=episode.example.answer,
            steps=env.steps, final_answer=env.answer, score=score.to_dict(), flags=flags,
            level=_str_or_none(meta.get("level")), type=_str_or_none(meta.get("type")),
            model=getattr(self.generator, "name", ""), agent_format=self.fmt.name, searcher=self.tool.name,
            generation=self.generation_settings(), timing=timing, meta={"end_reason": env.end_reason})

    def generation_settings(self) -> dict[str, Any]:
        settings = self.settings.sampling(self.fmt.stop, 0).to_dict()
        settings["seed"] = self.settings.seed
        settings.update(max_turns=self.settings.max_turns, search_k=self.settings.search_k,
                        max_observation_chars=self.settings.max_observation_chars, attempts=self.settings.attempts,
                        on_parse_error=self.settings.on_parse_error)
        return settings


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def run_agent(generator: Generator, task: Task, examples: list[Example], searcher: Searcher,
              fmt: AgentFormat | str = "react", settings: AgentSettings | None = None,
              store: RecordStore | None = None) -> list[Trajectory]:
    """Run `settings.attempts` episodes per example, all advanced together; returns trajectories in order.

    With `store`, trajectories already in it (same example id and attempt) are read back instead
    of being run again, and new ones are appended as their episodes end.
    """
    settings = settings or AgentSettings()
    run = AgentRun(generator, task, searcher, get_format(fmt) if isinstance(fmt, str) else fmt, settings, store)
    done = _already_done(store)
    keys = [(ex, attempt) for ex in examples for attempt in range(settings.attempts)]
    episodes = [run.episode(ex, attempt) for ex, attempt in keys if (ex.id, attempt) not in done]
    by_env = {id(e.env): e for e in episodes}
    with _progress(settings.progress, len(keys), len(keys) - len(episodes)) as (progress, bar):
        def on_turn(live: list[Any], seconds: list[TurnSeconds]) -> None:
            for env, spent in zip(live, seconds, strict=True):
                episode = by_env[id(env)]
                episode.generate_seconds += spent.generate
                episode.search_seconds += spent.tools
                if env.done:
                    done[episode.key] = run.finish(episode)
                    progress.advance(bar)
            still = sum(not env.done for env in live)
            progress.update(bar, description=f"agent: {still} episodes live")

        drive_text([e.env for e in episodes], generator, run.sampling, on_turn)
    return [done[(ex.id, attempt)] for ex, attempt in keys]


def _already_done(store: RecordStore | None) -> dict[tuple[str, int], Trajectory]:
    if store is None or not store.path.exists():
        return {}
    from selfimprove.data.trajectory import iter_trajectories

    return {trajectory_key(t.to_dict()): t for t in iter_trajectories(store.path)}


class _progress:
    """A rich progress bar over episodes (disabled when `show` is False)."""

    def __init__(self, show: bool, total: int, completed: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), disable=not show)
        self.bar = self.progress.add_task("agent", total=total, completed=completed)

    def __enter__(self):
        self.progress.__enter__()
        return self.progress, self.bar

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)
