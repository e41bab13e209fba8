"""`models/adapters.py`: one place that merges a PEFT adapter and loads a generator with it merged.

A LoRA adapter with non-zero weights is built on the tiny model and saved; the generator loaded
with it must hold exactly PEFT's own merge (and differ from the base), the training output
`merged/` must be that same merge, and bad adapters or specs fail before any weights load.
"""

from __future__ import annotations

import pytest
import torch

from selfimprove.errors import ModelSpecError, UserError
from selfimprove.models import SamplingParams
from selfimprove.models.adapters import LazyGenerator, load_generator_with_adapter, merge_into_base

WEIGHT = "model.layers.0.self_attn.q_proj.weight"


def load_base(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory):
    """A saved LoRA adapter on q/v projections whose B matrices are not zero (so merging changes weights)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                        task_type="CAUSAL_LM")
    out = tmp_path_factory.mktemp("adapter")
    get_peft_model(load_base(tiny_model_dir), config).save_pretrained(str(out))
    return out


def peft_merge(tiny_model_dir, adapter_dir) -> dict:
    from peft import PeftModel

    merged = PeftModel.from_pretrained(load_base(tiny_model_dir), str(adapter_dir)).merge_and_unload()
    return merged.state_dict()


def test_generator_with_adapter_holds_peft_merge(tiny_model_dir, adapter_dir):
    generator = load_generator_with_adapter(str(tiny_model_dir), adapter_dir)
    merged, expected = generator.model.state_dict(), peft_merge(tiny_model_dir, adapter_dir)
    base = load_base(tiny_model_dir).state_dict()
    assert not torch.allclose(merged[WEIGHT], base[WEIGHT])
    assert merged.keys() == expected.keys()
    assert all(torch.equal(merged[k].cpu(), expected[k]) for k in expected)
    assert not any("lora" in k for k in merged)
    assert generator.name == f"{tiny_model_dir}+{adapter_dir}"
    [[completion]] = generator.generate([[{"role": "user", "content": "2 + 2"}]], SamplingParams(max_tokens=2))
    assert len(completion.token_ids) <= 2


def test_without_adapter_the_plain_generator_is_loaded(tiny_model_dir):
    generator = load_generator_with_adapter(str(tiny_model_dir))
    base = load_base(tiny_model_dir).state_dict()
    assert generator.name == str(tiny_model_dir)
    assert torch.equal(generator.model.state_dict()[WEIGHT].cpu(), base[WEIGHT])


def test_merge_into_base_equals_peft_merge(tiny_model_dir, adapter_dir):
    merged = merge_into_base(load_base(tiny_model_dir), adapter_dir).state_dict()
    assert torch.equal(merged[WEIGHT], peft_merge(tiny_model_dir, adapter_dir)[WEIGHT])


def test_training_output_merged_is_the_same_merge(tiny_model_dir, adapter_dir, tmp_path):
    from selfimprove.train.outputs import merge_adapter

    target = merge_adapter(str(tiny_model_dir), adapter_dir, tmp_path)
    assert target == tmp_path / "merged"
    assert torch.equal(load_base(target).state_dict()[WEIGHT], peft_merge(tiny_model_dir, adapter_dir)[WEIGHT])


def test_bad_adapters_and_specs_fail_before_loading(tiny_model_dir, tmp_path):
    with pytest.raises(UserError, match="not a PEFT adapter directory"):
        load_generator_with_adapter(str(tiny_model_dir), tmp_path)
    with pytest.raises(UserError, match="not a PEFT adapter directory"):
        LazyGenerator(str(tiny_model_dir), tmp_path)
    (tmp_path / "adapter_config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ModelSpecError, match="needs a local transformers model"):
        load_generator_with_adapter("openai:gpt-4o-mini@http://127.0.0.1:9/v1", tmp_path)


def test_lazy_generator_loads_on_first_generate_only(tiny_model_dir, adapter_dir, monkeypatch):
    from selfimprove.models import adapters

    loaded = []

    def load(spec, adapter=None):
        loaded.append((spec, adapter))
        return load_generator_with_adapter(spec, adapter)

    monkeypatch.setattr(adapters, "load_generator_with_adapter", load)
    lazy = LazyGenerator(str(tiny_model_dir), adapter_dir)
    assert loaded == [] and lazy.name == f"{tiny_model_dir}+{adapter_dir}"
    params = SamplingParams(max_tokens=1)
    lazy.generate([[{"role": "user", "content": "hi"}]], params)
    lazy.generate([[{"role": "user", "content": "hi"}]], params)
    assert loaded == [(str(tiny_model_dir), adapter_dir)]
