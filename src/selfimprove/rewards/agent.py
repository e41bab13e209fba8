"""Agent-behaviour rewards: how a search agent searched, not whether it answered right.

Each reward reads the episode's facts (`EpisodeFacts`), each fact from the first source that has it:
1. the rollout's keyword columns, as TRL passes the fields a multi-turn `rollout_func` returns
   (one value per completion): `num_searches` (int), `num_parse_errors` (int), `answered` (bool),
   `num_turns` (int), `hit_step_limit` (bool), `queries` (list[str]). A column is used when it is
   present with one value per completion (a None value falls back for that completion);
2. a `trajectories` (or `trajectory`) column of `selfimprove.data.trajectory` records: steps with
   `action` search/answer/invalid and `argument`, `final_answer`, `flags.parse_errors`,
   `flags.repeated_queries`, `flags.step_limit`;
3. the text: `<search>query</search>` tags (DeepSearch / Search-R1 style) in the model's turns,
   the chunks of each assistant message (or of the string) between tool results (see
   `assistant_turns`; TRL hands a whole episode over as ONE assistant message).
Rewards are bounded: bonuses in [0, 1], penalties in [-1, 0]. Query similarity is a normalised
token Jaccard (lowercase, punctuation dropped, HotpotQA-style), not a semantic measure.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from selfimprove.agent.search_env import PARSE_ERROR_OBSERVATION
from selfimprove.rewards.text import assistant_turns, completion_text, named, reward_factory, rollout_column
from selfimprove.tasks.tags import last_tag_block, tag_blocks

_SEARCH_ACTIONS = {"search", "wikipedia", "retrieve", "lookup"}
FACT_COLUMNS = ("num_searches", "num_parse_errors", "answered", "num_turns", "hit_step_limit", "queries")
# What a failed tool call leaves in the chat: AutoDidact's "Error during ..." system message, and
# the observation this project's environments write for an unparseable turn.
TOOL_ERROR_MARKERS = ("Error during", PARSE_ERROR_OBSERVATION)


def search_queries(completion: Any, trajectory: dict | None = None) -> list[str]:
    """The queries an agent issued: from the trajectory's search steps, else `<search>` tags in its turns.

    >>> search_queries("<search>a b</search> x <search>c</search>")
    ['a b', 'c']
    >>> search_queries("", {"steps": [{"action": "Search", "argument": "q1"}, {"action": "Answer", "argument": "x"}]})
    ['q1']
    """
    if trajectory:
        return [str(step.get("argument") or "") for step in trajectory.get("steps", [])
                if str(step.get("action", "")).lower() in _SEARCH_ACTIONS]
    return [q.strip() for turn in assistant_turns(completion) for q in tag_blocks(turn, "search")]


@dataclass
class EpisodeFacts:
    """One completion's facts: from its rollout columns, else its trajectory, else its text.

    >>> EpisodeFacts("<search>a</search><information>r</information><answer>x</answer>").num_searches
    1
    >>> EpisodeFacts("<answer>x</answer>", recorded={"num_searches": 3, "answered": False}).num_searches
    3
    """

    completion: Any
    trajectory: dict | None = None
    recorded: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def turns(self) -> list[str]:
        return assistant_turns(self.completion)

    @property
    def queries(self) -> list[str]:
        if "queries" in self.recorded:
            return [str(q) for q in self.recorded["queries"]]
        return search_queries(self.completion, self.trajectory)

    @property
    def num_searches(self) -> int:
        return int(self.recorded["num_searches"]) if "num_searches" in self.recorded else len(self.queries)

    @property
    def answered(self) -> bool:
        if "answered" in self.recorded:
            return bool(self.recorded["answered"])
        if self.trajectory is not None:
            return _answered(self.trajectory)
        return bool(self.turns) and last_tag_block(self.turns[-1], "answer") is not None

    @property
    def num_parse_errors(self) -> int:
        if "num_parse_errors" in self.recorded:
            return int(self.recorded["num_parse_errors"])
        if self.trajectory is not None:
            return _count(_flag(self.trajectory, "parse_errors"))
        return sum(_malformed(turn) for turn in self.turns) if self.turns else 1

    @property
    def num_turns(self) -> int:
        if "num_turns" in self.recorded:
            return int(self.recorded["num_turns"])
        if self.trajectory is not None:
            return len(self.trajectory.get("steps") or [])
        return len(self.turns)

    def hit_step_limit(self, max_turns: int) -> bool:
        """Whether the episode ran out of turns without answering (recorded, else `max_turns` reached)."""
        if "hit_step_limit" in self.recorded:
            return bool(self.recorded["hit_step_limit"]) and not self.answered
        if self.trajectory is not None:
            return bool(_flag(self.trajectory, "step_limit")) and not self.answered
        return self.num_turns >= max_turns and not self.answered

    @property
    def crowded(self) -> bool:
        """Whether one model turn holds several searches (text only: an environment runs one per turn)."""
        if self.trajectory is not None or "num_searches" in self.recorded or "queries" in self.recorded:
            return False
        return any(len(tag_blocks(turn, "search")) > 1 for turn in self.turns)

    @property
    def recorded_repeats(self) -> int:
        """The trajectory's own count of repeated queries (0 without a trajectory)."""
        return _count(_flag(self.trajectory, "repeated_queries")) if self.trajectory is not None else 0

    @property
    def tool_error(self) -> bool:
        """Whether a tool call errored: parse errors recorded, else an error marker in any message."""
        if "num_parse_errors" in self.recorded or self.trajectory is not None:
            return self.num_parse_errors > 0
        text = completion_text(self.completion)
        return any(marker in text for marker in TOOL_ERROR_MARKERS)


