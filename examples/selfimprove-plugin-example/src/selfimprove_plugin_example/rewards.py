"""The `reversed_word` reward, in TRL's reward signature (works in a plain `GRPOTrainer` too)."""

from __future__ import annotations

from typing import Any

from selfimprove.tasks.tags import last_tag_block


def completion_text(completion: Any) -> str:
    """A TRL completion as text: a string, or the last message of a conversational completion."""
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content") or "")
    return completion if isinstance(completion, str) else ""


def reversed_word(completions: list, word: list[str], **kwargs: Any) -> list[float]:
    """1.0 when the last `<answer>` block holds `word` backwards, else 0.0 (no answer scores 0).

    >>> reversed_word(["<answer>desserts</answer>", [{"role": "assistant", "content": "no tags"}]],
    ...               word=["stressed", "stressed"])
    [1.0, 0.0]
    """
    scores = []
    for completion, gold in zip(completions, word, strict=True):
        answer = last_tag_block(completion_text(completion), "answer")
        scores.append(float(answer is not None and answer.lower() == str(gold)[::-1].lower()))
    return scores
