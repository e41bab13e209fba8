"""Shared-prefix KV reuse for batched generation.

Agent prompts in one batch share a long head (the few-shot system prompt, ~700 tokens for ReAct);
re-encoding it for every row and every turn dominates CPU time. `SharedPrefixCache` encodes the
longest prefix common to a batch once (batch of one), keeps it while the prefix stays the same,
and hands `generate` a copy expanded to the batch. One instance lives for one `generate` call of
the backend, so weights that change between calls (training) never meet a stale cache. Rows are laid out as
`prefix + padding + own suffix`: the padding sits in the middle, masked out, and position ids
come from the attention mask (`cumsum - 1`), so every row sees the same positions as it would
alone. Each row keeps at least one uncached token, so generation always has a token to start from.
"""

from __future__ import annotations

import copy
from typing import Any

MIN_SHARED_PREFIX = 32


def shared_prefix_length(prompts: list[list[int]]) -> int:
    """Length of the prefix common to all prompts, leaving every prompt at least one token of its own.

    >>> shared_prefix_length([[1, 2, 3, 4], [1, 2, 3, 5, 6]])
    3
    >>> shared_prefix_length([[1, 2], [1, 2, 3]])
    1
    >>> shared_prefix_length([[7, 8, 9]])
    2
    """
    shortest = min(len(p) for p in prompts)
    length = 0
    while length < shortest - 1 and all(p[length] == prompts[0][length] for p in prompts):
        length += 1
    return length


def middle_padded(prompts: list[list[int]], prefix_length: int, pad_id: int) -> tuple[list[list[int]], list[list[int]]]:
    """Rows `prefix + pad... + suffix` of equal width, and their attention masks (0 on the padding).

    >>> middle_padded([[1, 2, 3], [1, 2, 4, 5]], 2, 0)
    ([[1, 2, 0, 3], [1, 2, 4, 5]], [[1, 1, 0, 1], [1, 1, 1, 1]])
    """
    width = max(len(p) for p in prompts)
    rows, masks = [], []
    for prompt in prompts:
        gap = width - len(prompt)
        rows.append(prompt[:prefix_length] + [pad_id] * gap + prompt[prefix_length:])
        masks.append([1] * prefix_length + [0] * gap + [1] * (len(prompt) - prefix_length))
    return rows, masks


class SharedPrefixCache:
    """The KV cache of the last shared prefix seen, reused while the next chunks of a call share it."""

    def __init__(self, model: Any, min_length: int = MIN_SHARED_PREFIX):
        self.model, self.min_length = model, min_length
        self._prefix: tuple[int, ...] | None = None
        self._cache: Any = None
        self.stats = {"prefix_encodings": 0, "reused_prefix_tokens": 0}

    def generate_kwargs(self, prompts: list[list[int]], pad_id: int) -> dict[str, Any] | None:
        """`input_ids`, `attention_mask` and `past_key_values` for `model.generate`, or None when the
        batch shares too short a prefix to be worth it (the caller then pads on the left as usual)."""
        import torch

        length = shared_prefix_length(prompts)
        if length < self.min_length:
            return None
        cache = self._cache_for(tuple(prompts[0][:length]))
        expanded = copy.deepcopy(cache)
        if len(prompts) > 1:
            expanded.batch_repeat_interleave(len(prompts))
        rows, masks = middle_padded(prompts, length, pad_id)
        self.stats["reused_prefix_tokens"] += length * len(prompts)
        device = self.model.device
        return {"input_ids": torch.tensor(rows, device=device), "attention_mask": torch.tensor(masks, device=device),
                "past_key_values": expanded}

    def _cache_for(self, prefix: tuple[int, ...]) -> Any:
        import torch

        if prefix != self._prefix:
            with torch.inference_mode():
                output = self.model(input_ids=torch.tensor([prefix], device=self.model.device), use_cache=True)
            self._prefix, self._cache = prefix, output.past_key_values
            self.stats["prefix_encodings"] += 1
        return self._cache