def episode_facts(completions: list, kwargs: dict[str, Any]) -> list[EpisodeFacts]:
    """The facts of each completion, from the reward's keyword columns where present."""
    size = len(completions)
    recorded: list[dict[str, Any]] = [{} for _ in range(size)]
    for name in FACT_COLUMNS:
        for row, value in zip(recorded, rollout_column(kwargs, name, size) or [None] * size, strict=True):
            if value is not None:
                row[name] = value
    trajectories = _trajectories(kwargs, size)
    return [EpisodeFacts(c, t, r) for c, t, r in zip(completions, trajectories, recorded, strict=True)]


def _trajectories(kwargs: dict[str, Any], size: int) -> list[dict | None]:
    """The `trajectories` (or `trajectory`) column as dicts (`Trajectory` objects are converted)."""
    values = kwargs.get("trajectories") or kwargs.get("trajectory")
    if values is None or len(values) != size:
        return [None] * size
    return [v.to_dict() if hasattr(v, "to_dict") else v if isinstance(v, dict) else None for v in values]


def _flag(trajectory: dict, name: str) -> Any:
    """A flag from `selfimprove.data.trajectory`'s nested `flags`, or from the top level."""
    flags = trajectory.get("flags")
    return flags.get(name) if isinstance(flags, dict) and name in flags else trajectory.get(name)


def _answered(trajectory: dict) -> bool:
    steps = trajectory.get("steps") or []
    last_is_answer = bool(steps) and str(steps[-1].get("action", "")).lower() == "answer"
    return trajectory.get("final_answer") is not None or last_is_answer


def _count(value: Any) -> int:
    """A flag recorded as a count, a list of occurrences, or a bool."""
    if isinstance(value, (list, tuple)):
        return len(value)
    return int(value or 0)


def search_count_capped(completions, **kwargs) -> list[float]:
    """0.5 for 2-5 searches, else 0 (the capped retry reward: more searches cannot earn more).

    >>> search_count_capped(["<search>a</search>", "<search>a</search><search>b</search>", "<search>q</search>" * 6])
    [0.0, 0.5, 0.0]
    >>> search_count_capped(["<search>a</search>"], num_searches=[3])
    [0.5]
    """
    return [0.5 if 2 <= f.num_searches <= 5 else 0.0 for f in episode_facts(completions, kwargs)]


