"""The private TRL, transformers and torch APIs the project relies on, pinned for the installed versions.

pyproject.toml admits only the trl and transformers minors these tests ran on; when a new minor
is allowed, this file is what has to pass on it. What is pinned, and who uses it:
- TRL `GRPOTrainer._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations)`
  -> `(completion_ids, logprobs)`: one turn of generation with the trainer's own backend inside a
  `rollout_func` (`train/rollouts.py`, `rrr/rollout.py`), bounded by `generation_config.max_new_tokens`
  / `generation_kwargs` / `max_completion_length`, which RRR's retry budget swaps.
- TRL `GRPOTrainer._tokenize_prompts(prompts)` -> `(prompt_ids, images, multimodal_fields)`: the prompt ids
  TRL generates from, used by the single-turn rollout through the cached decoder (`train/rollouts.py`).
- TRL `GRPOTrainer._log_metric(name, value)`: rollout health numbers logged from a `rollout_func`
  reach `log_history` averaged per step; the `rollout_func` output contract (`env_mask` masks,
  extra columns reach the rewards) and `eos_token_ids`.
- transformers `DynamicLayer` subclassed by `models/cached_decoding.py` (`__init__()`,
  `keys`/`values`/`is_initialized`/`device`, `update`, `get_seq_length`, `get_mask_sizes`,
  `lazy_initialization`, `is_croppable`), `Cache(layers=...)`, `DynamicCache(config=).layers`,
  `config._attn_implementation`, `forward(logits_to_keep=, cache=)`.
- torch `Tensor._version` (bumped by in-place writes): `CachedDecoder` drops its KV store when weights change.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version
from pathlib import Path

import pytest
import torch

MAX_COMPLETION = 4
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
PINNED = ("trl", "transformers")


def positional_names(function) -> list[str]:
    return list(inspect.signature(function).parameters)


# ---------------------------------------------------------------- the declared ranges


def declared(name: str):
    """The version specifier pyproject.toml declares for `name` in the core dependencies."""
    from packaging.requirements import Requirement

    tomllib = pytest.importorskip("tomllib")
    requirements = [Requirement(r) for r in tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["dependencies"]]
    return next(r.specifier for r in requirements if r.name == name)


@pytest.mark.parametrize("name", PINNED)
def test_declared_range_is_the_tested_minor(name):
    """The installed (tested) version is admitted; the next minor and the previous one are not."""
    from packaging.version import Version

    installed = Version(version(name))
    major, minor = installed.major, installed.minor
    specifier = declared(name)
    assert specifier.contains(installed)
    assert not specifier.contains(f"{major}.{minor + 1}.0") and not specifier.contains(f"{major + 1}.0.0")
    assert minor == 0 or not specifier.contains(f"{major}.{minor - 1}.0")


# ---------------------------------------------------------------- TRL


@pytest.fixture(scope="module")
def grpo_parts(tiny_model_dir, tmp_path_factory):
    """(GRPOConfig args, model, tokenizer, dataset) for a one-step CPU run on the tiny model."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    args = GRPOConfig(output_dir=str(tmp_path_factory.mktemp("grpo")), max_steps=1, per_device_train_batch_size=2,
                      num_generations=2, max_completion_length=MAX_COMPLETION, logging_steps=1, report_to="none",
                      use_cpu=True, save_strategy="no", seed=0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = [{"prompt": [{"role": "user", "content": "2 + 2"}], "label": "four"}]
    return args, AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer, Dataset.from_list(rows)


def zero_reward(completions, **kwargs):
    return [0.0] * len(completions)


@pytest.fixture(scope="module")
def trainer(grpo_parts):
    from trl import GRPOTrainer

    args, model, tokenizer, dataset = grpo_parts
    return GRPOTrainer(model=model, reward_funcs=[zero_reward], args=args, train_dataset=dataset,
                       processing_class=tokenizer)


