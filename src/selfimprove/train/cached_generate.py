"""RL rollouts through the project's cached decoder: a `GenerateFn` for `train.rollouts` over a TRL trainer.

`cached_generate(trainer)` returns `generate(sequences, max_tokens, stops) -> (completion_ids, None)` that
samples with the trainer's current policy and its sampling settings, like TRL's own transformers
generation (`trainer_generate`), but through `models.cached_decoding.CachedDecoder`:
- the `num_generations` copies of a prompt share its KV states (encoded once), and each episode's
  states are kept across turns, so a turn encodes only its new tokens (the environment's text);
  finished rows leave the batch; a row ends at the trainer's EOS ids, or one token after one of its
  turn's stop strings (the driver cuts the turn there; that next token can be the closing EOS it trains);
- the model is unwrapped as TRL unwraps it for generation (`unwrap_model_for_generation`:
  accelerator wrappers off, gradient checkpointing off while generating). A LoRA policy (plain
  LoRA on linear layers) generates through a MERGED COPY (`MergedPolicy`): a plain copy of the
  model with `W + scaling * B @ A` in each adapted layer, refreshed (one small matmul per layer)
  whenever a weight of the policy changed; it costs one more copy of the base weights in memory
  (~540 MB for the embedded model in fp32) and drops LoRA dropout while sampling (as vLLM does).
  `merged=False`, DoRA, or other adapter kinds generate through the PEFT model's base model with
  the LoRA layers active and unmerged: every adapted layer then costs two extra small matmuls per
  token, about the cost of the bare model again at small batches on the embedded model;
- sampling: `trainer.generation_config` (temperature, top_p, top_k, repetition_penalty, as TRL
  built it from `GRPOConfig`); budget: the turn's `max_tokens`, else the generation config's
  `max_new_tokens` (TRL's, from `max_completion_length` or `generation_kwargs`);
- reproducible: each call draws one seed from torch's global generator (seeded by the trainer
  from `args.seed`) and samples from a generator of its own with it, so a run's draws depend only
  on the seed and the calls, not on how many tokens an earlier call generated;
- no log-probs are returned: on the transformers path TRL recomputes them with the policy;
- the KV store lives as long as the trainer (one decoder per trainer and model): it is emptied
  when a step's rollouts are done (`release_states`, so the loss phase does not hold it) and
  when any weight changes in place (the optimizer step bumps the parameters' version counters,
  LoRA weights included) and a new decoder is made when the model or the active adapter changes.

Not guaranteed: the same samples as TRL's path for the same seed (the draws differ; the sampling
distribution is the same), bit-identical logits (padding changes float rounding). Not for vLLM,
multi-process or GPU runs: `use_cached_generation(trainer)` says when this path applies.
"""

from __future__ import annotations

import weakref
from typing import Any

from selfimprove.models.generator import SamplingParams

HONOURED_GENERATION_KWARGS = {"temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens", "do_sample"}
_DECODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class MergedPolicy:
    """A plain copy of a PEFT LoRA model with the active adapters merged in, kept equal to the policy."""

    def __init__(self, peft_model: Any):
        import copy

        import torch

        self.source = peft_model
        self.adapted = [(name, module) for name, module in peft_model.get_base_model().named_modules()
                        if _lora_linear(module)]
        with torch.no_grad():
            self.model = copy.deepcopy(peft_model).unload().eval()  # the base weights, LoRA layers removed
        self.model.requires_grad_(False)
        self.state: tuple | None = None
        self.refresh()

    @staticmethod
    def supports(model: Any) -> bool:
        """A PEFT model whose adapted modules are all plain LoRA linear layers (no DoRA)."""
        from peft.tuners.lora import LoraLayer

        if not callable(getattr(model, "get_base_model", None)):
            return False
        layers = [m for m in model.get_base_model().modules() if isinstance(m, LoraLayer)]
        return bool(layers) and all(_lora_linear(m) for m in layers)

    def refresh(self) -> Any:
        """The merged model, its adapted weights recomputed if any weight of the policy changed (or adapters were
        disabled or enabled) since."""
        import torch

        from selfimprove.models.cached_decoding import weights_version

        state = (weights_version(self.source), tuple(bool(m.disable_adapters) for _, m in self.adapted))
        if state != self.state:
            with torch.no_grad():
                for name, module in self.adapted:
                    merged = module.base_layer.weight.detach().clone()
                    for adapter in () if module.disable_adapters else module.active_adapters:
                        merged += module.get_delta_weight(adapter)
                    self.model.get_submodule(name).weight.copy_(merged)
            self.state = state
        return self.model


def _lora_linear(module: Any) -> bool:
    from peft.tuners.lora import Linear

    return isinstance(module, Linear) and not any(module.use_dora.get(a) for a in module.active_adapters)


