"""Cached decoding: the same tokens as `model.generate`, with KV states really reused across calls.

The tiny test model is re-initialised with a wide weight distribution so that its greedy output
depends on the prompt (the default tiny model repeats one token whatever it is given), which makes
token-for-token comparisons meaningful.
"""

from __future__ import annotations

import pytest
import torch

from selfimprove.models import SamplingParams
from selfimprove.models.cached_decoding import supports_cached_decoding
from selfimprove.models.transformers_backend import TransformersGenerator

SYSTEM = "You answer questions by searching. " * 12
QUESTIONS = ["Who?", "Where was the author of the book born, and when?", "What year", "Which river is longest?"]


@pytest.fixture(scope="module")
def peaky(tiny_model_dir):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.padding_side = "left"
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.initializer_range = 0.3
    torch.manual_seed(1)
    return AutoModelForCausalLM.from_config(config).eval(), tokenizer


def generators(peaky, batch_size=3, **options):
    model, tokenizer = peaky
    cached = TransformersGenerator("peaky", model=model, tokenizer=tokenizer, batch_size=batch_size, **options)
    reference = TransformersGenerator("peaky", model=model, tokenizer=tokenizer, batch_size=batch_size)
    reference.decoder = None  # plain model.generate with left padding
    return cached, reference


def conversations(questions, answer_prefix=None):
    convs = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}] for q in questions]
    if answer_prefix is not None:
        convs = [c + [{"role": "assistant", "content": answer_prefix}] for c in convs]
    return convs


def tokens(results):
    return [[c.token_ids for c in row] for row in results]


@pytest.mark.parametrize("params", [
    SamplingParams(max_tokens=12), SamplingParams(max_tokens=16, stop=("e",)), SamplingParams(max_tokens=12, n=2),
    SamplingParams(max_tokens=1),
], ids=["greedy", "stop", "n2", "one-token"])
def test_greedy_tokens_equal_model_generate(peaky, params):
    cached, reference = generators(peaky)
    assert supports_cached_decoding(cached.model) and cached.decoder is not None
    ours, theirs = cached.generate(conversations(QUESTIONS), params), reference.generate(conversations(QUESTIONS), params)
    assert tokens(ours) == tokens(theirs)
    assert [[c.text for c in r] for r in ours] == [[c.text for c in r] for r in theirs]
    assert [[c.finish_reason for c in r] for r in ours] == [[c.finish_reason for c in r] for r in theirs]
    assert len({tuple(r[0].token_ids) for r in ours}) > 1  # the prompts really lead to different outputs


def test_a_turn_that_extends_an_earlier_one_encodes_only_its_new_tokens(peaky):
    cached, reference = generators(peaky)
    first = cached.generate(conversations(QUESTIONS), SamplingParams(max_tokens=8))
    encoded_before = cached.decoder.stats["encoded_prompt_tokens"]
    follow_up = [conv + [{"role": "assistant", "content": row[0].text + " and then"}]
                 for conv, row in zip(conversations(QUESTIONS), first, strict=True)]
    second = cached.generate(follow_up, SamplingParams(max_tokens=8))
    assert tokens(second) == tokens(reference.generate(follow_up, SamplingParams(max_tokens=8)))
    prompt_tokens = sum(len(r[0].prompt_ids) for r in second)
    newly_encoded = cached.decoder.stats["encoded_prompt_tokens"] - encoded_before
    assert newly_encoded < 0.2 * prompt_tokens  # the system prompt, question and first answer are reused


def test_the_shared_prefix_is_encoded_once_per_batch(peaky):
    cached, _ = generators(peaky)
    results = cached.generate(conversations(QUESTIONS), SamplingParams(max_tokens=4))
    prompt_tokens = sum(len(r[0].prompt_ids) for r in results)
    system_tokens = len(cached.tokenizer(SYSTEM)["input_ids"])
    encoded = cached.decoder.stats["encoded_prompt_tokens"]
    assert encoded < prompt_tokens - 2 * system_tokens  # 4 rows, the system prompt encoded once
    assert cached.stats["reused_prefix_tokens"] >= 3 * system_tokens


def test_each_prompt_alone_matches_the_batch(peaky):
    cached, _ = generators(peaky)
    params = SamplingParams(max_tokens=10)
    batch = cached.generate(conversations(QUESTIONS), params)
    cached.clear_kv_cache()
    alone = [cached.generate(conversations([q]), params)[0] for q in QUESTIONS]
    assert tokens(batch) == tokens(alone)


def test_reuse_off_encodes_every_prompt_whole_and_gives_the_same_tokens(peaky):
    cached, reference = generators(peaky, prefix_cache=False)
    params = SamplingParams(max_tokens=8)
    for _ in range(2):
        assert tokens(cached.generate(conversations(QUESTIONS), params)) == \
            tokens(reference.generate(conversations(QUESTIONS), params))
    assert cached.stats["reused_prefix_tokens"] == 0
    assert cached.decoder.store.tokens_held == 0


