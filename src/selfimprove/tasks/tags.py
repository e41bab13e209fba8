"""Finding tagged spans in model output (`<answer>...</answer>` and friends).

Plain string search (`find`/`rfind`), linear in the text length whatever the text holds; nothing is
executed. For `last_tag_block` the LAST complete block wins, as in TinyZero and most GRPO recipes
(a model that "thinks" may quote the tag earlier); `tag_blocks` gives every closed block in order.
Tags are matched case-insensitively (ASCII letters).
"""

from __future__ import annotations

import string


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
    lowered, opening, closing = _lowered(text), f"<{tag.lower()}>", f"</{tag.lower()}>"
    end = lowered.rfind(closing)
    start = lowered.rfind(opening, 0, end) if end >= 0 else -1
    if start < 0:
        return None
    return text[start + len(opening):end].strip()


def tag_blocks(text: str, tag: str, ignore_case: bool = True) -> list[str]:
    """The raw contents of every closed `<tag>...</tag>` block, in order; an opening tag without a
    closing one after it is ignored. What `re.findall(r"<tag>(.*?)</tag>", re.S)` (with re.I | re.A
    unless `ignore_case` is False) gives, in linear time: that regex rescans to the end of the text from
    every unclosed opening tag.

    >>> tag_blocks("<search>a</search> <SEARCH>b <search>c</search> <search>d", "search")
    ['a', 'b <search>c']
    >>> tag_blocks("<X>a</X><x>b</x>", "x", ignore_case=False)
    ['b']
    """
    if not isinstance(text, str):
        return []
    if ignore_case:
        text_seen, opening, closing = _lowered(text), f"<{tag.lower()}>", f"</{tag.lower()}>"
    else:
        text_seen, opening, closing = text, f"<{tag}>", f"</{tag}>"
    blocks, position = [], 0
    while (start := text_seen.find(opening, position)) >= 0:
        end = text_seen.find(closing, start + len(opening))
        if end < 0:
            break
        blocks.append(text[start + len(opening):end])
        position = end + len(closing)
    return blocks


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _lowered(text: str) -> str:
    """`text` with ASCII letters lower-cased (tags are ASCII): every position stays where it was."""
    return text.translate(_ASCII_LOWER)