def search_effort(completions, **kwargs) -> list[float]:
    """DeepSearch's `reward_retry`: 0 without a final answer or without a search, else
    `min(1, 0.2 + 0.15*min(n, 5))` for n searches (never lower for more searches up to 5), halved
    when one model turn holds several searches, rounded to 3 places.

    >>> search_effort(["<search>a</search><information>r</information><answer>x</answer>"])
    [0.35]
    >>> search_effort([[{"role": "assistant", "content": "<search>a</search><information>r</information>" * 2
    ...                  + "<answer>x</answer>"}]])
    [0.5]
    >>> search_effort(["<search>a</search><search>b</search><information>r</information><answer>x</answer>"])
    [0.25]
    >>> search_effort(["<answer>x</answer>", "<search>a</search>"])
    [0.0, 0.0]
    >>> search_effort(["?"], num_searches=[3], answered=[True])
    [0.65]
    """
    return [_effort(f) for f in episode_facts(completions, kwargs)]


def _effort(facts: EpisodeFacts) -> float:
    searches = facts.num_searches
    if not facts.answered or searches == 0:
        return 0.0
    reward = min(1.0, 0.2 + 0.15 * min(searches, 5))
    return round(reward * 0.5 if facts.crowded else reward, 3)


def query_tokens(query: str) -> frozenset[str]:
    """Lowercased tokens without punctuation or articles.

    >>> sorted(query_tokens("The capital of France?"))
    ['capital', 'france', 'of']
    """
    text = "".join(ch for ch in query.lower() if ch not in string.punctuation)
    return frozenset(t for t in text.split() if t not in {"a", "an", "the"})


def query_similarity(a: str, b: str) -> float:
    """Token Jaccard similarity of two queries (1.0 for two empty queries).

    >>> query_similarity("Paris population", "population of Paris")
    0.6666666666666666
    """
    ta, tb = query_tokens(a), query_tokens(b)
    return 1.0 if not ta and not tb else len(ta & tb) / len(ta | tb)


def count_near_duplicates(queries: list[str], threshold: float) -> int:
    """How many queries are near-duplicates (similarity >= threshold) of an earlier one.

    >>> count_near_duplicates(["paris", "Paris!", "lyon"], 0.8)
    1
    """
    return sum(any(query_similarity(q, p) >= threshold for p in queries[:i]) for i, q in enumerate(queries))


@reward_factory
def repeated_query_penalty(threshold: float = 0.8):
    """Factory: minus the share of queries that near-duplicate an earlier one (0 to -1).

    A trajectory's own `repeated_queries` flag is used when it is larger.

    >>> repeated_query_penalty()(["<search>paris</search><search>Paris</search>", "<search>x</search>"])
    [-0.5, 0.0]
    >>> repeated_query_penalty()(["<search>x</search>"], queries=[["lyon", "Lyon?", "paris"]])
    [-0.3333333333333333]
    """
    def repeated_query_penalty(completions, **kwargs) -> list[float]:
        return [_repeat_share(f, threshold) for f in episode_facts(completions, kwargs)]

    return named(repeated_query_penalty, "repeated_query_penalty")


def _repeat_share(facts: EpisodeFacts, threshold: float) -> float:
    queries = facts.queries
    if not queries:
        return 0.0
    repeats = max(count_near_duplicates(queries, threshold), facts.recorded_repeats)
    return 0.0 - min(1.0, repeats / len(queries))


@reward_factory
def search_diversity(threshold: float = 0.8):
    """Factory: the share of queries that are not near-duplicates of an earlier one; 0 with no search.

    >>> search_diversity()(["<search>paris</search><search>lyon</search>", "<search>a b</search><search>b a</search>", "none"])
    [1.0, 0.5, 0.0]
    """
    def search_diversity(completions, **kwargs) -> list[float]:
        found = [f.queries for f in episode_facts(completions, kwargs)]
        return [1.0 - count_near_duplicates(q, threshold) / len(q) if q else 0.0 for q in found]

    return named(search_diversity, "search_diversity")


