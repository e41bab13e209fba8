"""Per-token log-probs of GRPO completions with each group's prompt encoded once (the loss and reference passes).

TRL's `GRPOTrainer._get_per_token_logps_and_entropies` runs the whole `prompt + completion` of every row:
a group's `num_generations` rows share one prompt, so the prompt is encoded (forward and backward) once
per row, padding included. `shared_prompt_logps` encodes each distinct prompt once (unpadded, batch 1),
expands its KV states to the rows that share it (a view: the gradient of every row flows back into the
one prompt pass) and encodes only the completions on top; the log-probs and entropies come from TRL's
own LM-head kernel (`trl.kernels.ChunkedLogProbFunction`, the one its fused head uses), so the numbers
are the same up to float rounding (tested to 1e-5 against TRL's pass, gradients included). The saving is
the share of prompt tokens: RRR (a long failure context, a short reflection) and multi-turn prompts most.

`SharedPromptGRPOTrainer` uses it where it applies (one process without DeepSpeed/FSDP, whose wrappers
it would bypass; a plain text decoder without logit scaling/softcapping or MoE aux loss; no gradient
checkpointing, which drops KV states) and TRL's pass otherwise. Rows are grouped by their prompt's
tokens, so any row order works.
"""

from __future__ import annotations

from typing import Any

import torch
from trl import GRPOTrainer

from selfimprove.errors import ConfigError
from selfimprove.train.cached_generate import decoder_model
from selfimprove.train.config import LogprobPass

SCALED_HEAD_FIELDS = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier",
                      "logits_scaling")


def prompt_groups(input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_length: int) -> list[list[int]]:
    """Row indices grouped by their prompt's tokens (padding ignored), in first-seen order.

    >>> ids = torch.tensor([[0, 5, 6, 1], [5, 6, 7, 2], [0, 5, 6, 3]])
    >>> mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1], [0, 1, 1, 1]])
    >>> prompt_groups(ids, mask, 3)
    [[0, 2], [1]]
    """
    groups: dict[tuple[int, ...], list[int]] = {}
    for row in range(input_ids.size(0)):
        kept = input_ids[row, :prompt_length][attention_mask[row, :prompt_length].bool()]
        groups.setdefault(tuple(kept.tolist()), []).append(row)
    return list(groups.values())


def shared_prompt_applies(model: Any, gradient_checkpointing: bool) -> bool:
    """Whether `shared_prompt_logps` computes what TRL's fused head does for this (unwrapped) model."""
    from selfimprove.models.cached_decoding import supports_cached_decoding

    base = decoder_model(model)
    config = getattr(base, "config", None)
    if gradient_checkpointing or config is None or config.get_text_config() is not config:
        return False
    if any(getattr(config, name, None) is not None for name in SCALED_HEAD_FIELDS):
        return False
    if getattr(config, "output_router_logits", False):
        return False
    return supports_cached_decoding(base) and hasattr(base, base.base_model_prefix)


