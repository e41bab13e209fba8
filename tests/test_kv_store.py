"""The radix KV store: matches, splits, skipped inserts and LRU eviction, checked with states that
spell out their own token ids."""

from __future__ import annotations

import torch

from selfimprove.models.kv_store import PrefixKVStore


def states(tokens):
    """Fake KV states [layers=1, 2, heads=1, n, dim=1] whose values are the token ids."""
    return torch.tensor(tokens, dtype=torch.float32).view(1, 1, 1, -1, 1).expand(1, 2, 1, -1, 1).clone()


def matched_tokens(store, tokens, limit=None):
    match = store.match(tokens, limit)
    if not match.pieces:
        return match.length, []
    joined = torch.cat(match.pieces, dim=3)
    assert joined.shape[3] == match.length
    return match.length, [int(v) for v in joined[0, 0, 0, :, 0]]


def test_match_returns_the_longest_stored_prefix_and_its_states():
    store = PrefixKVStore(max_tokens=100)
    store.insert([1, 2, 3, 4], states([1, 2, 3, 4]), start=0)
    assert matched_tokens(store, [1, 2, 3, 4, 5]) == (4, [1, 2, 3, 4])
    assert matched_tokens(store, [1, 2, 9]) == (2, [1, 2])
    assert matched_tokens(store, [7, 8]) == (0, [])
    assert matched_tokens(store, [1, 2, 3, 4], limit=3) == (3, [1, 2, 3])


def test_diverging_sequences_split_a_node_and_share_the_prefix():
    store = PrefixKVStore(max_tokens=100)
    store.insert([1, 2, 3, 4], states([1, 2, 3, 4]), start=0)
    store.insert([1, 2, 5, 6], states([5, 6]), start=2)  # only the new part's states are given
    assert store.tokens_held == 6  # [1, 2] once, then [3, 4] and [5, 6]
    assert matched_tokens(store, [1, 2, 5, 6, 7]) == (4, [1, 2, 5, 6])
    assert matched_tokens(store, [1, 2, 3, 4]) == (4, [1, 2, 3, 4])


def test_extending_a_stored_sequence_adds_only_the_new_tokens():
    store = PrefixKVStore(max_tokens=100)
    store.insert([1, 2], states([1, 2]), start=0)
    store.insert([1, 2, 3], states([2, 3]), start=1)  # states from position 1 on; [2] already stored
    assert store.tokens_held == 3
    assert matched_tokens(store, [1, 2, 3]) == (3, [1, 2, 3])


def test_an_insert_whose_prefix_is_gone_is_skipped():
    store = PrefixKVStore(max_tokens=100)
    store.insert([1, 2, 3], states([3]), start=2)  # [1, 2] is not stored: nothing to attach it to
    assert store.tokens_held == 0 and store.match([1, 2, 3]).length == 0


def test_least_recently_used_leaves_are_evicted_first():
    store = PrefixKVStore(max_tokens=6)
    store.insert([1, 2, 3], states([1, 2, 3]), start=0)
    store.insert([4, 5, 6], states([4, 5, 6]), start=0)
    store.match([1, 2, 3])  # [1, 2, 3] is now the most recently used
    store.insert([7, 8, 9], states([7, 8, 9]), start=0)
    store.evict()
    assert store.tokens_held <= 6
    assert store.match([1, 2, 3]).length == 3 and store.match([7, 8, 9]).length == 3
    assert store.match([4, 5, 6]).length == 0


def test_clear_forgets_everything():
    store = PrefixKVStore(max_tokens=100)
    store.insert([1, 2], states([1, 2]), start=0)
    store.clear()
    assert store.tokens_held == 0 and store.match([1, 2]).length == 0