@reward_factory
def step_limit_penalty(max_turns: int = 5, penalty: float = 1.0):
    """Factory: -penalty when the agent ran out of steps without answering, else 0.

    From the `hit_step_limit` column, else a trajectory's `step_limit` flag, else `max_turns` or
    more turns (the `num_turns` column, or the model's turns in the text) and no final answer.

    >>> step_limit_penalty(max_turns=2)(["<search>a</search><information>r</information><search>b</search>", "<answer>x</answer>"])
    [-1.0, 0.0]
    >>> step_limit_penalty()(["<search>a</search>"], hit_step_limit=[True])
    [-1.0]
    """
    def step_limit_penalty(completions, **kwargs) -> list[float]:
        return [-penalty if f.hit_step_limit(max_turns) else 0.0 for f in episode_facts(completions, kwargs)]

    return named(step_limit_penalty, "step_limit_penalty")


@reward_factory
def parse_error_penalty(per_error: float = 0.25):
    """Factory: -per_error for each malformed turn (capped at -1).

    From the `num_parse_errors` column, else a trajectory's `parse_errors` count, else the text:
    a turn with neither a complete `<search>` nor a complete `<answer>` block, or with an unclosed tag.

    >>> parse_error_penalty()(["<search>a</search><information>r</information><answer>b</answer>", "<search>oops", "hmm"])
    [0.0, -0.25, -0.25]
    >>> parse_error_penalty()(["hmm"], num_parse_errors=[2])
    [-0.5]
    """
    def parse_error_penalty(completions, **kwargs) -> list[float]:
        return [0.0 - min(1.0, per_error * f.num_parse_errors) for f in episode_facts(completions, kwargs)]

    return named(parse_error_penalty, "parse_error_penalty")


def _malformed(turn: str) -> bool:
    lower = turn.lower()
    unclosed = any(lower.count(f"<{t}>") != lower.count(f"</{t}>") for t in ("search", "answer"))
    complete = last_tag_block(turn, "search") is not None or last_tag_block(turn, "answer") is not None
    return unclosed or not complete


def reward_formatting(completions, **kwargs) -> list[float]:
    """AutoDidact's `reward_formatting`: 0.7 when no tool call of the episode errored, else 0.

    As in AutoDidact's `rl_helpers.py` (github.com/dCaples/AutoDidact, commit 8dc1dff), which gives
    `0.7 if not e else 0` where `e` is whether any message of the chat contains "Error during"
    (the message its tool runner appends when a call fails); an episode without tool calls gets 0.7.
    Here "errored" is the `num_parse_errors` column (or a trajectory's `parse_errors`) when
    present, else an error marker in the text (`TOOL_ERROR_MARKERS`: AutoDidact's, and this
    project's "could not parse action:" observation).

    >>> reward_formatting(["<search>a</search><information>r</information><answer>x</answer>",
    ...                    [{"role": "system", "content": "Error during post-processing: bad JSON"}]])
    [0.7, 0.0]
    >>> reward_formatting(["<answer>x</answer>"], num_parse_errors=[1])
    [0.0]
    """
    return [0.0 if f.tool_error else 0.7 for f in episode_facts(completions, kwargs)]


@reward_factory
def length_penalty(max_words: int = 512, per_word: float = 0.002, unit: str = "words"):
    """Factory: -per_word for each unit beyond `max_words` (capped at -1). `unit` is "words"
    (whitespace tokens) or "chars" (then `max_words`/`per_word` count characters).

    >>> length_penalty(max_words=3, per_word=0.1)(["one two three", "one two three four five"])
    [0.0, -0.2]
    >>> length_penalty(max_words=3, per_word=0.1, unit="chars")(["abcd"])
    [-0.1]
    """
    if unit not in ("words", "chars"):
        from selfimprove.errors import ConfigError

        raise ConfigError(f"length_penalty unit must be 'words' or 'chars', got '{unit}'")

    def length_penalty(completions, **kwargs) -> list[float]:
        texts = [completion_text(c) for c in completions]
        sizes = [len(t.split()) if unit == "words" else len(t) for t in texts]
        return [0.0 - min(1.0, round(per_word * max(0, n - max_words), 6)) for n in sizes]

    return named(length_penalty, "length_penalty")
