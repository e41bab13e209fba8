"""A radix tree of token sequences and their KV states, so prompts that extend earlier ones skip re-encoding.

An agent's prompt at turn t+1 is its prompt at turn t plus a few hundred new tokens (the step it
wrote, the observation), and every episode of a run starts with the same few-shot system prompt.
`PrefixKVStore` keeps the key/value states the model computed for such sequences, keyed by token
ids (like vLLM's automatic prefix caching and SGLang's RadixAttention): `match(tokens)` returns
how many leading tokens are already encoded and their states; `insert(tokens, kv, start)` adds
the states of `tokens[start:]`. Shared prefixes are stored once (a node per distinct segment).

States are tensors `[layers, 2 (key, value), kv_heads, tokens, head_dim]`. The store holds at
most `max_tokens` tokens; past that, least recently used leaves are evicted. It does not know
about weights: the owner clears it when the model changes (see `models/cached_decoding.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class _Node:
    tokens: tuple[int, ...]
    kv: Any  # tensor [layers, 2, heads, len(tokens), dim]; None at the root
    parent: _Node | None = None
    children: dict[int, _Node] = field(default_factory=dict)
    last_used: int = 0


@dataclass
class Match:
    """The encoded prefix of a token sequence: its length and the state pieces covering it, in order."""

    length: int
    pieces: list[Any]  # tensors [layers, 2, heads, n, dim] whose n sum to `length`


class PrefixKVStore:
    """Token-id radix tree of KV states with an LRU token budget."""

    def __init__(self, max_tokens: int):
        self.max_tokens = max_tokens
        self.root = _Node(tokens=(), kv=None)
        self.tokens_held = 0
        self._clock = 0

    def clear(self) -> None:
        self.root, self.tokens_held = _Node(tokens=(), kv=None), 0

    def match(self, tokens: list[int], limit: int | None = None) -> Match:
        """The longest stored prefix of `tokens[:limit]` (marks its nodes as recently used)."""
        tokens = tokens[:limit] if limit is not None else tokens
        self._clock += 1
        node, position, pieces = self.root, 0, []
        while position < len(tokens) and tokens[position] in node.children:
            child = node.children[tokens[position]]
            common = _common_length(child.tokens, tokens, position)
            child.last_used = self._clock
            pieces.append(child.kv if common == len(child.tokens) else child.kv[:, :, :, :common])
            position += common
            if common < len(child.tokens):
                break
            node = child
        return Match(position, pieces)

    def insert(self, tokens: list[int], kv: Any, start: int) -> None:
        """Store the states `kv` of `tokens[start:]`; skipped if `tokens[:start]` is no longer stored."""
        node, position = self.root, 0
        while position < len(tokens) and tokens[position] in node.children:
            child = node.children[tokens[position]]
            common = _common_length(child.tokens, tokens, position)
            if common < len(child.tokens):
                child = self._split(child, common)
            node, position = child, position + common
        if position < start or position == len(tokens):
            return
        self._clock += 1
        leaf = _Node(tokens=tuple(tokens[position:]), kv=kv[:, :, :, position - start:].clone(), parent=node,
                     last_used=self._clock)
        node.children[leaf.tokens[0]] = leaf
        self.tokens_held += len(leaf.tokens)

    def evict(self, keep: int | None = None) -> None:
        """Drop least recently used leaves until at most `keep` (default `max_tokens`) tokens are held."""
        budget = self.max_tokens if keep is None else keep
        while self.tokens_held > budget:
            leaves = [n for n in self._nodes() if not n.children and n is not self.root]
            if not leaves:
                return
            for leaf in sorted(leaves, key=lambda n: n.last_used):
                del leaf.parent.children[leaf.tokens[0]]
                self.tokens_held -= len(leaf.tokens)
                if self.tokens_held <= budget:
                    return

    def _split(self, node: _Node, at: int) -> _Node:
        """Cut `node` after `at` tokens; returns the new upper part (the lower part keeps the children)."""
        upper = _Node(tokens=node.tokens[:at], kv=node.kv[:, :, :, :at].clone(), parent=node.parent,
                      last_used=node.last_used)
        node.parent.children[upper.tokens[0]] = upper
        node.tokens, node.kv, node.parent = node.tokens[at:], node.kv[:, :, :, at:].clone(), upper
        upper.children[node.tokens[0]] = node
        return upper

    def _nodes(self):
        stack = [self.root]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.children.values())


def _common_length(segment: tuple[int, ...], tokens: list[int], position: int) -> int:
    """How many tokens of `segment` equal `tokens[position:]`, from the start."""
    length = 0
    limit = min(len(segment), len(tokens) - position)
    while length < limit and segment[length] == tokens[position + length]:
        length += 1
    return length
