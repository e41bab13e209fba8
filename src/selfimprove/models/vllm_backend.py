"""A Generator over vLLM in-process (GPU only; the `[vllm]` extra).

Without CUDA or without the vllm package, construction raises BackendUnavailable with the fix.
Conversations go through `LLM.chat` (the model's chat template); token ids are returned so
trainers can use exactly the generated tokens.
"""

from __future__ import annotations

from typing import Any

from selfimprove.errors import BackendUnavailable
from selfimprove.models.generator import Completion, Conversation, SamplingParams, optional_sampling


def require_vllm() -> Any:
    """Import vllm, or explain what is missing."""
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable("the vllm backend needs a CUDA GPU; none is visible (use a transformers model spec on CPU)")
    try:
        import vllm
    except ImportError:
        raise BackendUnavailable("the vllm backend needs the vllm package: pip install 'selfimprove[vllm]'") from None
    return vllm


class VLLMGenerator:
    """In-process vLLM engine."""

    def __init__(self, name_or_path: str, gpu_memory_utilization: float = 0.5, max_model_len: int | None = 4096,
                 dtype: str = "auto", name: str | None = None, **engine_kwargs: Any):
        vllm = require_vllm()
        self.name = name or f"vllm:{name_or_path}"
        self.llm = vllm.LLM(model=name_or_path, gpu_memory_utilization=gpu_memory_utilization,
                            max_model_len=max_model_len, dtype=dtype, **engine_kwargs)
        self._vllm = vllm

    def generate(self, conversations: list[Conversation], params: SamplingParams) -> list[list[Completion]]:
        sampling = self._vllm.SamplingParams(n=params.n, temperature=params.temperature, top_p=params.top_p,
                                             max_tokens=params.max_tokens, stop=list(params.stop) or None,
                                             seed=params.seed, **optional_sampling(params))
        continuing = [bool(c) and c[-1].get("role") == "assistant" for c in conversations]
        outputs = self.llm.chat(conversations, sampling, use_tqdm=False,
                                add_generation_prompt=not any(continuing), continue_final_message=any(continuing))
        return [[_to_completion(out, choice) for choice in out.outputs] for out in outputs]


def _to_completion(request_output: Any, choice: Any) -> Completion:
    prompt_ids = list(request_output.prompt_token_ids or [])
    token_ids = list(choice.token_ids)
    stop = choice.stop_reason if isinstance(choice.stop_reason, str) else None
    reason = "length" if choice.finish_reason == "length" else "stop"
    return Completion(text=choice.text, finish_reason=reason, stop=stop, prompt_ids=prompt_ids,
                      token_ids=token_ids, num_prompt_tokens=len(prompt_ids), num_tokens=len(token_ids))
