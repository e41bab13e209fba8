"""RL rollouts through the cached decoder (`train.cached_generate`) against TRL's own generation path.

With top-k 1 sampling is deterministic, so the cached path and TRL's transformers `generate`
(`train.rollouts.trainer_generate`) must produce the same tokens from the same policy, LoRA and
repetition penalty included; that is how the wiring of the trainer's settings is checked.
"""

from __future__ import annotations

import pytest
import torch

from selfimprove.train.cached_generate import cached_generate, trainer_sampling, use_cached_generation
from selfimprove.train.rollouts import trainer_generate

SYSTEM = "You answer questions by searching. " * 6


def build_trainer(tiny_model_dir, tmp_path, **grpo):
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.initializer_range = 0.3  # output that depends on the prompt (see tests/test_cached_decoding.py)
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_config(config)
    args = GRPOConfig(output_dir=str(tmp_path), num_generations=2, per_device_train_batch_size=2, max_steps=1,
                      max_completion_length=8, report_to=[], save_strategy="no", seed=0, use_cpu=True,
                      **{"temperature": 0.9, "top_k": 1, "repetition_penalty": 1.4, **grpo})
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0, init_lora_weights=False)
    return GRPOTrainer(model=model, reward_funcs=[lambda completions, **kw: [0.0] * len(completions)], args=args,
                       train_dataset=Dataset.from_list([{"prompt": "hi"}] * 4), processing_class=tokenizer,
                       peft_config=lora)


@pytest.fixture(scope="module")
def trainer(tiny_model_dir, tmp_path_factory):
    return build_trainer(tiny_model_dir, tmp_path_factory.mktemp("grpo"))


def sequences(trainer):
    encode = trainer.processing_class
    first = encode(SYSTEM + "Who wrote it?", add_special_tokens=False)["input_ids"]
    second = encode(SYSTEM + "Which river is the longest one?", add_special_tokens=False)["input_ids"]
    return [first, first, second, second]


def test_the_cached_path_applies_on_cpu_and_not_where_it_cannot(trainer):
    assert use_cached_generation(trainer)
    trainer.use_vllm = True
    try:
        assert not use_cached_generation(trainer)
    finally:
        trainer.use_vllm = False
    params = trainer_sampling(trainer, None)
    assert (params.temperature, params.top_k, params.repetition_penalty, params.max_tokens) == (0.9, 1, 1.4, 8)


@pytest.mark.parametrize("merged", [True, False], ids=["merged-copy", "unmerged-lora"])
def test_same_tokens_as_trl_generation_with_lora_top_k_and_repetition_penalty(trainer, merged):
    ours, logprobs = cached_generate(trainer, merged=merged)(sequences(trainer), 6)
    theirs, _ = trainer_generate(trainer)(sequences(trainer), 6)
    assert logprobs is None
    assert ours == theirs
    assert ours[0] != ours[2] and all(0 < len(ids) <= 6 for ids in ours)
    with trainer.model.disable_adapter():  # the adapter really takes part in what was generated
        assert cached_generate(trainer, merged=merged)(sequences(trainer), 6)[0] != ours
    assert cached_generate(trainer, merged=merged)(sequences(trainer), 6)[0] == ours


@pytest.mark.parametrize("merged", [True, False], ids=["merged-copy", "unmerged-lora"])
def test_an_optimizer_step_on_the_lora_weights_empties_the_store(trainer, merged):
    from selfimprove.train.cached_generate import _DECODERS

    generate = cached_generate(trainer, merged=merged)
    before, _ = generate(sequences(trainer), 6)
    decoder = _DECODERS[trainer][1]
    assert decoder.store.tokens_held > 0
    version = decoder._weights_version
    lora = [p for n, p in trainer.model.named_parameters() if "lora_" in n]
    assert lora and all(p.requires_grad for p in lora)
    optimizer = torch.optim.AdamW(lora, lr=0.2)
    ids = torch.tensor([sequences(trainer)[0]])
    trainer.model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    after, _ = generate(sequences(trainer), 6)
    assert decoder._weights_version != version  # the LoRA update moved the version counters: store emptied
    assert after == trainer_generate(trainer)(sequences(trainer), 6)[0]
    assert after != before  # the step really changed the policy, so stale states would have shown


