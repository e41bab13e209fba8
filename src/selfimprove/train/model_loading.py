"""Load a selfimprove model spec for training: base model, tokenizer, LoRA config, QLoRA.

`load_base_for_training` resolves the spec (embedded alias -> prepared checkpoint), picks the
dtype (bfloat16 only on a GPU that supports it) and, when asked, 4-bit nf4 quantization
(QLoRA; needs CUDA and bitsandbytes, otherwise a BackendUnavailable error says what is
missing). `attach_adapter` loads an existing PEFT adapter as the trainable "default" adapter.
`lora_config` builds the PEFT LoraConfig from our settings. Remote specs (openai:) and vllm:
cannot be trained and fail with a ConfigError before anything is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfimprove.errors import BackendUnavailable, ConfigError, ModelSpecError
from selfimprove.models.spec import parse_model_spec, resolve_local_path
from selfimprove.train.config import LoraSettings, ModelSettings


def local_model_path(spec: str) -> str:
    """The local path (or hub id) that transformers loads for a trainable spec."""
    parsed = parse_model_spec(spec)
    if parsed.kind != "transformers":
        raise ConfigError(f"model.spec '{spec}': only local/hub/embedded models can be trained, not {parsed.kind}:")
    return resolve_local_path(parsed.model)


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def use_bf16() -> bool:
    """bf16 mixed precision only on a GPU that supports it."""
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def wants_4bit(quantization: str) -> bool:
    """Resolve "none" / "4bit" / "auto" to a yes/no; "4bit" without CUDA+bitsandbytes is an error."""
    if quantization == "none":
        return False
    from transformers.utils import is_bitsandbytes_available

    missing = [name for name, ok in (("a CUDA GPU", cuda_available()),
                                     ("bitsandbytes", is_bitsandbytes_available())) if not ok]
    if not missing:
        return True
    if quantization == "auto":
        return False
    raise BackendUnavailable(
        f"model.quantization=4bit (QLoRA) needs {' and '.join(missing)}: pip install 'selfimprove[gpu]' on a "
        "CUDA machine, or set model.quantization=none (or auto) to train LoRA in full precision"
    )


def torch_dtype(name: str):
    import torch

    if name == "auto":
        return torch.bfloat16 if use_bf16() else torch.float32
    return getattr(torch, name)


def quantization_config(dtype: Any):
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=dtype)


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise ConfigError(f"model '{path}' has no chat template; training data is rendered with the student's template")
    return tokenizer


def load_base_for_training(settings: ModelSettings, quantize: bool | None = None):
    """Return (model, tokenizer) ready for PEFT; `quantize` overrides settings.quantization."""
    from transformers import AutoModelForCausalLM

    path = local_model_path(settings.spec)
    quantize = wants_4bit(settings.quantization) if quantize is None else quantize
    dtype = torch_dtype(settings.dtype)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if quantize:
        kwargs.update(quantization_config=quantization_config(dtype), device_map={"": 0})
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelSpecError(f"cannot load model '{settings.spec}': {str(exc).strip().splitlines()[0]}") from None
    if quantize:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    return model, load_tokenizer(path)


def lora_config(settings: LoraSettings):
    from peft import LoraConfig

    return LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                      target_modules=settings.target_modules, bias="none", task_type="CAUSAL_LM")


def attach_adapter(model: Any, adapter_dir: str | Path):
    """Load a saved PEFT adapter onto `model` as the trainable "default" adapter."""
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ConfigError(f"model.adapter: {adapter_dir} is not a PEFT adapter dir (no adapter_config.json)")
    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)
