"""Local generation with transformers: batched, KV-cached and reused, stop strings per sequence.

Prompts are rendered with the model's own chat template. A conversation whose last message is
from the assistant is continued (not closed), so agents can prefill a turn. Prompts are sorted
by length and generated in chunks of `batch_size`; results come back in input order.
`token_ids` are the generated tokens up to and including the one that ended the completion (EOS
or the token that completed a stop string); `text` excludes the stop string and special tokens.

For plain full-attention decoders (Llama, Qwen, SmolLM, Mistral without sliding windows...),
generation runs through `models/cached_decoding.py`: the KV states of earlier prompts and
completions are kept (within `kv_cache_gib`) and reused when a new prompt extends them, so an
agent's next turn encodes only its new tokens, and finished rows leave the batch.
`prefix_cache=False` turns the reuse off (every prompt is encoded whole, as a plain
`model.generate` call would). Other architectures use `model.generate` with left padding.
With greedy decoding, results are deterministic for a fixed batch composition; padding can
change float rounding, so a prompt generated alone may differ in rare cases.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from selfimprove.errors import ModelSpecError
from selfimprove.models.generator import Completion, Conversation, SamplingParams, cut_at_stop


def pick_device(device: str | None = None) -> str:
    import torch

    if device and device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model_and_tokenizer(name_or_path: str, device: str | None = None, dtype: str | None = None):
    """Load a causal LM and its tokenizer (left padding, pad token set) for generation or training."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = pick_device(device)
    torch_dtype = _resolve_dtype(dtype, device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        require_chat_template(tokenizer, name_or_path)  # refused before the weights are loaded
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=torch_dtype)
    except (OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelSpecError(f"cannot load model '{name_or_path}': {first_line}") from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device)
    model.eval()
    return model, tokenizer


def _resolve_dtype(dtype: str | None, device: str):
    import torch

    if dtype in (None, "auto"):
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return getattr(torch, dtype)
    except AttributeError:
        raise ModelSpecError(f"unknown dtype '{dtype}' (use float32, bfloat16 or float16)") from None


def require_chat_template(tokenizer: Any, name: str) -> None:
    """Prompts are rendered with the model's chat template: a tokenizer without one is a ModelSpecError."""
    if not getattr(tokenizer, "chat_template", None):
        raise ModelSpecError(f"model '{name}' has no chat template (no `chat_template` in its tokenizer files) and "
                             "prompts are rendered with it: use a chat/instruct model, or put the template in the "
                             "model dir as chat_template.jinja (training: trainer.chat_template_path)")


def render_prompt(tokenizer: Any, conversation: Conversation) -> str:
    """Render a conversation with the tokenizer's chat template, ready for the assistant to write."""
    require_chat_template(tokenizer, getattr(tokenizer, "name_or_path", "") or "<tokenizer>")
    continuing = bool(conversation) and conversation[-1].get("role") == "assistant"
    return tokenizer.apply_chat_template(
        conversation,
        tokenize=False,
        add_generation_prompt=not continuing,
        continue_final_message=continuing,
    )


def _cached_decoder(model: Any, tokenizer: Any, kv_cache_gib: float, reuse: bool):
    """The cached decoder for `model`, or None where it does not apply (then `model.generate` is used)."""
    try:
        from selfimprove.models.cached_decoding import CachedDecoder, supports_cached_decoding
    except ImportError:  # a transformers without the cache-layer API (before 5.0)
        return None
    return CachedDecoder(model, tokenizer, kv_cache_gib, reuse=reuse) if supports_cached_decoding(model) else None


