"""The classic GRPO rewards users copy (willccbb's GRPO gist, Unsloth notebooks), behaviour kept exactly.

- `xml_correctness`: 2.0 when the text after the last `<answer>` (up to `</answer>`, stripped)
  equals the gold `answer` column exactly, else 0.0.
- `xml_int_answer`: 0.5 when that extracted text is all digits (`str.isdigit`).
- `strict_format`: 0.5 for `^<reasoning>\\n.*?\\n</reasoning>\\n<answer>\\n.*?\\n</answer>\\n$`.
- `soft_format`: 0.5 for `<reasoning>.*?</reasoning>\\s*<answer>.*?</answer>`.
- `xmlcount`: 0.125 per well-placed tag, minus 0.001 per character after `</answer>`.

Kept quirks, on purpose (users compare numbers with the originals): both format regexes use
`re.match` WITHOUT `re.DOTALL`, so reasoning that spans several lines fails them, and the soft
pattern must start at the first character; extraction takes the text after the last `<answer>`
up to the next `</answer>` (to the end when it is not closed).

One departure, as for every answer reward: a completion with no `<answer>` at all has no final
answer and scores 0 in `xml_correctness` and `xml_int_answer` (the gist compares the whole
completion then, so a bare "4" earned 2.0); so does one whose rollout `answered` column is False.
"""

from __future__ import annotations

import re

from selfimprove.rewards.text import column, completion_text, unanswered

_STRICT = re.compile(r"^<reasoning>\n.*?\n</reasoning>\n<answer>\n.*?\n</answer>\n$")
SOFT_PATTERN = r"<reasoning>.*?</reasoning>\s*<answer>.*?</answer>"  # what `soft_matches` decides, for re.match


def extract_xml_answer(text: str) -> str:
    """The gist's extraction: text after the last `<answer>`, before the next `</answer>`, stripped.

    >>> extract_xml_answer("<reasoning>\\n..\\n</reasoning>\\n<answer>\\n42\\n</answer>\\n")
    '42'
    >>> extract_xml_answer("just 7")
    'just 7'
    """
    return text.split("<answer>")[-1].split("</answer>")[0].strip()


def xml_answers(completions: list, kwargs: dict) -> list[str | None]:
    """`extract_xml_answer` of each completion; None without an `<answer>` tag or when the rollout's
    `answered` column says False.

    >>> xml_answers(["<answer>\\n4\\n</answer>", "4"], {})
    ['4', None]
    """
    missing = unanswered(kwargs, len(completions))
    texts = [completion_text(c) for c in completions]
    return [extract_xml_answer(t) if "<answer>" in t and not none else None
            for t, none in zip(texts, missing, strict=True)]


def xml_correctness(completions, **kwargs) -> list[float]:
    """2.0 when the extracted `<answer>` equals the gold `answer` column exactly; 0 without one.

    >>> xml_correctness(["<answer>\\n4\\n</answer>", "<answer>5</answer>", "4"], answer=["4", "4", "4"])
    [2.0, 0.0, 0.0]
    """
    golds = column(kwargs, "answer", len(completions))
    answers = xml_answers(completions, kwargs)
    return [2.0 if a is not None and a == str(g) else 0.0 for a, g in zip(answers, golds, strict=True)]


def xml_int_answer(completions, **kwargs) -> list[float]:
    """0.5 when the extracted `<answer>` is all digits; 0 without one.

    >>> xml_int_answer(["<answer>12</answer>", "<answer>-3</answer>", "<answer>x</answer>", "12"])
    [0.5, 0.0, 0.0, 0.0]
    """
    return [0.5 if a is not None and a.isdigit() else 0.0 for a in xml_answers(completions, kwargs)]


def strict_format(completions, **kwargs) -> list[float]:
    """0.5 for exactly `<reasoning>\\n...\\n</reasoning>\\n<answer>\\n...\\n</answer>\\n`.

    >>> strict_format(["<reasoning>\\nr\\n</reasoning>\\n<answer>\\n1\\n</answer>\\n", "<answer>1</answer>"])
    [0.5, 0.0]
    """
    return [0.5 if _STRICT.match(completion_text(c)) else 0.0 for c in completions]


def soft_format(completions, **kwargs) -> list[float]:
    """0.5 when the completion starts with `<reasoning>...</reasoning>` then `<answer>...</answer>`.

    >>> soft_format(["<reasoning>r</reasoning> <answer>1</answer> extra", "hi <reasoning>r</reasoning><answer>1</answer>"])
    [0.5, 0.0]
    """
    return [0.5 if soft_matches(completion_text(c)) else 0.0 for c in completions]


def soft_matches(text: str) -> bool:
    """Whether `re.match(SOFT_PATTERN, text)` matches, decided in linear time (the regex backtracks
    quadratically on one long line of repeated `<reasoning>x</reasoning><answer>`).

    Without re.DOTALL, every `</reasoning>` that can close the block lies on the first line. From
    each, `\\s*` may reach an `<answer>` on that line or, from the last one only, on a later
    line; a `</answer>` must follow on the `<answer>`'s own line. On one line, the earliest
    `<answer>` leaves the most room, so each line is checked once.

    >>> soft_matches("<reasoning>r</reasoning>\\n <answer>1</answer>"), soft_matches("<reasoning>r\\n</reasoning>")
    (True, False)
    """
    opening, closing = "<reasoning>", "</reasoning>"
    if not text.startswith(opening):
        return False
    first_line_end = _line_end(text, 0)
    checked_lines: set[int] = set()
    position = len(opening)
    while (close := text.find(closing, position, first_line_end)) >= 0:
        position = close + len(closing)
        answer = _skip_whitespace(text, position)
        if text.startswith("<answer>", answer):
            line_end = first_line_end if answer < first_line_end else _line_end(text, answer)
            if line_end not in checked_lines and text.find("</answer>", answer + len("<answer>"), line_end) >= 0:
                return True
            checked_lines.add(line_end)
    return False


def _line_end(text: str, position: int) -> int:
    end = text.find("\n", position)
    return len(text) if end < 0 else end


def _skip_whitespace(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def count_xml(text: str) -> float:
    """0.125 per well-placed tag; minus 0.001 per character after `</answer>` (the gist's `count_xml`).

    >>> count_xml("<reasoning>\\nr\\n</reasoning>\\n<answer>\\n1\\n</answer>\\n")
    0.5
    >>> round(count_xml("<reasoning>\\nr\\n</reasoning>\\n<answer>\\n1\\n</answer>\\nabc"), 3)
    0.494
    """
    count = 0.0
    if text.count("<reasoning>\n") == 1:
        count += 0.125
    if text.count("\n</reasoning>\n") == 1:
        count += 0.125
    if text.count("\n<answer>\n") == 1:
        count += 0.125
        count -= len(text.split("\n</answer>\n")[-1]) * 0.001
    if text.count("\n</answer>") == 1:
        count += 0.125
        count -= (len(text.split("\n</answer>")[-1]) - 1) * 0.001
    return count


def xmlcount(completions, **kwargs) -> list[float]:
    """`count_xml` of each completion.

    >>> xmlcount(["<reasoning>\\nr\\n</reasoning>\\n<answer>\\n1\\n</answer>\\n", "nothing"])
    [0.5, 0.0]
    """
    return [count_xml(completion_text(c)) for c in completions]