def shared_prompt_logps(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int,
                        temperature: float, compute_entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(log-probs, entropies or None), each `[rows, logits_to_keep]`, 0 where the completion is padding."""
    base = decoder_model(model)
    prompt_length = input_ids.size(1) - logits_to_keep
    parts_logps, parts_entropy, order = [], [], []
    for rows in prompt_groups(input_ids, attention_mask, prompt_length):
        group_logps, group_entropy = _group_logps(base, input_ids[rows], attention_mask[rows], prompt_length,
                                                  temperature, compute_entropy)
        parts_logps.append(group_logps)
        parts_entropy.append(group_entropy)
        order.extend(rows)
    back = torch.argsort(torch.tensor(order, device=input_ids.device))  # grouped order -> the rows' own order
    return torch.cat(parts_logps)[back], torch.cat(parts_entropy)[back] if compute_entropy else None


def _group_logps(base: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_length: int,
                 temperature: float, compute_entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One group: the prompt (unpadded, batch 1) once, then every row's completion on its expanded KV states."""
    from trl.kernels import ChunkedLogProbFunction
    from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE  # its fused head's chunk (trl pinned to 1.16)

    from selfimprove.models.cached_decoding import cache_argument

    backbone = getattr(base, base.base_model_prefix)
    rows = input_ids.size(0)
    prompt = input_ids[0, :prompt_length][attention_mask[0, :prompt_length].bool()].unsqueeze(0)
    completion, completion_mask = input_ids[:, prompt_length:], attention_mask[:, prompt_length:]
    encoded = backbone(input_ids=prompt, use_cache=True)
    cache = encoded.cache if "cache" in encoded else encoded.past_key_values
    for layer in cache.layers:
        layer.keys = layer.keys.expand(rows, -1, -1, -1)
        layer.values = layer.values.expand(rows, -1, -1, -1)
    length = prompt.size(1)
    mask = torch.cat([completion_mask.new_ones(rows, length), completion_mask], dim=1)
    positions = torch.arange(length, length + completion.size(1), device=input_ids.device).expand(rows, -1)
    hidden = backbone(input_ids=completion, attention_mask=mask, position_ids=positions, use_cache=True,
                      **{cache_argument(backbone): cache}).last_hidden_state
    # the last prompt position predicts the first completion token; completion position j predicts token j + 1
    hidden = torch.cat([encoded.last_hidden_state[:, -1:].expand(rows, -1, -1), hidden[:, :-1]], dim=1)
    valid = completion_mask.bool()
    if not valid.any():  # nothing to score: zeros still connected to the graph, as TRL's head returns them
        zeros = hidden[:, :, 0] * 0
        return zeros, zeros if compute_entropy else None
    head = base.get_output_embeddings()
    outputs = ("log_probs", "entropy") if compute_entropy else ("log_probs",)
    per_token = ChunkedLogProbFunction.apply(hidden[valid], head.weight, head.bias, completion[valid], temperature,
                                             _CHUNKED_LOGPROB_CHUNK_SIZE, None, 1.0, outputs)
    logps = per_token[0].new_zeros(valid.shape).masked_scatter(valid, per_token[0])
    entropy = per_token[1].new_zeros(valid.shape).masked_scatter(valid, per_token[1]) if compute_entropy else None
    return logps, entropy


class SharedPromptGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer whose log-prob passes encode each group's prompt once (see module doc).

    `logprob_pass` (set after construction): "trl" always runs TRL's pass, "shared_prompt" this one (an
    error where it does not apply), "auto" this one on CPU where it applies."""

    logprob_pass: LogprobPass = "auto"

    def uses_shared_prompt(self, model: Any, compute_aux_loss: bool, extra: dict[str, Any]) -> bool:
        if self.logprob_pass == "trl":
            return False
        sharded = self.accelerator.num_processes > 1 or self.is_deepspeed_enabled or self.is_fsdp_enabled
        applies = not compute_aux_loss and not sharded and all(value is None for value in extra.values()) \
            and shared_prompt_applies(model, bool(self.args.gradient_checkpointing))
        if self.logprob_pass == "shared_prompt" and not applies:
            raise ConfigError("logprob_pass: shared_prompt needs one process without DeepSpeed/FSDP, a plain text "
                              "decoder (no logit scaling or softcapping, no MoE aux loss) and gradient_checkpointing "
                              "off; use auto or trl")
        return applies and (self.logprob_pass == "shared_prompt" or self.accelerator.device.type == "cpu")

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None,
                                           compute_entropy=False, compute_aux_loss=False, **extra):
        unwrapped = self.accelerator.unwrap_model(model)
        if not self.uses_shared_prompt(unwrapped, compute_aux_loss, extra):
            return super()._get_per_token_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep,
                                                              batch_size, compute_entropy, compute_aux_loss, **extra)
        with self.accelerator.autocast():
            logps, entropies = shared_prompt_logps(unwrapped, input_ids, attention_mask, logits_to_keep,
                                                   self.temperature, compute_entropy)
        return logps, entropies, None