def decoder_model(model: Any) -> Any:
    """The plain transformers model that generates: a PEFT model's base model (its LoRA layers stay active)."""
    get_base_model = getattr(model, "get_base_model", None)
    return get_base_model() if callable(get_base_model) else model


def use_cached_generation(trainer: Any) -> bool:
    """True where `cached_generate` applies: CPU, no vLLM, TRL's plain transformers generation with settings the
    decoder honours (no min_p, no other `generation_kwargs`), and a plain full-attention text decoder (no VLM)."""
    from selfimprove.models.cached_decoding import supports_cached_decoding

    if getattr(trainer, "use_vllm", False) or getattr(trainer, "use_transformers_continuous_batching", False):
        return False
    if getattr(trainer, "_is_vlm", False):  # images and processor fields: TRL's own generation
        return False
    accelerator = getattr(trainer, "accelerator", None)
    config = getattr(trainer, "generation_config", None)
    if accelerator is None or config is None or accelerator.device.type != "cpu" or accelerator.num_processes > 1:
        return False
    if getattr(config, "min_p", None) is not None or getattr(config, "num_beams", 1) not in (None, 1):
        return False
    if set(getattr(trainer.args, "generation_kwargs", None) or {}) - HONOURED_GENERATION_KWARGS:
        return False
    return supports_cached_decoding(decoder_model(accelerator.unwrap_model(trainer.model)))


def trainer_sampling(trainer: Any, max_tokens: int | None) -> SamplingParams:
    """The trainer's sampling settings (its `generation_config`, as TRL generates with it) for one call."""
    config = trainer.generation_config
    sampling = bool(getattr(config, "do_sample", True))
    budget = max_tokens if max_tokens is not None else (getattr(config, "max_new_tokens", None)
                                                         or trainer.max_completion_length)
    return SamplingParams(max_tokens=budget, temperature=float(config.temperature or 1.0) if sampling else 0.0,
                          top_p=float(config.top_p if config.top_p is not None else 1.0),
                          top_k=int(config.top_k) if config.top_k else None,
                          repetition_penalty=config.repetition_penalty)


def _active_adapters(model: Any) -> tuple[str, ...]:
    """A PEFT model's active adapter names (empty for a plain model)."""
    active = getattr(model, "active_adapters", None) if callable(getattr(model, "get_base_model", None)) else None
    active = active() if callable(active) else active
    return tuple([active] if isinstance(active, str) else active or ())


def _decoder(trainer: Any, unwrapped: Any, merged: bool) -> Any:
    """The trainer's decoder for the unwrapped model (a new one, with an empty store, when the model or its
    active adapter changed): over a merged copy (`MergedPolicy`, refreshed here) or the model itself."""
    from selfimprove.models.cached_decoding import CachedDecoder

    key = (id(unwrapped), _active_adapters(unwrapped), merged and MergedPolicy.supports(unwrapped))
    held = _DECODERS.get(trainer)
    if held is None or held[0] != key or held[2] is not unwrapped:
        policy = MergedPolicy(unwrapped) if key[2] else None
        model = policy.model if policy is not None else decoder_model(unwrapped)
        tokenizer = trainer.processing_class
        decoder = CachedDecoder(model, getattr(tokenizer, "tokenizer", tokenizer))
        decoder.eos_ids = {int(i) for i in (getattr(trainer, "eos_token_ids", None) or decoder.eos_ids)}
        held = (key, decoder, unwrapped, policy)
        _DECODERS[trainer] = held
    if held[3] is not None:
        held[3].refresh()
    return held[1]


def release_states(trainer: Any) -> None:
    """Empty the trainer's KV store (if it has a decoder): called when a step's rollouts are done, so the
    states (up to the decoder's budget, ~2 GiB) are not held through the loss's forward and backward.
    The next step's weights differ anyway, so nothing reusable is lost; the merged copy is kept."""
    held = _DECODERS.get(trainer)
    if held is not None:
        held[1].clear()


def _call_generator() -> Any:
    """A generator seeded with one draw from torch's global generator (which the trainer seeded)."""
    import torch

    return torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,)).item()))


def cached_generate(trainer: Any, merged: bool = True):
    """A `train.rollouts.GenerateFn` over the trainer's current policy, through the cached decoder (a LoRA
    policy through a merged copy unless `merged=False`)."""
    import torch
    from trl.models.utils import unwrap_model_for_generation

    def generate(sequences: list[list[int]], max_tokens: int | None, stops: list[tuple[str, ...]] | None = None):
        if not sequences:
            return [], None
        params, generator = trainer_sampling(trainer, max_tokens), _call_generator()
        with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                         gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
                                         gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs
                                         ) as unwrapped, torch.no_grad():
            decoder = _decoder(trainer, unwrapped, merged)
            ids = decoder.generate_tokens(sequences, params, generator, stops)
        return ids, None

    return generate
