"""The shared run loop of every trainer: data -> model + LoRA -> TRL trainer -> adapter, logs.

`run_training(kind, config)` is what `train sft` and `train dpo` call (and `train grpo` will):
a `TrainerKind` names the TRL trainer and config classes, the Araft defaults and the dataset
columns every row must have. Rows too long for `trainer.max_length` (prompt + longest answer,
rendered with the student's chat template) are dropped and counted rather than truncated,
because TRL truncates from the end and would cut off the very completion being learnt. Rows
whose prompt ends in an assistant prefill (the `xml` agent format) are rendered to text with the
student's template continuing that message, exactly as the agent prompts at inference. With
`resume`, training continues from the newest `checkpoint-N` in the output dir. Guarantees:
the adapter in `output_dir/adapter` is PEFT format and reloads with `PeftModel.from_pretrained`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfimprove.data.jsonl import iter_jsonl
from selfimprove.errors import ConfigError, DataError
from selfimprove.train.config import TrainConfig, common_trainer_defaults, trainer_arguments


@dataclass(frozen=True)
class TrainerKind:
    """How to build one TRL trainer: `load` returns (trainer class, config class)."""

    name: str
    load: Callable[[], tuple[type, type]]
    defaults: dict[str, Any]
    columns: tuple[str, ...]
    answer_columns: tuple[str, ...]


def read_rows(path: str | Path, columns: tuple[str, ...], limit: int | None = None) -> list[dict[str, Any]]:
    """Read training rows, checking each has the required message-list columns."""
    rows = []
    for line, row in iter_jsonl(path):
        for column in columns:
            value = row.get(column)
            if not isinstance(value, list) or not all(isinstance(m, dict) and "content" in m for m in value):
                raise DataError(path, "expected a list of chat messages", line=line, field=column)
        rows.append({column: row[column] for column in columns})
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise DataError(path, "no training rows")
    return rows


def rendered_length(tokenizer: Any, prompt: list[dict], answer: list[dict]) -> int:
    """Token count of prompt + answer rendered with the student's chat template."""
    return len(tokenizer.apply_chat_template(prompt + answer, tokenize=True, return_dict=False))


def drop_overlong(rows: list[dict[str, Any]], tokenizer: Any, max_length: int | None,
                  answer_columns: tuple[str, ...]) -> tuple[list[dict[str, Any]], int]:
    """Keep rows whose prompt + every answer fit in `max_length` tokens; returns (kept, dropped)."""
    if not max_length:
        return rows, 0
    kept = [row for row in rows
            if max(rendered_length(tokenizer, row["prompt"], row[c]) for c in answer_columns) <= max_length]
    return kept, len(rows) - len(kept)


def ends_with_prefill(prompt: list[dict[str, Any]]) -> bool:
    return bool(prompt) and prompt[-1].get("role") == "assistant"


def render_prefill_rows(rows: list[dict[str, Any]], tokenizer: Any,
                        answer_columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """Render rows to text when some prompt ends in an assistant prefill (the `xml` agent format).

    TRL's conversational path would open a NEW assistant turn after the prefill; here the prompt is
    rendered with the student's template continuing the prefill (as the agent does at inference),
    and each answer is the raw step text (TRL appends EOS). Rows without a prefill are unchanged.
    """
    if not any(ends_with_prefill(row["prompt"]) for row in rows):
        return rows
    from selfimprove.models.transformers_backend import render_prompt

    return [{"prompt": render_prompt(tokenizer, row["prompt"]),
             **{column: "".join(m["content"] for m in row[column]) for column in answer_columns}} for row in rows]


def build_trainer_args(config_class: type, kind: TrainerKind, config: TrainConfig) -> Any:
    from selfimprove.train.model_loading import use_bf16

    if config.trainer.get("bf16") and not use_bf16():
        raise ConfigError("trainer.bf16: bf16 needs a GPU that supports it; leave it unset (auto) on CPU")
    defaults = {**common_trainer_defaults(config.trainer), **kind.defaults, "bf16": use_bf16()}
    arguments = trainer_arguments(config_class, defaults, config.trainer)
    return config_class(output_dir=config.output_dir, seed=config.seed, **arguments)


def prepare_model(config: TrainConfig):
    """(model, tokenizer, peft_config): a fresh LoRA, or the given adapter made trainable."""
    from selfimprove.train.model_loading import attach_adapter, load_base_for_training, lora_config

    model, tokenizer = load_base_for_training(config.model)
    if config.model.adapter:
        return attach_adapter(model, config.model.adapter), tokenizer, None
    return model, tokenizer, lora_config(config.model.lora)


def run_training(kind: TrainerKind, config: TrainConfig, resume: bool = False, merge: bool | None = None,
                 console: Any = None) -> dict[str, Any]:
    """Train, save the adapter (and the merged model when asked); return the run summary."""
    from selfimprove.train.outputs import training_run

    with training_run(config, resume, f"train {kind.name}"):
        return _run_training(kind, config, resume, merge, console)


def _run_training(kind: TrainerKind, config: TrainConfig, resume: bool, merge: bool | None, console: Any) -> dict[str, Any]:
    from datasets import Dataset

    from selfimprove.train.outputs import last_checkpoint, merge_adapter, save_adapter, write_run_record

    checkpoint = last_checkpoint(config.output_dir) if resume else None
    trainer_class, config_class = kind.load()
    args = build_trainer_args(config_class, kind, config)
    rows = read_rows(config.data, kind.columns, config.max_samples)
    model, tokenizer, peft_config = prepare_model(config)
    rows, dropped = drop_overlong(rows, tokenizer, args.max_length, kind.answer_columns)
    if not rows:
        raise DataError(config.data, f"every row is longer than trainer.max_length={args.max_length} tokens")
    rows = render_prefill_rows(rows, tokenizer, kind.answer_columns)
    if console is not None:
        console.print(f"{kind.name}: {len(rows)} rows ({dropped} dropped as longer than {args.max_length} tokens)",
                      markup=False)
    trainer = trainer_class(model=model, args=args, train_dataset=Dataset.from_list(rows),
                            processing_class=tokenizer, peft_config=peft_config)
    trainer.train(resume_from_checkpoint=checkpoint)
    adapter = save_adapter(trainer.model, tokenizer, config.output_dir)
    should_merge = config.merge if merge is None else merge
    merged = merge_adapter(config.model.spec, adapter, config.output_dir) if should_merge else None
    extra = {"kind": kind.name, "rows": len(rows), "dropped_overlong": dropped, "adapter": str(adapter),
             "merged": str(merged) if merged else None, "resumed_from": checkpoint,
             "reference": "the starting adapter" if kind.name == "dpo" and config.model.adapter else None}
    return write_run_record(trainer, config.output_dir, extra)
