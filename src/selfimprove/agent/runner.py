"""The episode runner: many agent episodes advanced together, recorded as trajectories.

`run_agent(generator, task, examples, searcher, fmt, config)` runs `config.attempts` episodes per
example. Each turn makes ONE batched `generator.generate` call for all live episodes and ONE
batched `searcher.search` call for all their queries. Model output is only parsed, never
executed: a turn that cannot be parsed becomes the observation "could not parse action: ..."
and is counted (`on_parse_error: continue`, the default), or ends the episode there with no
answer and score 0 (`on_parse_error: end`, as Araft's agent does); a query already searched in
the same episode is counted as a repeat (and searched again); an episode that has not answered
after `max_steps` turns is flagged `step_limit` and scores 0. Each trajectory records why its
episode ended in `meta["end_reason"]`: "answer", "parse_error" or "step_limit". With a
`RecordStore`, each trajectory is appended as soon as its episode ends, and a resumed run skips
(example id, attempt) keys already written.

Guarantees: trajectories come back in (example, attempt) order whatever order episodes finish
in; with greedy decoding a batched run makes the same requests as a one-at-a-time run (the
model may still differ in rare cases through left-padding float rounding). With sampling and a
seed, the seed is applied per turn (seed + turn), so samples depend on the batch composition.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from selfimprove.agent.formats import AgentFormat, ParsedStep, get_format, parse_turn
from selfimprove.config import StrictModel
from selfimprove.data.jsonl import RecordStore
from selfimprove.data.trajectory import Flags, Step, Timing, Trajectory, trajectory_key
from selfimprove.models.generator import Completion, Generator, SamplingParams
from selfimprove.tasks.base import Example, Score, Task
from selfimprove.tools.base import Hit, Searcher

NO_RESULTS = "No results found."
UNANSWERED = {"step_limit": "step limit reached without an answer",
              "parse_error": "episode ended at an unparseable step (on_parse_error: end)"}


class AgentConfig(StrictModel):
    """Settings of an agent run (YAML-loadable; unknown keys are errors)."""

    max_steps: int = Field(5, ge=1)
    max_tokens: int = Field(128, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = None
    attempts: int = Field(1, ge=1)
    search_k: int = Field(2, ge=1)
    max_observation_chars: int = Field(500, ge=1)
    max_query_chars: int = Field(300, ge=1)
    on_parse_error: Literal["continue", "end"] = "continue"
    progress: bool = True

    def sampling(self, stop: tuple[str, ...], turn: int) -> SamplingParams:
        seed = None if self.seed is None else self.seed + turn
        return SamplingParams(max_tokens=self.max_tokens, temperature=self.temperature, top_p=self.top_p,
                              n=1, stop=stop, seed=seed)


@dataclass
class Episode:
    """The mutable state of one running episode."""

    example: Example
    attempt: int
    started: float = field(default_factory=time.time)
    steps: list[Step] = field(default_factory=list)
    queries: set[str] = field(default_factory=set)
    generate_seconds: float = 0.0
    search_seconds: float = 0.0
    answer: str | None = None
    end_reason: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.example.id, self.attempt)

    @property
    def done(self) -> bool:
        return self.end_reason is not None


def normalize_query(query: str) -> str:
    """Lower-cased, whitespace-collapsed query, for repeat detection.

    >>> normalize_query("  Paris   FRANCE ")
    'paris france'
    """
    return " ".join(query.lower().split())


def format_hits(hits: list[Hit], max_chars: int) -> str:
    """Render hits as one observation line, truncated to `max_chars` (with "...").

    >>> format_hits([Hit("1", "Paris", "Paris is\\nbig.", 1.0)], 100)
    '[Paris] Paris is big.'
    >>> format_hits([], 100)
    'No results found.'
    >>> format_hits([Hit("1", "T", "x" * 50, 1.0)], 10)
    '[T] xxx...'
    """
    if not hits:
        return NO_RESULTS
    text = " ".join(" ".join(f"[{h.title}] {h.text}".split()) for h in hits)
    return text if len(text) <= max_chars else text[: max(0, max_chars - 3)] + "..."


def make_step(index: int, completion: Completion, parsed: ParsedStep) -> Step:
    """A Step from a completion (raw text keeps the stop string the model produced)."""
    return Step(index=index, text=completion.text + (completion.stop or ""), thought=parsed.thought,
                action=parsed.action, argument=parsed.argument, parse_error=parsed.error,
                prompt_tokens=completion.num_prompt_tokens, completion_tokens=completion.num_tokens,
                finish_reason=completion.finish_reason)


class AgentRun:
    """One call of `run_agent`: the shared context of all episodes."""

    def __init__(self, generator: Generator, task: Task, searcher: Searcher, fmt: AgentFormat,
                 config: AgentConfig, store: RecordStore | None):
        self.generator, self.task, self.searcher, self.fmt = generator, task, searcher, fmt
        self.config, self.store = config, store
        self.started_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def turn(self, live: list[Episode], turn: int) -> None:
        """Advance every live episode by one model turn (one generate call, one search call)."""
        conversations = [self.fmt.conversation(e.example.question, e.steps) for e in live]
        start = time.perf_counter()
        results = self.generator.generate(conversations, self.config.sampling(self.fmt.stop, turn))
        share = (time.perf_counter() - start) / len(live)
        searching: list[Episode] = []
        for episode, completions in zip(live, results, strict=True):
            episode.generate_seconds += share
            text = completions[0].text + (completions[0].stop or "")
            step = make_step(turn, completions[0], parse_turn(self.fmt, text, completions[0].finish_reason == "length"))
            episode.steps.append(step)
            if step.action == "search":
                searching.append(episode)
            elif step.action == "answer":
                episode.answer, episode.end_reason = step.argument, "answer"
            elif self.config.on_parse_error == "end":
                episode.end_reason = "parse_error"
            else:
                step.observation = f"could not parse action: {step.parse_error}"
        self.search(searching)

    def search(self, episodes: list[Episode]) -> None:
        """One batched search for every episode whose last step is a search."""
        if not episodes:
            return
        queries = [e.steps[-1].argument[: self.config.max_query_chars] for e in episodes]
        start = time.perf_counter()
        results = self.searcher.search(queries, self.config.search_k)
        share = (time.perf_counter() - start) / len(episodes)
        for episode, query, hits in zip(episodes, queries, results, strict=True):
            step = episode.steps[-1]
            step.observation = format_hits(hits, self.config.max_observation_chars)
            normalized = normalize_query(query)
            step.repeated_query = normalized in episode.queries
            episode.queries.add(normalized)
            episode.search_seconds += share

    def finish(self, episode: Episode) -> Trajectory:
        """Score the ended episode, build its trajectory and append it to the store."""
        if episode.end_reason == "answer":
            score = self.task.score_answer(episode.example, episode.answer)
        else:
            score = self.zero_score(episode.example, UNANSWERED[episode.end_reason])
        trajectory = self.trajectory(episode, score)
        if self.store is not None:
            self.store.append(trajectory.to_dict())
        return trajectory

    def zero_score(self, example: Example, error: str) -> Score:
        """Score 0 with the task's breakdown keys all 0 (so averages stay comparable)."""
        keys = self.task.score_answer(example, "").breakdown
        return Score(value=0.0, correct=False, parsed=None, breakdown={k: 0.0 for k in keys}, error=error)

    def trajectory(self, episode: Episode, score: Score) -> Trajectory:
        steps, meta = episode.steps, episode.example.meta or {}
        step_limit = episode.end_reason == "step_limit"
        flags = Flags(parse_errors=sum(s.parse_error is not None for s in steps),
                      repeated_queries=sum(s.repeated_query for s in steps),
                      step_limit=step_limit, finished=episode.end_reason == "answer")
        timing = Timing(started=self.started_iso, seconds=round(time.time() - episode.started, 4),
                        generate_seconds=round(episode.generate_seconds, 4),
                        search_seconds=round(episode.search_seconds, 4))
        return Trajectory(
            task=getattr(self.task, "name", type(self.task).__name__), example_id=str(episode.example.id),
            attempt=episode.attempt, question=episode.example.question, gold=episode.example.answer,
            steps=steps, final_answer=episode.answer, score=score.to_dict(), flags=flags,
            level=_str_or_none(meta.get("level")), type=_str_or_none(meta.get("type")),
            model=getattr(self.generator, "name", ""), agent_format=self.fmt.name,
            searcher=getattr(self.searcher, "name", type(self.searcher).__name__),
            generation=self.generation_settings(), timing=timing, meta={"end_reason": episode.end_reason})

    def generation_settings(self) -> dict[str, Any]:
        settings = self.config.sampling(self.fmt.stop, 0).to_dict()
        settings["seed"] = self.config.seed
        settings.update(max_steps=self.config.max_steps, search_k=self.config.search_k,
                        max_observation_chars=self.config.max_observation_chars, attempts=self.config.attempts,
                        on_parse_error=self.config.on_parse_error)
        return settings


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def run_agent(generator: Generator, task: Task, examples: list[Example], searcher: Searcher,
              fmt: AgentFormat | str = "react", config: AgentConfig | None = None,
              store: RecordStore | None = None) -> list[Trajectory]:
    """Run `config.attempts` episodes per example, all advanced together; returns trajectories in order.

    With `store`, trajectories already in it (same example id and attempt) are read back instead
    of being run again, and new ones are appended as their episodes end.
    """
    config = config or AgentConfig()
    run = AgentRun(generator, task, searcher, get_format(fmt) if isinstance(fmt, str) else fmt, config, store)
    done = _already_done(store)
    episodes = [Episode(ex, attempt) for ex in examples for attempt in range(config.attempts)]
    live = [e for e in episodes if e.key not in done]
    with _progress(config.progress, len(episodes), len(episodes) - len(live)) as (progress, bar):
        for turn in range(config.max_steps):
            if not live:
                break
            progress.update(bar, description=f"agent turn {turn + 1}/{config.max_steps}, {len(live)} live")
            run.turn(live, turn)
            for episode in [e for e in live if e.done]:
                done[episode.key] = run.finish(episode)
                progress.advance(bar)
            live = [e for e in live if not e.done]
        for episode in live:
            episode.end_reason = "step_limit"
            done[episode.key] = run.finish(episode)
            progress.advance(bar)
    return [done[e.key] for e in episodes]


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
