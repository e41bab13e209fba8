"""Layout rewards for the `<think>...</think><answer>...</answer>` prompts (DeepSeek-R1, TinyZero, Countdown).

`think_answer_format`: 1.0 when the completion, whitespace at both ends aside, is one
`<think>...</think>` block followed (whitespace between) by one `<answer>...</answer>` block and
nothing after it; else 0.0. The end is anchored on purpose: open-r1's `format_reward` uses `$`
with `re.MULTILINE`, so a completion that repeats `</think><answer>...` after its first answer
still matches there, and a GRPO policy that loses its end of turn is then never told so (seen
here: GRPO on Countdown at lr 1e-4 drifted to repeating the answer block until the length cap).
Decided with `str.find`/`count` in linear time (no regex backtracking on hostile text); 0 for an
episode whose rollout `answered` column is False.
"""

from __future__ import annotations

from selfimprove.rewards.text import completion_text, unanswered

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def has_think_answer_layout(text: str) -> bool:
    """Whether `text` is exactly `<think>...</think>` then `<answer>...</answer>`, whitespace aside.

    >>> has_think_answer_layout("<think>\\n1 + 2 = 3\\n</think>\\n<answer>1 + 2</answer>\\n")
    True
    >>> has_think_answer_layout("<think>x</think><answer>1</answer></think><answer>1</answer>")
    False
    >>> has_think_answer_layout("<answer>1</answer>"), has_think_answer_layout("<think>x</think> so <answer>1</answer>")
    (False, False)
    """
    if not isinstance(text, str):
        return False
    text = text.strip()
    if not (text.startswith("<think>") and text.endswith("</answer>")) or any(text.count(tag) != 1 for tag in _TAGS):
        return False
    think_end, answer_start = text.find("</think>"), text.find("<answer>")
    return think_end < answer_start and not text[think_end + len("</think>"):answer_start].strip()


def think_answer_format(completions, **kwargs) -> list[float]:
    """1.0 for a completion laid out as `<think>...</think>` then one `<answer>...</answer>`, nothing after.

    >>> think_answer_format(["<think>a</think>\\n<answer>1</answer>", "<think>a</think><answer>1</answer> more"])
    [1.0, 0.0]
    """
    missing = unanswered(kwargs, len(completions))
    return [0.0 if none else float(has_think_answer_layout(completion_text(c)))
            for c, none in zip(completions, missing, strict=True)]