def test_changing_a_weight_drops_the_stored_states(peaky):
    model, tokenizer = peaky
    copy = type(model)(model.config).eval()
    copy.load_state_dict(model.state_dict())
    cached, reference = generators((copy, tokenizer))
    params = SamplingParams(max_tokens=8)
    cached.generate(conversations(QUESTIONS), params)
    assert cached.decoder.store.tokens_held > 0
    with torch.no_grad():
        copy.model.layers[0].self_attn.k_proj.weight.mul_(3.0)  # in place, as an optimizer step would
    assert tokens(cached.generate(conversations(QUESTIONS), params)) == \
        tokens(reference.generate(conversations(QUESTIONS), params))


def test_finished_rows_leave_the_batch_and_results_stay_in_order(peaky):
    cached, reference = generators(peaky, batch_size=8)
    questions = QUESTIONS * 2
    params = SamplingParams(max_tokens=24, stop=("a", "e", "o"))
    ours, theirs = cached.generate(conversations(questions), params), reference.generate(conversations(questions), params)
    assert tokens(ours) == tokens(theirs)
    assert cached.decoder.stats["compactions"] >= 1


def test_sampling_is_reproducible_with_a_seed_and_respects_top_p(peaky):
    cached, _ = generators(peaky)
    params = SamplingParams(max_tokens=10, temperature=0.9, top_p=0.5, seed=7, n=3)
    first, second = cached.generate(conversations(QUESTIONS), params), cached.generate(conversations(QUESTIONS), params)
    assert tokens(first) == tokens(second)
    greedy = cached.generate(conversations(QUESTIONS), SamplingParams(max_tokens=10))
    assert tokens(first) != [[g[0].token_ids] * 3 for g in greedy]


def test_top_p_keeps_the_smallest_set_that_reaches_it():
    from selfimprove.models.cached_decoding import _sample

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    torch.manual_seed(0)
    draws = {int(_sample(logits, SamplingParams(temperature=1.0, top_p=0.7))) for _ in range(200)}
    assert draws == {0, 1}


