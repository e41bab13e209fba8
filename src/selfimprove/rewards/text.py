"""How rewards read completions: plain strings or lists of chat messages, and named rewards.

TRL passes `completions` as strings for standard datasets and as lists of messages
(`[{"role": "assistant", "content": ...}, ...]`) for conversational ones. `completion_text`
turns either into one string (all assistant/tool contents joined by newlines), and
`assistant_turns` into the model's separate turns (the chunks of each assistant message, or of
the string, between tool results `<information>`/`<result>`/`Observation:` blocks: TRL hands a
multi-turn episode over as ONE assistant message). `named` gives a reward
function the name that becomes its logged metric. Nothing here scores anything.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

RewardFn = Callable[..., list]

# Tool-result blocks in a plain-string completion: opening tag -> closing tag; a block needs both.
# `\nObservation:` lines end at the next newline. Found by string search, linear in the length.
_TOOL_RESULT_CLOSINGS = {"<information>": "</information>", "<result>": "</result>"}
_OBSERVATION = "\nObservation:"


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
        return message_text(completion)
    if isinstance(completion, list):
        return "\n".join(message_text(m) if isinstance(m, dict) else str(m) for m in completion)
    return "" if completion is None else str(completion)


def message_text(message: dict) -> str:
    """A chat message's text, with tool calls TRL parsed out of it (`tool_calls`, transformers >= 5 with a
    response schema) written back as `<tool_call>{json}</tool_call>` blocks, so call parsers see them.

    >>> message_text({"role": "assistant", "content": "", "tool_calls": [
    ...     {"type": "function", "function": {"name": "add", "arguments": {"a": 2}}}]})
    '<tool_call>{"name": "add", "arguments": {"a": 2}}</tool_call>'
    """
    text = str(message.get("content") or "")
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        return text
    blocks = [_tool_call_block(call) for call in calls if isinstance(call, dict)]
    return "\n".join(part for part in (text, *blocks) if part)


def _tool_call_block(call: dict) -> str:
    function = call.get("function") if isinstance(call.get("function"), dict) else call
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except (ValueError, RecursionError):
            pass
    return "<tool_call>" + json.dumps({"name": function.get("name"), "arguments": arguments},
                                      ensure_ascii=False, default=str) + "</tool_call>"


def assistant_turns(completion: Any) -> list[str]:
    """The model's own turns: each assistant message (or the string) split around tool results.

    TRL hands a multi-turn episode to a reward as ONE assistant message holding the tool results
    too, so a message is split like a plain string; tool messages are left out.

    >>> assistant_turns("<search>a</search><information>x</information><answer>b</answer>")
    ['<search>a</search>', '<answer>b</answer>']
    >>> assistant_turns([{"role": "assistant", "content": "<search>a</search><information>x</information>b"}])
    ['<search>a</search>', 'b']
    >>> assistant_turns([{"role": "assistant", "content": "a"}, {"role": "tool", "content": "r"}])
    ['a']
    """
    if isinstance(completion, list):
        contents = [str(m.get("content") or "") for m in completion
                    if isinstance(m, dict) and m.get("role", "assistant") == "assistant"]
    else:
        contents = [completion_text(completion)]
    return [turn for content in contents for turn in _split_around_tool_results(content)]


def _split_around_tool_results(text: str) -> list[str]:
    """The non-blank chunks of `text` between tool results, stripped."""
    chunks, position = [], 0
    for start, end in tool_result_spans(text):
        chunks.append(text[position:start])
        position = end
    chunks.append(text[position:])
    return [c.strip() for c in chunks if c.strip()]


def tool_result_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each tool result in a plain-string completion, in order, not overlapping: what
    `re.finditer(r"<(information|result)>.*?</\\1>|\\nObservation:[^\\n]*", text, re.S)` finds, but
    linear in the length (the regex rescans to the end from every unclosed opening tag).

    >>> list(tool_result_spans("a<result>r</result>b<information>unclosed\\nObservation: x\\nc"))
    [(1, 19), (41, 56)]
    """
    # Per kind (an opening tag, or the Observation marker): its next span, or None when none is left;
    # (-1, -1) is behind every position, so each kind is looked up on the first pass.
    upcoming: dict[str, tuple[int, int] | None] = dict.fromkeys([*_TOOL_RESULT_CLOSINGS, _OBSERVATION], (-1, -1))
    closings: dict[str, int] = {}  # per tag: where the closing tag last found is (reused while still ahead)
    position = 0
    while True:
        for kind, span in upcoming.items():
            if span is not None and span[0] < position:
                upcoming[kind] = _next_span(text, kind, position, closings)
        found = [span for span in upcoming.values() if span is not None]
        if not found:
            return
        start, position = min(found)
        yield start, position


def _next_span(text: str, kind: str, position: int, closings: dict[str, int]) -> tuple[int, int] | None:
    """The next tool result of one kind (an opening tag, or the Observation marker) at or after `position`."""
    start = text.find(kind, position)
    if start < 0:
        return None
    if kind == _OBSERVATION:
        line_end = text.find("\n", start + 1)
        return start, line_end if line_end >= 0 else len(text)
    closing = _TOOL_RESULT_CLOSINGS[kind]
    end = closings.get(kind, -1)
    if end < start + len(kind):  # the closing found before is behind this opening: look further on
        end = closings[kind] = text.find(closing, start + len(kind))
    return (start, end + len(closing)) if end >= 0 else None


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


def require_columns(reward_name: str, needed: tuple[tuple[str, ...], ...], kwargs: dict[str, Any]) -> None:
    """A UserError naming the reward and every needed column the call lacks (each column is a tuple of
    accepted names); None when all are there. Checked once per call, before any row is read.

    >>> require_columns("countdown_correct", (("nums",), ("target",)), {"nums": [[1, 2]]})
    Traceback (most recent call last):
    ...
    selfimprove.errors.UserError: countdown_correct needs dataset columns nums, target; missing: target
    >>> require_columns("f", (("tools", "function"),), {"function": ["[]"]}) is None
    True
    """
    from selfimprove.errors import UserError

    def shown(names: tuple[str, ...]) -> str:
        return names[0] + (f" (or {', '.join(names[1:])})" if len(names) > 1 else "")

    absent = [names for names in needed if not any(kwargs.get(name) is not None for name in names)]
    if absent:
        raise UserError(f"{reward_name} needs dataset columns {', '.join(map(shown, needed))}; "
                        f"missing: {', '.join(map(shown, absent))}")


def rollout_column(kwargs: dict[str, Any], name: str, size: int) -> list[Any] | None:
    """A rollout field TRL passed as a keyword column (e.g. `num_searches`), or None when it is
    absent or does not hold one value per completion (then callers fall back to the text).

    >>> rollout_column({"answered": [True, False]}, "answered", 2)
    [True, False]
    >>> rollout_column({"answered": [True]}, "answered", 2) is None
    True
    """
    values = kwargs.get(name)
    if values is None or isinstance(values, (str, bytes, dict)) or not hasattr(values, "__len__"):
        return None
    return list(values) if len(values) == size else None


def unanswered(kwargs: dict[str, Any], size: int) -> list[bool]:
    """Per completion: whether the rollout's `answered` column records that it gave no final answer.

    >>> unanswered({"answered": [True, False]}, 2), unanswered({}, 2)
    ([False, True], [False, False])
    """
    flags = rollout_column(kwargs, "answered", size) or [None] * size
    return [flag is False for flag in flags]


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
