"""Shared-prefix KV reuse: same tokens as plain left-padded batches, and the prefix really reused."""

from __future__ import annotations

import pytest

from selfimprove.models import SamplingParams
from selfimprove.models.transformers_backend import TransformersGenerator

SYSTEM = "You answer questions by searching. " * 12


@pytest.fixture(scope="module")
def generators(tiny_model_dir):
    cached = TransformersGenerator(tiny_model_dir, batch_size=3)
    plain = TransformersGenerator(tiny_model_dir, batch_size=3, model=cached.model, tokenizer=cached.tokenizer,
                                  prefix_cache=False)
    return cached, plain


def conversations(questions):
    return [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}] for q in questions]


QUESTIONS = ["Who?", "Where was the author of the book born, and when?", "What year", "Which river is longest?"]


def test_reused_prefix_gives_the_same_greedy_tokens_as_left_padding(generators):
    cached, plain = generators
    params = SamplingParams(max_tokens=12, temperature=0.0, n=2)
    with_cache = cached.generate(conversations(QUESTIONS), params)
    without = plain.generate(conversations(QUESTIONS), params)
    assert [[c.token_ids for c in row] for row in with_cache] == [[c.token_ids for c in row] for row in without]
    assert [[c.prompt_ids for c in row] for row in with_cache] == [[c.prompt_ids for c in row] for row in without]
    assert cached.stats["reused_prefix_tokens"] > 8 * 40  # 8 rows, each reusing the system prompt
    assert plain.stats["reused_prefix_tokens"] == 0


def test_each_prompt_alone_matches_the_batch(generators):
    cached, _ = generators
    params = SamplingParams(max_tokens=10, temperature=0.0)
    batch = cached.generate(conversations(QUESTIONS), params)
    alone = [cached.generate(conversations([q]), params)[0] for q in QUESTIONS]
    assert [row[0].token_ids for row in batch] == [row[0].token_ids for row in alone]


def test_stop_strings_still_cut_each_row(generators):
    cached, plain = generators
    params = SamplingParams(max_tokens=16, temperature=0.0, stop=("e",))
    with_cache = cached.generate(conversations(QUESTIONS), params)
    without = plain.generate(conversations(QUESTIONS), params)
    assert [r[0].text for r in with_cache] == [r[0].text for r in without]
    assert all("e" not in r[0].text for r in with_cache)


def test_prompts_without_a_long_shared_prefix_take_the_plain_path(generators):
    cached, _ = generators
    before = cached.stats["reused_prefix_tokens"]
    cached.generate([[{"role": "system", "content": "Alpha."}, {"role": "user", "content": SYSTEM}],
                     [{"role": "system", "content": "Beta."}, {"role": "user", "content": SYSTEM}]],
                    SamplingParams(max_tokens=4, temperature=0.0))
    assert cached.stats["reused_prefix_tokens"] == before