def test_draw_samples_the_given_distribution_and_never_an_impossible_id():
    from selfimprove.models.cached_decoding import draw

    probs = torch.tensor([[0.0, 0.5, 0.0, 0.3, 0.2, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    generator = torch.Generator().manual_seed(3)
    draws = torch.stack([draw(probs, generator) for _ in range(4000)])
    assert draws[:, 1].eq(0).all()
    counts = torch.bincount(draws[:, 0], minlength=6).float() / len(draws)
    assert counts[[0, 2, 5]].sum() == 0  # probability 0: never drawn, even where a uniform number is 0
    # binomial standard error at n=4000 is <= 0.008: 4 of them
    assert torch.allclose(counts, probs[0], atol=0.032), counts
    assert torch.equal(draw(probs, torch.Generator().manual_seed(3)), draws[0])  # same seed, same draw


@pytest.mark.parametrize("uniform", [0.0, 1.0 - 2**-53], ids=["zero", "largest-below-1"])
def test_draw_at_the_edges_of_the_uniform_number_skips_impossible_ids(uniform, monkeypatch):
    from selfimprove.models import cached_decoding

    probs = torch.tensor([[0.0, 0.0, 0.7, 0.3, 0.0, 0.0]])
    monkeypatch.setattr(cached_decoding.torch, "rand", lambda shape, **kw: torch.full(shape, uniform, dtype=kw["dtype"]))
    assert int(cached_decoding.draw(probs)) == (2 if uniform == 0.0 else 3)


def test_draw_refuses_a_row_that_is_not_a_distribution():
    from selfimprove.models.cached_decoding import draw

    for bad in (torch.zeros(1, 4), torch.full((1, 4), float("nan"))):
        with pytest.raises(ValueError, match="not finite or sums to 0"):
            draw(bad)


def test_sliding_window_models_fall_back_to_model_generate(tiny_model_dir):
    from transformers import MistralConfig, MistralForCausalLM

    config = MistralConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=1, sliding_window=8)
    assert not supports_cached_decoding(MistralForCausalLM(config))


# ---------------------------------------------------------------- sampling semantics and the token-id entry point


def transformers_processors(params: SamplingParams):
    """The processors `model.generate` builds for `params`, in its order."""
    from transformers import (
        LogitsProcessorList,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    chain = LogitsProcessorList()
    if params.repetition_penalty is not None:
        chain.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if params.temperature > 0:
        chain.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k:
            chain.append(TopKLogitsWarper(params.top_k))
        if params.top_p < 1.0:
            chain.append(TopPLogitsWarper(params.top_p))
    return chain


@pytest.mark.parametrize("params", [
    SamplingParams(repetition_penalty=1.3), SamplingParams(repetition_penalty=0.7),
    SamplingParams(temperature=0.7, top_k=5), SamplingParams(temperature=1.0, top_k=1),
    SamplingParams(temperature=0.9, top_p=0.6), SamplingParams(temperature=0.8, top_k=7, top_p=0.9, repetition_penalty=1.2),
], ids=["penalty", "penalty-below-1", "top-k", "top-k-1", "top-p", "all"])
def test_processed_logits_equal_transformers_processors(params):
    from selfimprove.models.cached_decoding import _seen_ids, process_logits

    torch.manual_seed(0)
    logits = torch.randn(3, 50) * 4
    ids = torch.tensor([[1, 5, 5, 49, 0, 7], [2, 2, 2, 2, 2, 2], [10, 11, 12, 13, 48, 3]])
    seen = _seen_ids(ids.tolist(), logits.shape[-1], logits.device)
    ours = process_logits(logits.clone(), params, seen)
    assert torch.equal(ours, transformers_processors(params)(ids, logits.clone()))
    assert not torch.equal(ours, logits)  # the setting really changed the logits


def test_repetition_penalty_and_top_k_generate_as_model_generate(peaky):
    cached, reference = generators(peaky)
    plain = cached.generate(conversations(QUESTIONS), SamplingParams(max_tokens=12))
    for params in (SamplingParams(max_tokens=12, repetition_penalty=1.5),
                   SamplingParams(max_tokens=12, temperature=0.8, top_k=1, repetition_penalty=1.5, seed=3)):
        ours = cached.generate(conversations(QUESTIONS), params)
        assert tokens(ours) == tokens(reference.generate(conversations(QUESTIONS), params))
        assert tokens(ours) != tokens(plain)  # the penalty changed what was generated
    cached.clear_kv_cache()
    assert tokens(cached.generate(conversations(QUESTIONS), SamplingParams(max_tokens=12, top_k=None))) == tokens(plain)


def prompt_ids(tokenizer, question):
    return tokenizer(SYSTEM + question, add_special_tokens=False)["input_ids"]


def test_generate_tokens_matches_model_generate_and_shares_a_groups_prompt(peaky):
    from selfimprove.models.cached_decoding import CachedDecoder

    model, tokenizer = peaky
    decoder, (_, reference) = CachedDecoder(model, tokenizer), generators(peaky)
    first, second = prompt_ids(tokenizer, QUESTIONS[1]), prompt_ids(tokenizer, QUESTIONS[3])
    params = SamplingParams(max_tokens=10)
    ours = decoder.generate_tokens([first] * 4 + [second] * 4, params)
    assert ours == [reference._model_generate([first], params)[0]] * 4 + [reference._model_generate([second], params)[0]] * 4
    # each distinct prompt encoded once (the shared system prompt once), plus one fed token per row
    assert decoder.stats["encoded_prompt_tokens"] <= len(first) + len(second) - len(prompt_ids(tokenizer, "")) + 8 + 2


def test_generate_tokens_stops_after_eos_and_a_longer_sequence_encodes_only_its_new_tokens(peaky):
    from selfimprove.models.cached_decoding import CachedDecoder

    model, tokenizer = peaky
    decoder = CachedDecoder(model, tokenizer)
    prompts = [prompt_ids(tokenizer, q) for q in QUESTIONS]
    generated = decoder.generate_tokens(prompts, SamplingParams(max_tokens=10))
    decoder.eos_ids = {generated[0][3]}
    decoder.clear()
    cut = decoder.generate_tokens(prompts, SamplingParams(max_tokens=10))
    assert cut[0] == generated[0][: generated[0].index(generated[0][3]) + 1]  # the EOS, nothing after
    extended = [p + g + [5, 6, 7] for p, g in zip(prompts, cut, strict=True)]
    before = decoder.stats["encoded_prompt_tokens"]
    decoder.generate_tokens(extended, SamplingParams(max_tokens=4))
    assert decoder.stats["encoded_prompt_tokens"] - before <= 4 * 4  # 3 new tokens + the last generated one per row


def test_generate_tokens_ends_a_row_one_token_after_its_own_stop_string(peaky):
    """Per-row stops: the row keeps exactly the token after the one whose decoded text first holds its stop (what
    the rollout driver may train as a closing EOS), rows with other or no stops run on, greedy tokens unchanged."""
    from selfimprove.models.cached_decoding import CachedDecoder
    from selfimprove.train.rollouts import cut_after_stop

    model, tokenizer = peaky
    decoder = CachedDecoder(model, tokenizer, reuse=False)
    prompts = [prompt_ids(tokenizer, q) for q in QUESTIONS[:3]]
    free = decoder.generate_tokens(prompts, SamplingParams(max_tokens=12))
    assert all(len(ids) >= 6 for ids in free[:2]), free
    stop = tokenizer.decode(free[0][2:4])  # completed by the row's 4th token
    last = tokenizer.decode(free[1][-2:])  # completed by the row's last token: no room for one more
    stops = [(stop,), (last,), ()]
    stopped = decoder.generate_tokens(prompts, SamplingParams(max_tokens=12), stops=stops)
    for row in (0, 1):
        kept = cut_after_stop(tokenizer, free[row], stops[row])
        assert stopped[row] == free[row][: len(kept) + 1], row  # the budget ends a row whose stop came last
    assert len(stopped[0]) <= 5 and stopped[2] == free[2]
    with pytest.raises(ValueError, match="2 stop tuples for 3 sequences"):
        decoder.generate_tokens(prompts, SamplingParams(max_tokens=4), stops=stops[:2])