def test_a_new_model_gets_a_new_decoder(tiny_model_dir, tmp_path):
    from selfimprove.train.cached_generate import _DECODERS

    trainer = build_trainer(tiny_model_dir, tmp_path, top_k=0, repetition_penalty=1.0)
    assert trainer_sampling(trainer, 3).top_k is None
    cached_generate(trainer)(sequences(trainer)[:1], 3)
    first = _DECODERS[trainer][1]
    trainer.model_wrapped = trainer.model = build_trainer(tiny_model_dir, tmp_path).model
    cached_generate(trainer)(sequences(trainer)[:1], 3)
    assert _DECODERS[trainer][1] is not first and _DECODERS[trainer][2] is trainer.model


def test_sampling_is_reproducible_from_the_trainers_seed(tiny_model_dir, tmp_path):
    trainer = build_trainer(tiny_model_dir, tmp_path, top_k=0, repetition_penalty=1.0, temperature=1.5)
    generate = cached_generate(trainer)
    torch.manual_seed(5)
    first = [generate(sequences(trainer), 8)[0] for _ in range(2)]
    torch.manual_seed(5)
    second = [generate(sequences(trainer), 8)[0] for _ in range(2)]
    assert first == second
    assert first[0] != first[1]  # sampled, not greedy: the two calls differ


def test_the_merged_copy_holds_base_plus_lora_and_follows_the_policy(trainer):
    from selfimprove.train.cached_generate import MergedPolicy

    policy = MergedPolicy(trainer.model)
    name, layer = policy.adapted[0]
    adapter = layer.active_adapters[0]
    expected = layer.base_layer.weight + layer.scaling[adapter] * layer.lora_B[adapter].weight @ layer.lora_A[adapter].weight
    assert torch.allclose(policy.model.get_submodule(name).weight, expected, atol=1e-6)
    assert not any("lora_" in n for n, _ in policy.model.named_parameters())
    with torch.no_grad():
        layer.lora_B[adapter].weight.add_(1.0)
    assert torch.allclose(policy.refresh().get_submodule(name).weight,
                          layer.base_layer.weight + layer.get_delta_weight(adapter), atol=1e-6)
    with torch.no_grad():
        layer.lora_B[adapter].weight.sub_(1.0)


def test_rollouts_pick_their_generation_path(trainer, monkeypatch):
    """`rollout_generation`: trl = the trainer's path, cached = the decoder, auto (default) = cached where it applies."""
    from selfimprove.errors import ConfigError
    from selfimprove.train import rollouts

    assert rollouts.rollout_generate(trainer, "trl").__qualname__.startswith("trainer_generate")
    assert not rollouts.rollout_generate(trainer, "cached").__qualname__.startswith("trainer_generate")
    assert not rollouts.rollout_generate(trainer, "auto").__qualname__.startswith("trainer_generate")
    monkeypatch.setattr(trainer, "use_vllm", True)
    assert rollouts.rollout_generate(trainer, "auto").__qualname__.startswith("trainer_generate")
    with pytest.raises(ConfigError, match="rollout_generation: cached needs CPU"):
        rollouts.rollout_generate(trainer, "cached")
    with pytest.raises(ValueError, match="rollout generation must be one of"):
        rollouts.make_rollout_func(lambda prompt, tokenizer: None, "fast")


def test_grpo_and_rrr_configs_take_the_generation_path():
    from pydantic import ValidationError

    from selfimprove.train.grpo import GRPORunConfig
    from selfimprove.workflows.rrr.train import RRRConfig

    assert GRPORunConfig(task="countdown", output_dir="x").rollout_generation == "auto"
    assert RRRConfig(failures="f.jsonl", output_dir="x", rollout_generation="auto").rollout_generation == "auto"
    with pytest.raises(ValidationError):
        GRPORunConfig(task="countdown", output_dir="x", rollout_generation="fast")


def test_released_states_leave_an_empty_store_and_the_same_samples(trainer):
    from selfimprove.train.cached_generate import _DECODERS, release_states

    generate = cached_generate(trainer)
    first, _ = generate(sequences(trainer), 6)
    decoder = _DECODERS[trainer][1]
    assert decoder.store.tokens_held > 0
    release_states(trainer)  # what make_rollout_func does once a step's episodes are done
    assert decoder.store.tokens_held == 0 and _DECODERS[trainer][1] is decoder  # the decoder (and merged copy) stay
    assert generate(sequences(trainer), 6)[0] == first
    class NeverCached:  # a trainer that never generated through the cached path: nothing to do
        pass

    release_states(NeverCached())


