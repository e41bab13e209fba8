"""Which examples a stage uses: the first N per level and/or the first N overall, or everything else.

Evaluation picks with `select_examples(examples, limit, per_level)`; a training stage that must
not see those examples trains on `held_out_examples(examples, per_level, limit)` (the complement,
in the original order). Both are positional over the loaded list, so a stage that evaluates and
one that trains on the rest must load the same source; the recipe overlap check
(`pipeline/overlap.py`) verifies the result by content fingerprint, whatever the sources.
"""

from __future__ import annotations

from typing import Any

from selfimprove.tasks.base import Example


def select_examples(examples: list[Example], limit: int | None, per_level: int | None) -> list[Example]:
    """The first `per_level` examples of each level (if set), then the first `limit` of those.

    >>> picked = select_examples([Example(str(i), "q", "a", {"level": "easy" if i < 5 else "hard"})
    ...                           for i in range(10)], limit=None, per_level=2)
    >>> [e.id for e in picked]
    ['0', '1', '5', '6']
    """
    if per_level is not None:
        taken: dict[Any, int] = {}
        kept = []
        for example in examples:
            level = (example.meta or {}).get("level")
            if taken.get(level, 0) < per_level:
                taken[level] = taken.get(level, 0) + 1
                kept.append(example)
        examples = kept
    return examples[:limit] if limit is not None else examples


def held_out_examples(examples: list[Example], eval_per_level: int | None = None,
                      eval_limit: int | None = None) -> list[Example]:
    """The examples an eval with `per_level=eval_per_level, limit=eval_limit` does NOT use.

    >>> rows = [Example(str(i), "q", "a", {"level": "easy" if i < 5 else "hard"}) for i in range(10)]
    >>> [e.id for e in held_out_examples(rows, eval_per_level=2)]
    ['2', '3', '4', '7', '8', '9']
    >>> [e.id for e in held_out_examples(rows, eval_limit=8)]
    ['8', '9']
    """
    if eval_per_level is None and eval_limit is None:
        return list(examples)
    used = {id(e) for e in select_examples(examples, eval_limit, eval_per_level)}
    return [e for e in examples if id(e) not in used]
