"""Agent-behaviour rewards: how a search agent searched, not whether it answered right.

They read `<search>query</search>` tags in the completion (DeepSearch / Search-R1 style; for a
plain string the model's turns are the chunks between tool results, see `assistant_turns`),
or, when the dataset has a `trajectories` column, the recorded trajectory dicts (the
`selfimprove.data.trajectory` schema: steps with `action` search/answer/invalid and `argument`,
`final_answer`, `flags.parse_errors`, `flags.repeated_queries`, `flags.step_limit`). Rewards are
bounded: bonuses in [0, 1], penalties in [-1, 0]. Query similarity is a normalised token
Jaccard (lowercase, punctuation dropped, HotpotQA-style), not a semantic measure.
"""

from __future__ import annotations

import string
from typing import Any

from selfimprove.rewards.text import assistant_turns, completion_text, named, reward_factory
from selfimprove.tasks.tags import last_tag_block, tag_blocks

_SEARCH_ACTIONS = {"search", "wikipedia", "retrieve", "lookup"}


def search_queries(completion: Any, trajectory: dict | None = None) -> list[str]:
    """The queries an agent issued: from the trajectory's search steps, else `<search>` tags.

    >>> search_queries("<search>a b</search> x <search>c</search>")
    ['a b', 'c']
    >>> search_queries("", {"steps": [{"action": "Search", "argument": "q1"}, {"action": "Answer", "argument": "x"}]})
    ['q1']
    """
    if trajectory:
        return [str(step.get("argument") or "") for step in trajectory.get("steps", [])
                if str(step.get("action", "")).lower() in _SEARCH_ACTIONS]
    return [q.strip() for q in tag_blocks(completion_text(completion), "search")]


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
    """
    trajectories = _trajectories(kwargs, len(completions))
    counts = [len(search_queries(c, t)) for c, t in zip(completions, trajectories, strict=True)]
    return [0.5 if 2 <= n <= 5 else 0.0 for n in counts]


def search_effort(completions, **kwargs) -> list[float]:
    """`min(1, 0.2 + 0.15*min(n, 5))` for n searches; halved when one turn holds several searches;
    0 when the last turn has no `<answer>` (DeepSearch's implemented retry reward).

    >>> search_effort(["<search>a</search><information>r</information><answer>x</answer>"])
    [0.35]
    >>> search_effort(["<search>a</search><search>b</search><information>r</information><answer>x</answer>"])
    [0.25]
    >>> search_effort(["<search>a</search>"])
    [0.0]
    """
    trajectories = _trajectories(kwargs, len(completions))
    return [_effort(c, t) for c, t in zip(completions, trajectories, strict=True)]


def _effort(completion: Any, trajectory: dict | None) -> float:
    turns = assistant_turns(completion)
    answered = bool(turns) and last_tag_block(turns[-1], "answer") is not None
    if trajectory is not None:
        answered = _answered(trajectory)
    if not answered:
        return 0.0
    reward = min(1.0, 0.2 + 0.15 * min(len(search_queries(completion, trajectory)), 5))
    crowded = any(len(tag_blocks(turn, "search")) > 1 for turn in turns)
    return round(reward / 2 if crowded else reward, 6)


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
    """
    def repeated_query_penalty(completions, **kwargs) -> list[float]:
        trajectories = _trajectories(kwargs, len(completions))
        return [_repeat_share(search_queries(c, t), t, threshold) for c, t in zip(completions, trajectories, strict=True)]

    return named(repeated_query_penalty, "repeated_query_penalty")


def _repeat_share(queries: list[str], trajectory: dict | None, threshold: float) -> float:
    if not queries:
        return 0.0
    repeats = count_near_duplicates(queries, threshold)
    if trajectory is not None:
        repeats = max(repeats, _count(_flag(trajectory, "repeated_queries")))
    return 0.0 - min(1.0, repeats / len(queries))


@reward_factory
def search_diversity(threshold: float = 0.8):
    """Factory: the share of queries that are not near-duplicates of an earlier one; 0 with no search.

    >>> search_diversity()(["<search>paris</search><search>lyon</search>", "<search>a b</search><search>b a</search>", "none"])
    [1.0, 0.5, 0.0]
    """
    def search_diversity(completions, **kwargs) -> list[float]:
        trajectories = _trajectories(kwargs, len(completions))
        found = [search_queries(c, t) for c, t in zip(completions, trajectories, strict=True)]
        return [1.0 - count_near_duplicates(q, threshold) / len(q) if q else 0.0 for q in found]

    return named(search_diversity, "search_diversity")


@reward_factory
def step_limit_penalty(max_turns: int = 5, penalty: float = 1.0):
    """Factory: -penalty when the agent ran out of steps without answering, else 0.

    From a trajectory: its `step_limit` flag. From text: `max_turns` or more turns and no
    `<answer>` in the last one.

    >>> step_limit_penalty(max_turns=2)(["<search>a</search><information>r</information><search>b</search>", "<answer>x</answer>"])
    [-1.0, 0.0]
    """
    def step_limit_penalty(completions, **kwargs) -> list[float]:
        trajectories = _trajectories(kwargs, len(completions))
        return [-penalty if _hit_limit(c, t, max_turns) else 0.0 for c, t in zip(completions, trajectories, strict=True)]

    return named(step_limit_penalty, "step_limit_penalty")


def _hit_limit(completion: Any, trajectory: dict | None, max_turns: int) -> bool:
    if trajectory is not None:
        return bool(_flag(trajectory, "step_limit")) and not _answered(trajectory)
    turns = assistant_turns(completion)
    return len(turns) >= max_turns and last_tag_block(turns[-1], "answer") is None


@reward_factory
def parse_error_penalty(per_error: float = 0.25):
    """Factory: -per_error for each malformed turn (capped at -1).

    From a trajectory: its `parse_errors` count. From text: a turn with neither a complete
    `<search>` nor a complete `<answer>` block, or with an unclosed tag.

    >>> parse_error_penalty()(["<search>a</search><information>r</information><answer>b</answer>", "<search>oops", "hmm"])
    [0.0, -0.25, -0.25]
    """
    def parse_error_penalty(completions, **kwargs) -> list[float]:
        trajectories = _trajectories(kwargs, len(completions))
        errors = [_parse_errors(c, t) for c, t in zip(completions, trajectories, strict=True)]
        return [0.0 - min(1.0, per_error * n) for n in errors]

    return named(parse_error_penalty, "parse_error_penalty")


def _parse_errors(completion: Any, trajectory: dict | None) -> int:
    if trajectory is not None:
        return _count(_flag(trajectory, "parse_errors"))
    turns = assistant_turns(completion)
    return sum(_malformed(turn) for turn in turns) if turns else 1


def _malformed(turn: str) -> bool:
    lower = turn.lower()
    unclosed = any(lower.count(f"<{t}>") != lower.count(f"</{t}>") for t in ("search", "answer"))
    complete = last_tag_block(turn, "search") is not None or last_tag_block(turn, "answer") is not None
    return unclosed or not complete


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
