"""Generators: the transformers backend on the tiny model, specs, the scripted backend."""

from __future__ import annotations

import pytest

from selfimprove.errors import ModelSpecError
from selfimprove.models import SamplingParams, load_generator, parse_model_spec
from selfimprove.models.generator import Generator
from selfimprove.models.scripted import ScriptedGenerator

CONVS = [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "a much longer question about Paris"}]]


@pytest.fixture(scope="module")
def tiny_generator(tiny_model_dir):
    return load_generator(str(tiny_model_dir), batch_size=3)


def test_transformers_backend_returns_n_per_prompt_in_order(tiny_generator):
    results = tiny_generator.generate(CONVS, SamplingParams(max_tokens=8, n=2))
    assert [len(r) for r in results] == [2, 2]
    for completions in results:
        for completion in completions:
            assert completion.num_tokens == len(completion.token_ids) <= 8
            assert completion.prompt_ids and completion.finish_reason in ("stop", "length")
    assert isinstance(tiny_generator, Generator)


def test_greedy_is_deterministic_and_matches_single_prompt_runs(tiny_generator):
    params = SamplingParams(max_tokens=10)
    batched = tiny_generator.generate(CONVS, params)
    alone = [tiny_generator.generate([conv], params)[0] for conv in CONVS]
    assert [c[0].token_ids for c in batched] == [c[0].token_ids for c in alone]


def test_seeded_sampling_is_reproducible(tiny_generator):
    params = SamplingParams(max_tokens=12, temperature=1.0, seed=7, n=3)
    first = tiny_generator.generate(CONVS, params)
    second = tiny_generator.generate(CONVS, params)
    assert [[c.token_ids for c in r] for r in first] == [[c.token_ids for c in r] for r in second]


def test_stop_strings_cut_each_sequence(tiny_generator):
    free = tiny_generator.generate(CONVS, SamplingParams(max_tokens=16, temperature=1.0, seed=3, n=4))
    texts = [c.text for r in free for c in r]
    stop = next(ch for ch in "eaotin " if any(ch in t for t in texts))
    cut = tiny_generator.generate(CONVS, SamplingParams(max_tokens=16, temperature=1.0, seed=3, n=4, stop=(stop,)))
    stopped = [c for r in cut for c in r if c.stop == stop]
    assert stopped, "some sequence should hit the stop string"
    for completion in (c for r in cut for c in r):
        assert stop not in completion.text


def test_decoded_tokens_contain_text(tiny_generator):
    completion = tiny_generator.generate(CONVS[:1], SamplingParams(max_tokens=12, temperature=1.0, seed=1))[0][0]
    decoded = tiny_generator.tokenizer.decode(completion.token_ids, skip_special_tokens=True)
    assert decoded.startswith(completion.text)


@pytest.mark.parametrize(
    "spec, kind, model, url",
    [
        ("smollm2-135m", "transformers", "smollm2-135m", None),
        ("HuggingFaceTB/SmolLM2-360M-Instruct", "transformers", "HuggingFaceTB/SmolLM2-360M-Instruct", None),
        ("openai:qwen@http://127.0.0.1:8000/v1", "openai", "qwen", "http://127.0.0.1:8000/v1"),
        ("vllm:smollm2-135m", "vllm", "smollm2-135m", None),
    ],
)
def test_parse_model_spec(spec, kind, model, url):
    parsed = parse_model_spec(spec)
    assert (parsed.kind, parsed.model, parsed.base_url) == (kind, model, url)


@pytest.mark.parametrize("spec", ["", "nonsense", "./missing-dir", "openai:model-without-url", "openai:m@ftp://x",
                                  "vllm:openai:m@http://x"])
def test_bad_specs_fail_with_model_spec_error(spec):
    with pytest.raises(ModelSpecError):
        parse_model_spec(spec)


def test_scripted_generator_applies_stop_strings():
    gen = ScriptedGenerator(lambda conv, i: f"answer {i}] tail")
    out = gen.generate(CONVS, SamplingParams(n=2, stop=("]",)))
    assert [[c.text for c in r] for r in out] == [["answer 0", "answer 1"], ["answer 0", "answer 1"]]
    assert len(gen.calls) == 1