class TransformersGenerator:
    """A Generator over a local transformers model (CPU or GPU)."""

    def __init__(self, name_or_path: str | Path, device: str | None = None, dtype: str | None = None,
                 batch_size: int = 32, name: str | None = None, model: Any = None, tokenizer: Any = None,
                 prefix_cache: bool = True, kv_cache_gib: float = 2.0):
        if model is None or tokenizer is None:
            model, tokenizer = load_model_and_tokenizer(str(name_or_path), device, dtype)
        self.model, self.tokenizer = model, tokenizer
        self.name = name or str(name_or_path)
        self.batch_size = batch_size
        self.decoder = _cached_decoder(model, tokenizer, kv_cache_gib, prefix_cache)
        self.stats = {"calls": 0, "prompt_tokens": 0, "generated_tokens": 0, "seconds": 0.0, "reused_prefix_tokens": 0}

    def generate(self, conversations: list[Conversation], params: SamplingParams) -> list[list[Completion]]:
        import torch

        start = time.perf_counter()
        if params.seed is not None:
            torch.manual_seed(params.seed)
        prompts = [render_prompt(self.tokenizer, conv) for conv in conversations]
        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        # Each prompt appears n times, so greedy and sampled decoding batch the same way.
        rows = [i for i in range(len(encoded)) for _ in range(params.n)]
        order = sorted(range(len(rows)), key=lambda r: -len(encoded[rows[r]]))
        flat: list[Completion | None] = [None] * len(rows)
        for offset in range(0, len(order), self.batch_size):
            chunk = order[offset : offset + self.batch_size]
            chunk_ids = [encoded[rows[r]] for r in chunk]
            for row, completion in zip(chunk, self._generate_chunk(chunk_ids, params), strict=True):
                flat[row] = completion
        results = [flat[i * params.n : (i + 1) * params.n] for i in range(len(encoded))]
        self.stats["calls"] += 1
        self.stats["seconds"] += time.perf_counter() - start
        return results

    def clear_kv_cache(self) -> None:
        """Forget every stored KV state (needed only after changing the model without touching its weights)."""
        if self.decoder is not None:
            self.decoder.clear()

    def _generate_chunk(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[Completion]:
        self.stats["prompt_tokens"] += sum(len(p) for p in prompt_ids)
        if self.decoder is None:
            generated = self._model_generate(prompt_ids, params)
        else:
            reused_before = self.decoder.stats["reused_prompt_tokens"]
            generated = [ids for ids, _ in self.decoder.generate(prompt_ids, params)]
            self.stats["reused_prefix_tokens"] += self.decoder.stats["reused_prompt_tokens"] - reused_before
        return [self._to_completion(p, g, params) for p, g in zip(prompt_ids, generated, strict=True)]

    def _model_generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[list[int]]:
        """`model.generate` with left padding: the path for architectures the cached decoder does not cover."""
        import torch

        batch = self.tokenizer.pad({"input_ids": prompt_ids}, return_tensors="pt", padding=True)
        batch = {k: v.to(self.model.device) for k, v in batch.items()}
        with torch.inference_mode():
            output = self.model.generate(**batch, **self._generate_kwargs(params))
        width = batch["input_ids"].shape[1]
        return [sequence[width:] for sequence in output.tolist()]

    def _generate_kwargs(self, params: SamplingParams) -> dict[str, Any]:
        sampling = params.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            "do_sample": sampling,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.tokenizer.eos_token_id,
            "temperature": params.temperature if sampling else None,
            "top_p": params.top_p if sampling else None,
            "top_k": (params.top_k or None) if sampling else None,
            "repetition_penalty": params.repetition_penalty,
        }
        if params.stop:
            kwargs["stop_strings"] = list(params.stop)
            kwargs["tokenizer"] = self.tokenizer
        return kwargs

    def _to_completion(self, prompt: list[int], generated: list[int], params: SamplingParams) -> Completion:
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        while generated and generated[-1] == pad and pad != eos:
            generated = generated[:-1]  # padding after a sequence stopped early
        cut = generated.index(eos) if eos in generated else len(generated)
        body = generated[:cut]
        text, stop = cut_at_stop(self.tokenizer.decode(body, skip_special_tokens=True), params.stop)
        if stop is not None:
            reason, token_ids = "stop", body
        elif cut < len(generated) and generated[cut] == eos:
            reason, token_ids = "stop", body + [eos]
        else:
            reason, token_ids = "length", body
        self.stats["generated_tokens"] += len(token_ids)
        return Completion(text=text, finish_reason=reason, stop=stop, prompt_ids=list(prompt),
                          token_ids=token_ids, num_prompt_tokens=len(prompt), num_tokens=len(token_ids))
