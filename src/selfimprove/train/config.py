"""Config models for `selfimprove train sft|dpo` (and the later `train grpo`).

A training YAML has a `model:` block (spec, optional starting adapter, LoRA and quantization
settings), data and output paths, and a `trainer:` block handed unchanged to TRL's own config
class (`SFTConfig`, `DPOConfig`) on top of the Araft defaults below. Unknown keys are errors,
in our blocks by pydantic and in `trainer:` against the TRL dataclass's fields. It does not
check that values make sense for TRL (TRL does that when the config is built). The default
tracker is TensorBoard (event files in `output_dir/runs/`) unless `trainer.report_to` is set.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Literal

from pydantic import Field

from selfimprove.config import StrictModel, check_field_types, looks_like_float
from selfimprove.errors import ConfigError

# Araft (seed 001) hyperparameters: the documented GPU defaults.
ARAFT_SFT_TRAINER = {
    "learning_rate": 2e-4,
    "lr_scheduler_type": "linear",
    "warmup_steps": 0.1,
    "weight_decay": 0.01,
    "per_device_train_batch_size": 1,
    "gradient_accumulation_steps": 4,
    "num_train_epochs": 1,
}
ARAFT_DPO_TRAINER = {
    "beta": 0.1,
    "learning_rate": 5e-5,
    "lr_scheduler_type": "cosine",
    "per_device_train_batch_size": 1,
    "gradient_accumulation_steps": 4,
    "num_train_epochs": 1,
}
COMMON_TRAINER = {"logging_steps": 1, "save_strategy": "steps", "save_steps": 50, "save_total_limit": 2}
DEFAULT_REPORT_TO = ["tensorboard"]


def tensorboard_available() -> bool:
    """True when a TensorBoard event writer (tensorboardX, a core dependency, or tensorboard) is installed."""
    import importlib.util

    return any(importlib.util.find_spec(name) is not None for name in ("tensorboardX", "tensorboard"))


def common_trainer_defaults(user: dict[str, Any]) -> dict[str, Any]:
    """COMMON_TRAINER plus the default tracker: TensorBoard event files under `output_dir/runs/`.

    A `report_to` in the user's `trainer:` block wins as given (including "none"), and then nothing
    is checked. Without a TensorBoard writer installed the default falls back to "none" with a notice.
    """
    if "report_to" in user:
        return dict(COMMON_TRAINER)
    if tensorboard_available():
        return {**COMMON_TRAINER, "report_to": list(DEFAULT_REPORT_TO)}
    logging.getLogger(__name__).warning(
        "no TensorBoard logs: neither tensorboardX nor tensorboard is installed (pip install tensorboard)")
    return {**COMMON_TRAINER, "report_to": "none"}


class LoraSettings(StrictModel):
    """LoRA adapter settings (Araft: r=16, alpha=32, dropout 0.05, all linear layers)."""

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


# how GRPO computes its per-token log-probs: TRL's pass, each group's prompt once (train.shared_prompt), or
# "auto" (the shared-prompt pass on CPU where it applies)
LogprobPass = Literal["trl", "shared_prompt", "auto"]


class ModelSettings(StrictModel):
    """Which model to train and how to load it.

    spec: a selfimprove model spec (embedded alias, hub id or local path; not openai:/vllm:).
    adapter: a PEFT adapter dir to start from (DPO: the SFT adapter, which is also the reference).
    quantization: "none"; "4bit" (QLoRA nf4, needs CUDA + bitsandbytes, else BackendUnavailable);
    "auto" (4bit when both exist, otherwise none).
    dtype: "auto" = bfloat16 on a GPU that supports it, float32 otherwise.
    """

    spec: str = "smollm2-135m"
    adapter: str | None = None
    quantization: Literal["none", "4bit", "auto"] = "none"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    lora: LoraSettings = Field(default_factory=LoraSettings)


class TrainConfig(StrictModel):
    """One training run: model, data, output dir, trainer.

    data: rows from `selfimprove convert`, or any data in one of TRL's formats (see docs/training.md):
    a file (.jsonl/.json/.parquet/.csv, optionally .gz), several (a list, commas or a glob), or
    "hf:ORG/NAME[:CONFIG[:SPLIT]]".
    """

    model: ModelSettings = Field(default_factory=ModelSettings)
    data: str | list[str]
    output_dir: str
    limit: int | None = Field(None, ge=1)
    seed: int = 0
    merge: bool = False
    trainer: dict[str, Any] = Field(default_factory=dict)


# Trainer keys applied when the model is loaded (model_loading.py), for every trainer: TRL 1.16 has
# `chat_template_path` in SFTConfig only; GRPO and DPO runs accept it here with SFT's meaning.
LOAD_TIME_KEYS = ("chat_template_path",)


def trainer_arguments(config_class: type, defaults: dict[str, Any], user: dict[str, Any],
                      source: str = "trainer") -> dict[str, Any]:
    """Merge defaults with the user's `trainer:` block; unknown TRL field names are ConfigErrors.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Demo:
    ...     learning_rate: float = 1.0
    ...     beta: float = 0.1
    >>> trainer_arguments(Demo, {"learning_rate": 2e-4}, {"beta": 0.2})
    {'learning_rate': 0.0002, 'beta': 0.2}
    >>> trainer_arguments(Demo, {}, {"learnin_rate": 1})
    Traceback (most recent call last):
    ...
    selfimprove.errors.ConfigError: trainer.learnin_rate: not a Demo field (did you mean learning_rate?)
    """
    import difflib

    fields = {f.name for f in dataclasses.fields(config_class)}
    names = fields | set(LOAD_TIME_KEYS)
    for key in user:
        if key not in names:
            close = difflib.get_close_matches(key, sorted(names), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{source}.{key}: not a {config_class.__name__} field{hint}")
    check_field_types(config_class, user, source)
    return {key: value for key, value in {**defaults, **user}.items() if key in fields}


def _did_you_mean(key: str, names: list[str], own_options: tuple[str, ...]) -> str:
    """The closest trainer field or command option (shown as the command spells it), if any."""
    import difflib

    spelled = {name: name for name in names} | {option.replace("-", "_"): option for option in own_options}
    close = difflib.get_close_matches(key, sorted(spelled), n=1)
    return f" (did you mean --{spelled[close[0]]}?)" if close else ""


def _split_flag(token: str) -> tuple[str, str | None]:
    """`--learning_rate=1e-5` -> ("learning_rate", "1e-5"); `--learning-rate` -> ("learning_rate", None)."""
    name, sep, value = token[2:].partition("=")
    return name.replace("-", "_"), (value if sep else None)


def _is_flag(token: str) -> bool:
    return token.startswith("--") and len(token) > 2


def trainer_flags(tokens: list[str], config_class: type | None = None,
                  own_options: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """TRL-style `--key value` flags as `trainer.key=value` overrides; returns (overrides, positionals).

    A flag without a value (the end, or another flag next) is `true`, as TRL's parser reads
    `--bf16`. Names are checked against `config_class` (a TRL config dataclass) with a did-you-mean
    that also knows the command's own options; words that follow no flag are returned as positionals.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Demo:
    ...     learning_rate: float = 1.0
    ...     bf16: bool = False
    >>> trainer_flags(["run.yaml", "--learning-rate", "1e-5", "--bf16"], Demo)
    (['trainer.learning_rate=1e-5', 'trainer.bf16=true'], ['run.yaml'])
    >>> trainer_flags(["--learnin_rate=1"], Demo)
    Traceback (most recent call last):
    ...
    selfimprove.errors.ConfigError: --learnin_rate: not an option of this command nor a Demo field (did you mean --learning_rate?)
    """
    names = sorted({f.name for f in dataclasses.fields(config_class)} | set(LOAD_TIME_KEYS)) if config_class else []
    overrides: list[str] = []
    positionals: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if not _is_flag(token):
            if token.startswith("-") and not looks_like_float(token):
                raise ConfigError(f"{token}: unknown option (trainer flags are spelt --name value)")
            positionals.append(token)
            continue
        key, value = _split_flag(token)
        if key not in names:
            owner = config_class.__name__ if config_class else "trainer config"
            raise ConfigError(f"--{key}: not an option of this command nor a {owner} field"
                              + _did_you_mean(key, names, own_options))
        if value is None:
            nxt = tokens[index] if index < len(tokens) else None
            value = "true" if nxt is None or _is_flag(nxt) else nxt
            index += nxt is not None and value is nxt
        overrides.append(f"trainer.{key}={value}")
    return overrides, positionals