def test_generate_single_turn_signature():
    from trl import GRPOTrainer

    names = positional_names(GRPOTrainer._generate_single_turn)
    assert names[:5] == ["self", "prompt_ids", "images", "multimodal_fields", "num_generations"]
    rest = list(inspect.signature(GRPOTrainer._generate_single_turn).parameters.values())[5:]
    assert all(p.default is not inspect.Parameter.empty for p in rest)  # the project passes exactly four


def test_generate_single_turn_returns_token_ids_per_prompt_within_the_budget(trainer):
    prompts = [[1, 5, 9, 12], [3, 4]]
    torch.manual_seed(0)
    completion_ids, logprobs = trainer._generate_single_turn(prompts, None, {}, 1)
    assert logprobs is None  # transformers path: no sampling logprobs
    assert len(completion_ids) == len(prompts)
    assert all(isinstance(t, int) for ids in completion_ids for t in ids)
    assert all(1 <= len(ids) <= MAX_COMPLETION for ids in completion_ids)


def test_the_budget_slots_rrr_swaps_bound_a_generation(trainer):
    assert trainer.max_completion_length == trainer.generation_config.max_new_tokens == MAX_COMPLETION
    assert trainer.generation_kwargs["max_new_tokens"] == MAX_COMPLETION
    assert trainer.use_vllm is False and not hasattr(trainer, "vllm_generation")
    saved = trainer.generation_config.max_new_tokens
    trainer.max_completion_length = trainer.generation_config.max_new_tokens = 1
    trainer.generation_kwargs["max_new_tokens"] = 1
    try:
        completion_ids, _ = trainer._generate_single_turn([[1, 5, 9, 12]] * 3, None, {}, 1)
    finally:
        trainer.max_completion_length = trainer.generation_config.max_new_tokens = saved
        trainer.generation_kwargs["max_new_tokens"] = saved
    assert [len(ids) for ids in completion_ids] == [1, 1, 1]


def test_trainer_attributes_a_rollout_func_reads(trainer, grpo_parts):
    tokenizer = grpo_parts[2]
    assert trainer.processing_class is tokenizer
    assert tokenizer.eos_token_id in trainer.eos_token_ids
    assert "rollout_func" in inspect.signature(type(trainer).__init__).parameters


def test_tokenize_prompts_renders_conversations_as_trl_generates_from_them(trainer):
    """`_tokenize_prompts(prompts) -> (prompt_ids, images, multimodal_fields)`: what the single-turn rollout
    (`train.rollouts.single_turn_rollout`) hands the cached decoder, so it samples from TRL's own prompt ids."""
    from trl import GRPOTrainer

    assert positional_names(GRPOTrainer._tokenize_prompts) == ["self", "prompts"]
    prompts = [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "a longer question"}]]
    prompt_ids, images, fields = trainer._tokenize_prompts(prompts)
    tokenizer = trainer.processing_class
    expected = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
                for p in prompts]
    assert [list(ids) for ids in prompt_ids] == [list(ids) for ids in expected]
    assert images is None and not fields


def test_log_metric_signature():
    from trl import GRPOTrainer

    assert positional_names(GRPOTrainer._log_metric) == ["self", "name", "value"]


def test_a_rollout_func_generates_masks_and_logs_through_the_trainer(grpo_parts):
    """One real step with a rollout_func shaped like the project's: its metric, mask and columns arrive."""
    from trl import GRPOTrainer

    args, model, tokenizer, dataset = grpo_parts
    seen: dict = {}

    def rollout_func(prompts, trainer):
        prompt_ids = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=False)
                      for p in prompts]
        completion_ids, _ = trainer._generate_single_turn(prompt_ids, None, {}, 1)
        completion_ids = [list(ids) + [7, 8] for ids in completion_ids]  # 2 "environment" tokens each
        trainer._log_metric("rollout/probe", 2.0)
        trainer._log_metric("rollout/probe", 4.0)
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None,
                "env_mask": [[1] * (len(ids) - 2) + [0, 0] for ids in completion_ids],
                "episode_fact": [len(ids) for ids in completion_ids]}

    def reward(completions, episode_fact, label, **kwargs):
        seen.update(episode_fact=episode_fact, label=label)
        return [0.0] * len(completions)

    trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=args, train_dataset=dataset,
                          processing_class=tokenizer, rollout_func=rollout_func)
    trainer.train()
    logged = next(row for row in trainer.state.log_history if "rollout/probe" in row)
    assert logged["rollout/probe"] == pytest.approx(3.0)
    assert len(seen["episode_fact"]) == 2 and seen["label"] == ["four", "four"]
    # env_mask became the tool mask: the 2 environment tokens per completion are not counted as generated
    assert logged["completions/mean_length"] == pytest.approx(sum(seen["episode_fact"]) / 2 - 2)


