"""Load a selfimprove model spec for training: base model, tokenizer, LoRA config, QLoRA.

`load_base_for_training` resolves the spec (embedded alias -> prepared checkpoint), picks the
dtype (bfloat16 only on a GPU that supports it) and, when asked, 4-bit nf4 quantization
(QLoRA; needs CUDA and bitsandbytes, otherwise a BackendUnavailable error says what is
missing). `attach_adapter` loads an existing PEFT adapter as the trainable "default" adapter.
`lora_config` builds the PEFT LoraConfig from our settings. Remote specs (openai:) and vllm:
cannot be trained and fail with a ConfigError before anything is loaded. A tokenizer without a
chat template is refused (one line naming the model and the fix) unless `trainer.chat_template_path`
gives one, which is applied with TRL's own semantics (a .jinja/.j2 file, or a tokenizer to clone).
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


def no_template_message(name: str) -> str:
    """The one line that says a model has no chat template and how to give it one."""
    return (f"model '{name}' has no chat template (no `chat_template` in its tokenizer files) and training renders "
            "rows with it: set trainer.chat_template_path to a .jinja/.j2 template file or to a tokenizer dir/hub id "
            "whose template to use (--chat_template_path PATH), or train a chat/instruct model")


def is_template_file(template_path: str) -> bool:
    """TRL's rule: an existing file ending in .jinja or .j2 is read as the template itself."""
    return Path(template_path).is_file() and template_path.endswith((".jinja", ".j2"))


def check_template_path(template_path: str) -> None:
    """Refuse a `chat_template_path` TRL could not use, before any weights are loaded."""
    where = Path(template_path)
    if is_template_file(template_path) or where.is_dir():
        return
    if where.is_file():
        raise ConfigError(f"trainer.chat_template_path '{template_path}': a template file must end in .jinja or .j2")
    if where.is_absolute() or template_path.startswith(".") or template_path.count("/") != 1:
        raise ConfigError(f"trainer.chat_template_path '{template_path}': no such file or tokenizer dir")


def load_tokenizer(path: str, name: str | None = None, chat_template_path: str | None = None):
    """The tokenizer (pad token set); without a chat template it is refused unless one is given."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if chat_template_path:
        check_template_path(chat_template_path)
    elif not tokenizer.chat_template:
        raise ConfigError(no_template_message(name or path))
    return tokenizer


def apply_chat_template_path(model: Any, tokenizer: Any, template_path: str):
    """Set the chat template as TRL's SFTTrainer does for `chat_template_path`; returns (model, tokenizer).

    A .jinja/.j2 file is read as the template (special tokens it names must already exist); a
    tokenizer dir or hub id is cloned with TRL's `clone_chat_template` (its template, added tokens
    and EOS; the embeddings are resized to fit).
    """
    if is_template_file(template_path):
        tokenizer.chat_template = Path(template_path).read_text(encoding="utf-8")
        return model, tokenizer
    from trl.chat_template_utils import clone_chat_template

    try:
        model, tokenizer, _ = clone_chat_template(model, tokenizer, template_path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"trainer.chat_template_path '{template_path}': "
                          f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
    if not tokenizer.chat_template:
        raise ConfigError(f"trainer.chat_template_path '{template_path}': that tokenizer has no chat template either")
    return model, tokenizer


def load_base_for_training(settings: ModelSettings, quantize: bool | None = None,
                           chat_template_path: str | None = None):
    """Return (model, tokenizer) ready for PEFT; `quantize` overrides settings.quantization.

    `chat_template_path` is TRL's `trainer.chat_template_path` (see `apply_chat_template_path`);
    without it a model whose tokenizer has no chat template is refused before its weights load.
    """
    from transformers import AutoModelForCausalLM

    path = local_model_path(settings.spec)
    quantize = wants_4bit(settings.quantization) if quantize is None else quantize
    dtype = torch_dtype(settings.dtype)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if quantize:
        kwargs.update(quantization_config=quantization_config(dtype), device_map={"": 0})
    try:
        tokenizer = load_tokenizer(path, settings.spec, chat_template_path)  # refused before the weights load
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelSpecError(f"cannot load model '{settings.spec}': {str(exc).strip().splitlines()[0]}") from None
    if quantize:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    if chat_template_path:
        return apply_chat_template_path(model, tokenizer, chat_template_path)
    return model, tokenizer


def lora_config(settings: LoraSettings):
    from peft import LoraConfig

    return LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                      target_modules=settings.target_modules, bias="none", task_type="CAUSAL_LM")


def attach_adapter(model: Any, adapter_dir: str | Path):
    """Load a saved PEFT adapter onto `model` as the trainable "default" adapter."""
    from peft import PeftModel

    from selfimprove.models.adapters import ADAPTER_CONFIG

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / ADAPTER_CONFIG).is_file():
        raise ConfigError(f"model.adapter: {adapter_dir} is not a PEFT adapter dir (no {ADAPTER_CONFIG})")
    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)