def test_single_turn_runs_generate_through_the_decoder_where_it_applies(trainer, monkeypatch):
    """No environment: TRL's own generation for "trl" (and "auto" where the decoder does not apply), else a
    rollout that hands TRL what its own path does: the same prompt ids and, at top-k 1, the same completion ids,
    no env mask and no extra columns (the rewards receive exactly TRL's kwargs)."""
    from selfimprove.errors import ConfigError
    from selfimprove.train.rollouts import single_turn_rollout_func

    assert single_turn_rollout_func(trainer, "trl") is None
    rollout = single_turn_rollout_func(trainer, "auto")
    assert rollout is not None and single_turn_rollout_func(trainer, "cached") is not None
    prompts = [[{"role": "user", "content": SYSTEM + "Who wrote it?"}]] * 2
    trainer.model.eval()
    assert trainer.rollout_func is None
    theirs = trainer._generate(prompts)
    monkeypatch.setattr(trainer, "rollout_func", rollout)
    ours = trainer._generate(prompts)
    assert [list(p) for p in ours[0]] == [list(p) for p in theirs[0]]  # prompt ids
    assert [list(c) for c in ours[1]] == [list(c) for c in theirs[1]] and all(len(ids) > 0 for ids in ours[1])
    assert ours[3] == theirs[3]  # the decoded completions the rewards get
    assert (ours[2], ours[5]) == (theirs[2], theirs[5]) == (None, {})  # no env mask, no extra reward columns
    monkeypatch.setattr(trainer, "use_vllm", True)
    assert single_turn_rollout_func(trainer, "auto") is None
    with pytest.raises(ConfigError, match="rollout_generation: cached needs CPU"):
        single_turn_rollout_func(trainer, "cached")


def test_the_decoder_takes_a_max_new_tokens_from_generation_kwargs(trainer, monkeypatch):
    monkeypatch.setattr(trainer.generation_config, "max_new_tokens", 3)
    assert trainer_sampling(trainer, None).max_tokens == 3 and trainer_sampling(trainer, 5).max_tokens == 5


class TwoTurnEnvironment:
    """Two trained model turns that end at `stop`, the environment's text between them (no tools)."""

    def __init__(self, question: str, stop: tuple[str, ...]):
        from selfimprove.agent.environment import EpisodeFacts

        self.conversation = [{"role": "user", "content": SYSTEM + question}]
        self.stop, self.turns, self.done, self.finished = stop, 0, False, False
        self._facts = EpisodeFacts()

    def messages(self):
        return list(self.conversation)

    def next_turn(self):
        from selfimprove.agent.environment import TurnSpec

        return TurnSpec(stop=self.stop)

    def step(self, turn):
        self.conversation.append({"role": "assistant", "content": turn.text})
        self.turns += 1
        self.done = self.turns == 2
        return None

    def observe(self, result):
        if not self.done:
            self.conversation.append({"role": "user", "content": "Go on."})

    def facts(self):
        return self._facts

    def fields(self):
        return {}


def test_turns_cut_at_stop_strings_are_the_same_through_both_paths_with_fewer_tokens_sampled(trainer):
    """The cached decoder ends a row one token after its stop string; the episodes (ids, masks) equal TRL's path,
    which samples each turn to its budget."""
    from selfimprove.train.rollouts import cut_after_stop, run_episodes, start_episode

    tokenizer = trainer.processing_class
    questions = ["Who wrote it?", "Which river is the longest one?"]

    def rollout(generate, stop):
        sampled: list[int] = []

        def counted(batch, max_tokens, stops=None):
            ids, logprobs = generate(batch, max_tokens, stops)
            sampled.append(sum(len(i) for i in ids))
            return ids, logprobs

        episodes = [start_episode(TwoTurnEnvironment(q, stop), tokenizer) for q in questions for _ in range(2)]
        run_episodes(episodes, counted, tokenizer, {tokenizer.eos_token_id})
        return episodes, sum(sampled)

    first_turn = rollout(cached_generate(trainer), ())[0][0].turns[0]
    stop = (tokenizer.decode(first_turn[1:3]),)  # completed by the first turn's 3rd token (or sooner)
    assert len(cut_after_stop(tokenizer, first_turn, stop)) <= 3 < len(first_turn)
    (ours, ours_sampled), (theirs, theirs_sampled) = rollout(cached_generate(trainer), stop), \
        rollout(trainer_generate(trainer), stop)
    assert [(e.prompt_ids, e.completion_ids, e.env_mask) for e in ours] == \
        [(e.prompt_ids, e.completion_ids, e.env_mask) for e in theirs]
    assert ours[0].turns[0] == first_turn[: len(ours[0].turns[0])] and ours_sampled < theirs_sampled
