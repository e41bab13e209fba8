"""Content fingerprints of examples: what makes two examples "the same" for leak checks.

A task defines `fingerprint(example) -> str` (HotpotQA: the normalised question; Countdown: the
sorted numbers and the target; function calling: the normalised query and its tools; refiner: the
normalised question). Tasks without one fall back to the normalised question text. Two examples
with equal fingerprints count as one: generated data is de-duplicated by it, and a recipe refuses
to train on an example whose fingerprint an evaluation stage uses (`workflows/pipeline/overlap.py`).
Guaranteed: equal content gives equal fingerprints whatever the example ids, case, spacing,
punctuation, Unicode width, or the order of the tools offered. Not guaranteed: that paraphrases are
caught (this is exact matching after normalisation, not a semantic test).
"""

from __future__ import annotations

import json
import string
import unicodedata
from collections import Counter
from typing import Any


def normalized_text(text: Any) -> str:
    """Lowercase, NFKC, punctuation (ASCII and Unicode: curly quotes, dashes) dropped, whitespace collapsed.

    >>> normalized_text("  What  is the CAPITAL of France?")
    'what is the capital of france'
    >>> normalized_text("What’s “Dune”?") == normalized_text("What's 'Dune'")
    True
    """
    folded = unicodedata.normalize("NFKC", str(text)).lower()
    kept = "".join(ch for ch in folded if ch not in string.punctuation and not unicodedata.category(ch).startswith("P"))
    return " ".join(kept.split())


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spacing: equal structures give equal text.

    >>> canonical_json({"b": 1, "a": [2, {"d": 3, "c": 4}]})
    '{"a":[2,{"c":4,"d":3}],"b":1}'
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def example_fingerprint(task: Any, example: Any) -> str:
    """The task's fingerprint of `example`, or its normalised question when the task defines none."""
    custom = getattr(task, "fingerprint", None)
    return str(custom(example)) if callable(custom) else normalized_text(example.question)


def fingerprints(task: Any, examples: list[Any]) -> dict[str, str]:
    """Fingerprint -> the id of the first example that has it."""
    found: dict[str, str] = {}
    for example in examples:
        found.setdefault(example_fingerprint(task, example), str(example.id))
    return found


def duplicate_ids(task: Any, examples: list[Any]) -> list[str]:
    """Ids of examples whose fingerprint an earlier example already has.

    >>> from selfimprove.tasks.base import Example
    >>> class T: pass
    >>> duplicate_ids(T(), [Example("a", "Who?", ""), Example("b", "who", ""), Example("c", "Why?", "")])
    ['b']
    """
    seen: Counter[str] = Counter()
    duplicates = []
    for example in examples:
        key = example_fingerprint(task, example)
        if seen[key]:
            duplicates.append(str(example.id))
        seen[key] += 1
    return duplicates
