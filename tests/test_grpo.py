"""GRPO: multi-turn rollouts (token exactness, env_mask), configs, CLI wiring, a tiny training run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfimprove.agent.formats import get_format
from selfimprove.agent.search_env import SearchEnvironment, SearchTool
from selfimprove.tasks.base import Example
from selfimprove.tools.base import Hit
from selfimprove.train.rollouts import cut_after_stop, rollout_output, run_episodes, start_episode

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


class ScriptedTokens:
    """A generate function that returns pre-tokenised turns and records what it was given."""

    def __init__(self, tokenizer, turns: list[str]):
        self.turns = [tokenizer.encode(t, add_special_tokens=False) for t in turns]
        self.inputs: list[list[list[int]]] = []
        self.generated: list[list[int]] = []

    def __call__(self, sequences, max_tokens=None, stops=None):
        self.inputs.append([list(s) for s in sequences])
        out = [self.turns[len(self.inputs) - 1] for _ in sequences]
        self.generated.extend(out)
        return out, None


class FakeSearcher:
    name = "fake"

    def __init__(self):
        self.queries: list[str] = []

    def search(self, queries, k):
        self.queries += queries
        return [[Hit("1", "Paris", "Paris is the capital of France.", 1.0)] for _ in queries]


def search_episode(tokenizer, turns):
    searcher = FakeSearcher()
    prompt = [{"role": "user", "content": "Question: capital of France?"}]
    episode = start_episode(SearchEnvironment(get_format("xml"), prompt, SearchTool(searcher), max_turns=3), tokenizer)
    generate = ScriptedTokens(tokenizer, turns)
    run_episodes([episode], generate, tokenizer, {tokenizer.eos_token_id})
    return episode, generate, searcher


def test_multi_turn_sequence_is_generated_tokens_plus_masked_observations(tokenizer):
    episode, generate, searcher = search_episode(
        tokenizer, ["<think>x</think><search>Paris</search>", "<answer>Paris</answer>"])
    assert searcher.queries == ["Paris"]
    first, second = generate.generated
    trained = [t for t, m in zip(episode.completion_ids, episode.env_mask, strict=True) if m == 1]
    assert trained == first + second  # exactly the sampled ids (the appended closing EOS carries no gradient)
    assert episode.completion_ids[-1] == tokenizer.eos_token_id and episode.env_mask[-1] == 0
    observation = episode.completion_ids[len(first): len(episode.completion_ids) - len(second) - 1]
    assert set(episode.env_mask[len(first): len(first) + len(observation)]) == {0}
    assert "<information>[Paris] Paris is the capital" in tokenizer.decode(observation)
    # turn 2 was generated from prompt + turn 1 + observation, token for token
    assert generate.inputs[1][0] == episode.prompt_ids + first + observation
    assert episode.environment.fields() == {"num_searches": 1, "num_parse_errors": 0, "answered": True,
                                            "num_turns": 2, "hit_step_limit": False, "queries": ["Paris"],
                                            "episode_answer": "Paris"}


def test_unparseable_turn_gets_an_error_observation_and_the_turn_limit_ends_the_episode(tokenizer):
    episode, generate, _ = search_episode(tokenizer, ["no tags here", "still nothing", "and again"])
    assert len(episode.turns) == 3
    assert episode.environment.fields()["num_parse_errors"] == 3  # the last turn's counts too (as in the agent runner)
    assert episode.environment.fields()["hit_step_limit"] is True
    assert "could not parse action" in tokenizer.decode(episode.completion_ids)
    assert episode.env_mask[-len(generate.generated[-1]):] == [1] * len(generate.generated[-1])


def test_cut_after_stop_keeps_a_prefix_ending_at_the_stop_string(tokenizer):
    ids = tokenizer.encode("<search>Paris</search> and then more text", add_special_tokens=False)
    kept = cut_after_stop(tokenizer, ids, ("</search>",))
    assert kept == ids[: len(kept)] and len(kept) < len(ids)
    assert tokenizer.decode(kept).rstrip().endswith("</search>")
    assert "</search>" not in tokenizer.decode(kept[:-1])
    assert cut_after_stop(tokenizer, ids, ("<nope>",)) == ids


def test_rollout_output_has_trl_keys_and_env_fields(tokenizer):
    episode, _, _ = search_episode(tokenizer, ["<answer>Paris</answer>"])
    output = rollout_output([episode], with_logprobs=False)
    assert {"prompt_ids", "completion_ids", "logprobs", "env_mask", "num_searches", "answered"} <= set(output)
    assert output["logprobs"] is None
    assert len(output["env_mask"][0]) == len(output["completion_ids"][0])


def test_shipped_grpo_configs_load_and_name_their_command():
    from trl import GRPOConfig

    from selfimprove.config import load_config
    from selfimprove.rewards import build_reward_funcs
    from selfimprove.train.config import trainer_arguments
    from selfimprove.train.grpo import GRPORunConfig

    paths = sorted((REPO / "configs" / "grpo").glob("*.yaml"))
    assert len(paths) >= 3
    for path in paths:
        first = path.read_text().splitlines()[0]
        assert first == f"# selfimprove train grpo configs/grpo/{path.name}"
        config = load_config(path, GRPORunConfig)
        assert build_reward_funcs(config.rewards)[0]
        trainer_arguments(GRPOConfig, {}, config.trainer)  # every trainer key is a GRPOConfig field


def test_grpo_arguments_reject_unknown_trainer_keys_and_zero_temperature():
    from selfimprove.errors import ConfigError
    from selfimprove.train.grpo import GRPORunConfig, grpo_arguments

    config = GRPORunConfig(task="countdown", output_dir="/tmp/x", trainer={"num_generation": 4})
    with pytest.raises(ConfigError, match="num_generations"):
        grpo_arguments(config)
    with pytest.raises(ConfigError, match="temperature"):
        grpo_arguments(config.model_copy(update={"trainer": {"temperature": 0.0}}))


def test_cli_registers_train_grpo_and_rrr():
    from typer.testing import CliRunner

    from selfimprove.cli import app

    result = CliRunner().invoke(app, ["train", "--help"])
    assert result.exit_code == 0 and "grpo" in result.output and "rrr" in result.output
    missing = CliRunner().invoke(app, ["train", "grpo", "/nonexistent.yaml"])
    assert missing.exit_code != 0


REWARD_KWARGS: list[set[str]] = []


def length_reward(completions, **kwargs):
    """A reward with variance on a random model: longer completions score higher (records the kwargs it got)."""
    REWARD_KWARGS.append(set(kwargs))
    return [float(len(str(c))) / 100 for c in completions]


def test_grpo_trains_on_countdown_with_tiny_model(tiny_model_dir, tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file

    from selfimprove.train import rollouts
    from selfimprove.train.grpo import GRPORunConfig, train_grpo

    built = []
    original = rollouts.single_turn_rollout
    monkeypatch.setattr(rollouts, "single_turn_rollout", lambda generation: built.append(generation) or original(generation))
    REWARD_KWARGS.clear()

    config = GRPORunConfig(
        task="countdown", data="generate:n=4,seed=0,min_nums=3,max_nums=3",
        model={"spec": str(tiny_model_dir), "lora": {"r": 4, "alpha": 8}},
        rewards=[{"name": "test_grpo:length_reward"}, {"name": "countdown_correct", "weight": 0.0}],
        output_dir=str(tmp_path / "run"),
        trainer={"max_steps": 2, "num_generations": 4, "per_device_train_batch_size": 4, "max_completion_length": 12,
                 "learning_rate": 5e-2, "gradient_checkpointing": False})
    summary = train_grpo(config)
    assert summary["global_step"] == 2 and summary["logged_steps"] == 2
    weights = load_file(str(Path(summary["adapter"]) / "adapter_model.safetensors"))
    assert any(torch.count_nonzero(w) and "lora_B" in name for name, w in weights.items())  # B starts at 0
    health = [json.loads(line) for line in Path(summary["health"]).read_text().splitlines()]
    assert len(health) == 2
    for key in ("reward", "reward_std", "frac_reward_zero_std", "completions/mean_length", "completions/clipped_ratio",
                "kl", "entropy", "rewards/length_reward/mean", "rewards/countdown_correct/std"):
        assert health[0][key] is not None, key
    # on CPU the default (rollout_generation: auto) samples through the cached decoder, and the rewards get
    # TRL's own kwargs: the dataset's columns, no episode facts (an `answered` column would zero answer rewards)
    assert built == ["cached"] and REWARD_KWARGS
    assert all({"target", "nums", "completion_ids"} <= keys and "answered" not in keys for keys in REWARD_KWARGS)


def test_agent_grpo_uses_rollout_func_with_masked_observations(tiny_model_dir, tmp_path, monkeypatch):
    from trl import GRPOTrainer

    from selfimprove.train import grpo as grpo_module

    seen = {}
    original = GRPOTrainer._generate_and_score_completions

    def spy(self, inputs):
        output = original(self, inputs)
        seen.setdefault("masks", []).append(output.get("tool_mask"))
        return output

    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", spy)
    examples = [Example(f"q{i}", "Which city is the capital of France?", "Paris",
                        {"context": [["Paris", ["Paris is the capital of France."]]]}) for i in range(2)]
    monkeypatch.setattr(grpo_module, "load_examples", lambda config: (_HotpotLike(), examples))
    config = grpo_module.GRPORunConfig(
        task="hotpotqa", model={"spec": str(tiny_model_dir), "lora": {"r": 4, "alpha": 8}},
        rewards=[{"name": "test_grpo:length_reward"}], agent={"max_turns": 2, "searcher": "bm25"},
        output_dir=str(tmp_path / "agent"),
        trainer={"max_steps": 1, "num_generations": 2, "per_device_train_batch_size": 2, "max_completion_length": 8,
                 "gradient_checkpointing": False})
    summary = grpo_module.train_grpo(config)
    assert summary["multi_turn"] and summary["global_step"] == 1
    assert seen["masks"][0] is not None and seen["masks"][0].shape[0] == 2
    health = json.loads(Path(summary["health"]).read_text().splitlines()[0])
    assert health["rollout/turns_mean"] >= 1


class _HotpotLike:
    name = "hotpotqa"

    def to_row(self, example):
        return {"example_id": example.id, "prompt": [{"role": "user", "content": example.question}],
                "answer": example.answer}
