"""Finding tagged spans in model output (`<answer>...</answer>` and friends).

Plain string search (`rfind`), linear in the text length whatever the text holds; nothing is
executed. The LAST complete block wins, as in TinyZero and most GRPO recipes (a model that
"thinks" may quote the tag earlier). Tags are matched case-insensitively.
"""

from __future__ import annotations


def last_tag_block(text: str, tag: str = "answer") -> str | None:
    """The stripped content of the last complete `<tag>...</tag>` block, or None.

    >>> last_tag_block("<answer>a</answer> then <answer> b </answer>")
    'b'
    >>> last_tag_block("<ANSWER>x</answer><answer>unclosed")
    'x'
    >>> last_tag_block("no tags") is None
    True
    """
    if not isinstance(text, str):
        return None
    lowered, opening, closing = text.lower(), f"<{tag.lower()}>", f"</{tag.lower()}>"
    if len(lowered) != len(text):  # a few characters change length when lower-cased
        lowered = text
    end = lowered.rfind(closing)
    start = lowered.rfind(opening, 0, end) if end >= 0 else -1
    if start < 0:
        return None
    return text[start + len(opening):end].strip()