# ---------------------------------------------------------------- transformers


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


def test_cache_classes_are_exported_and_dynamic_cache_is_built_of_dynamic_layers(model):
    from transformers import Cache, DynamicCache, DynamicLayer

    layers = DynamicCache(config=model.config).layers
    assert len(layers) == model.config.num_hidden_layers
    assert all(type(layer) is DynamicLayer for layer in layers)
    assert "layers" in inspect.signature(Cache.__init__).parameters


def test_dynamic_layer_has_what_the_buffer_layer_overrides():
    from transformers import DynamicLayer

    layer = DynamicLayer()  # the subclass calls super().__init__() with no arguments
    assert layer.is_initialized is False and layer.is_croppable is True and layer.is_sliding is False
    assert positional_names(DynamicLayer.update)[:3] == ["self", "key_states", "value_states"]
    assert positional_names(DynamicLayer.lazy_initialization)[:3] == ["self", "key_states", "value_states"]
    assert positional_names(DynamicLayer.get_mask_sizes) == ["self", "query_length"]
    assert positional_names(DynamicLayer.get_seq_length) == ["self"]
    keys = torch.zeros(1, 1, 3, 2)
    layer.update(keys, keys)
    assert (layer.keys.shape, layer.values.shape, layer.device) == (keys.shape, keys.shape, keys.device)
    assert layer.get_seq_length() == 3 and layer.get_mask_sizes(2) == (5, 0)


def test_model_config_and_forward_take_what_the_cached_decoder_passes(model):
    assert model.config._attn_implementation in ("sdpa", "eager")
    parameters = inspect.signature(model.forward).parameters
    assert "logits_to_keep" in parameters and "cache" in parameters  # `past_key_values` is deprecated (gone in 5.40)
    text = model.config.get_text_config(decoder=True)
    assert text.num_hidden_layers == 2 and text.num_key_value_heads == 1


def test_a_cache_of_buffer_layers_decodes_like_a_dynamic_cache(model):
    """`Cache(layers=[_BufferLayer...])` (views into preallocated buffers) gives DynamicCache's logits."""
    from transformers import Cache, DynamicCache

    from selfimprove.models.cached_decoding import _BufferLayer, supports_cached_decoding

    assert supports_cached_decoding(model)
    ids, step = torch.tensor([[1, 5, 9, 12, 3]]), torch.tensor([[4]])
    with torch.inference_mode():
        reference = DynamicCache(config=model.config)
        model(input_ids=ids, cache=reference, use_cache=True)
        expected = model(input_ids=step, cache=reference, use_cache=True).logits
        batch, heads, _, head_dim = reference.layers[0].keys.shape
        layers = [_BufferLayer(torch.zeros(batch, heads, 8, head_dim), torch.zeros(batch, heads, 8, head_dim), 0)
                  for _ in reference.layers]
        cache = Cache(layers=layers)
        model(input_ids=ids, cache=cache, use_cache=True)
        assert cache.get_seq_length() == 5
        got = model(input_ids=step, cache=cache, use_cache=True, logits_to_keep=1).logits
    assert torch.allclose(got[:, -1], expected[:, -1], atol=1e-5)


# ---------------------------------------------------------------- torch


def test_in_place_writes_bump_a_parameters_version(model):
    parameter = next(model.parameters())
    before = parameter._version
    with torch.no_grad():
        parameter.add_(0.0)
    assert parameter._version > before
