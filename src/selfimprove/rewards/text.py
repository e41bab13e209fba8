"""How rewards read completions: plain strings or lists of chat messages, and named rewards.

TRL passes `completions` as strings for standard datasets and as lists of messages
(`[{"role": "assistant", "content": ...}, ...]`) for conversational ones. `completion_text`
turns either into one string (all assistant/tool contents joined by newlines), and
`assistant_turns` into the model's separate turns (for a plain string, turns are the chunks
between tool results `<information>`/`<result>`/`Observation:` blocks). `named` gives a reward
function the name that becomes its logged metric. Nothing here scores anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

RewardFn = Callable[..., list]

_TOOL_RESULT = re.compile(r"<(information|result)>.*?</\1>|\nObservation:[^\n]*", re.DOTALL)


def completion_text(completion: Any) -> str:
    """One string for a completion given as a string or as chat messages.

    >>> completion_text("hi")
    'hi'
    >>> completion_text([{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}])
    'a\\nb'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    if isinstance(completion, list):
        return "\n".join(str(m.get("content") or "") if isinstance(m, dict) else str(m) for m in completion)
    return "" if completion is None else str(completion)


def assistant_turns(completion: Any) -> list[str]:
    """The model's own turns: assistant messages, or a string split around tool results.

    >>> assistant_turns("<search>a</search><information>x</information><answer>b</answer>")
    ['<search>a</search>', '<answer>b</answer>']
    >>> assistant_turns([{"role": "assistant", "content": "a"}, {"role": "tool", "content": "r"}])
    ['a']
    """
    if isinstance(completion, list):
        return [str(m.get("content") or "") for m in completion
                if isinstance(m, dict) and m.get("role", "assistant") == "assistant"]
    chunks = _TOOL_RESULT.split(completion_text(completion))
    return [c.strip() for c in chunks[::2] if c and c.strip()]


def named(fn: RewardFn, name: str, **attributes: Any) -> RewardFn:
    """Set the function's `__name__`/`__qualname__` (TRL logs `rewards/<name>/mean`) and attributes."""
    fn.__name__ = fn.__qualname__ = name
    for key, value in attributes.items():
        setattr(fn, key, value)
    return fn


def column(kwargs: dict[str, Any], name: str, size: int, required: bool = True) -> list[Any]:
    """The dataset column `name` from a reward's keyword arguments, one value per completion."""
    from selfimprove.errors import UserError

    values = kwargs.get(name)
    if values is None:
        if required:
            known = sorted(k for k in kwargs if k not in TRL_EXTRAS)
            raise UserError(f"reward needs a dataset column '{name}' (columns passed: {', '.join(known) or 'none'})")
        return [None] * size
    if len(values) != size:
        raise UserError(f"column '{name}' has {len(values)} values for {size} completions")
    return list(values)


def rows_from_kwargs(kwargs: dict[str, Any], size: int) -> list[dict[str, Any]]:
    """Turn TRL's per-column keyword lists back into one dict per completion (plus `prompt`).

    >>> rows_from_kwargs({"answer": ["a", "b"], "trainer_state": None}, 2)
    [{'answer': 'a'}, {'answer': 'b'}]
    """
    rows: list[dict[str, Any]] = [{} for _ in range(size)]
    for key, values in kwargs.items():
        if key in TRL_EXTRAS or not isinstance(values, (list, tuple)) or len(values) != size:
            continue
        for row, value in zip(rows, values, strict=True):
            row[key] = value
    for row, prompt in zip(rows, kwargs.get("prompts") or [], strict=False):
        row.setdefault("prompt", prompt)
    return rows


TRL_EXTRAS = {"trainer_state", "log_extra", "log_metric", "environments", "completion_ids", "prompts"}


def reward_factory(fn: Callable[..., RewardFn]) -> Callable[..., RewardFn]:
    """Mark `fn` as a factory: configs call it with their `params` to get the reward function."""
    fn.is_reward_factory = True
    return fn
