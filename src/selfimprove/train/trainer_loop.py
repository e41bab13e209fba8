"""The shared run loop of every trainer: data -> model + LoRA -> TRL trainer -> adapter, logs.

`run_training(kind, config)` is what `train sft` and `train dpo` call (and `train grpo` will):
a `TrainerKind` names the TRL trainer and config classes, the Araft defaults and the data
formats it accepts: TRL's own (SFT: conversational or string prompt/completion, `messages`,
ShareGPT `conversations`, `text`; DPO: prompt/chosen/rejected, conversational or strings, or
an implicit prompt in chosen/rejected, split off with TRL's `extract_prompt`). The format is
read off the first row and every row is checked against it (DataError naming file, line, field);
rows reach TRL unchanged apart from that, with only the format's columns kept. Data comes from
any source `tasks.records` reads (files, several files, globs, .gz, csv, parquet, hf:...). Rows too long for `trainer.max_length` (prompt + longest answer,
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
from typing import Any

from selfimprove.errors import ConfigError, DataError
from selfimprove.train.config import TrainConfig, common_trainer_defaults, trainer_arguments


@dataclass(frozen=True)
class DataFormat:
    """One of TRL's dataset formats: its columns, and whether they hold chat messages or strings."""

    name: str
    columns: tuple[str, ...]
    conversational: bool

    @property
    def answer_columns(self) -> tuple[str, ...]:
        """The columns trained on (the whole row for language modeling)."""
        return tuple(c for c in self.columns if c != "prompt")


SFT_FORMATS = (DataFormat("conversational prompt-completion", ("prompt", "completion"), True),
               DataFormat("prompt-completion", ("prompt", "completion"), False),
               DataFormat("conversational language modeling", ("messages",), True),
               DataFormat("language modeling", ("text",), False))
DPO_FORMATS = (DataFormat("conversational preference", ("prompt", "chosen", "rejected"), True),
               DataFormat("preference", ("prompt", "chosen", "rejected"), False),
               DataFormat("conversational implicit-prompt preference", ("chosen", "rejected"), True),
               DataFormat("implicit-prompt preference", ("chosen", "rejected"), False))


@dataclass(frozen=True)
class TrainerKind:
    """How to build one TRL trainer: `load` returns (trainer class, config class)."""

    name: str
    load: Callable[[], tuple[type, type]]
    defaults: dict[str, Any]
    columns: tuple[str, ...]
    answer_columns: tuple[str, ...]
    formats: tuple[DataFormat, ...] = ()


def read_rows(path: Any, columns: tuple[str, ...], limit: int | None = None) -> list[dict[str, Any]]:
    """Conversational rows with exactly `columns` (the older interface of `read_training_rows`)."""
    formats = tuple(f for f in (*SFT_FORMATS, *DPO_FORMATS) if f.columns == tuple(columns) and f.conversational)
    return read_training_rows(path, formats or (DataFormat("rows", tuple(columns), True),), limit)[0]


def read_training_rows(source: Any, formats: tuple[DataFormat, ...], limit: int | None = None,
                       text_field: str = "text") -> tuple[list[dict[str, Any]], DataFormat]:
    """Rows of any data source in one of `formats` (read off the first row); every row checked against it."""
    from selfimprove.tasks.records import read_located, source_name

    formats = tuple(_with_text_field(f, text_field) for f in formats)
    rows: list[dict[str, Any]] = []
    chosen: DataFormat | None = None
    for where, line, record in read_located(source):
        record = _as_chatml(record)
        chosen = chosen or detect_format(record, formats, where, line)
        rows.append(checked_row(record, chosen, where, line))
        if limit is not None and len(rows) >= limit:
            break
    if not rows or chosen is None:
        raise DataError(source_name(source), "no training rows")
    return rows, chosen


def _with_text_field(fmt: DataFormat, text_field: str) -> DataFormat:
    return DataFormat(fmt.name, (text_field,), False) if fmt.columns == ("text",) else fmt


def _as_chatml(record: dict[str, Any]) -> dict[str, Any]:
    """ShareGPT `conversations` ({from, value}) as `messages` ({role, content}), as TRL converts them."""
    if "conversations" not in record or "messages" in record:
        return record
    from trl.data_utils import maybe_convert_to_chatml

    return maybe_convert_to_chatml(dict(record))


def detect_format(record: dict[str, Any], formats: tuple[DataFormat, ...], where: str, line: int | None) -> DataFormat:
    """The first format whose columns the row has, of the kind (messages or strings) its first column holds."""
    for fmt in formats:
        if all(c in record for c in fmt.columns) and isinstance(record[fmt.columns[0]], list) == fmt.conversational:
            return fmt
    best = max(formats, key=lambda f: sum(c in record for c in f.columns))
    missing = next((c for c in best.columns if c not in record), best.columns[0])
    accepted = "; ".join(sorted({"+".join(f.columns) for f in formats}))
    raise DataError(where, f"missing field (rows need the columns of one format: {accepted})", line=line,
                    field=missing)


def checked_row(record: dict[str, Any], fmt: DataFormat, where: str, line: int | None) -> dict[str, Any]:
    """The row's format columns, each checked to hold chat messages or a string as the format says."""
    for column in fmt.columns:
        if column not in record:
            raise DataError(where, f"missing field ({fmt.name} format, from the first row)", line=line, field=column)
        value = record[column]
        if fmt.conversational and not is_message_list(value):
            raise DataError(where, f"expected a list of chat messages ({fmt.name} format)", line=line, field=column)
        if not fmt.conversational and not isinstance(value, str):
            raise DataError(where, f"expected a string ({fmt.name} format), got {type(value).__name__}",
                            line=line, field=column)
    return {column: record[column] for column in fmt.columns}


def is_message_list(value: Any) -> bool:
    """A non-empty list of {role, content} dicts (the shape TRL's `is_conversational` looks for)."""
    return (isinstance(value, list) and bool(value)
            and all(isinstance(m, dict) and "role" in m and "content" in m for m in value))


def implicit_prompts_split(rows: list[dict[str, Any]], fmt: DataFormat) -> tuple[list[dict[str, Any]], DataFormat]:
    """Preference rows without `prompt`: the shared prefix split off with TRL's own `extract_prompt`."""
    if "prompt" in fmt.columns or "chosen" not in fmt.columns:
        return rows, fmt
    from trl.data_utils import extract_prompt

    explicit = DataFormat(fmt.name, ("prompt", *fmt.columns), fmt.conversational)
    return [extract_prompt(dict(row)) for row in rows], explicit


def rendered_length(tokenizer: Any, prompt: list[dict], answer: list[dict]) -> int:
    """Token count of prompt + answer rendered with the student's chat template."""
    return len(tokenizer.apply_chat_template(prompt + answer, tokenize=True, return_dict=False))


def row_length(tokenizer: Any, row: dict[str, Any], column: str) -> int:
    """Tokens of prompt + `column` (or `column` alone without a prompt), chat-rendered when they are messages."""
    prompt = row.get("prompt", [] if isinstance(row[column], list) else "")
    if isinstance(row[column], list):
        return rendered_length(tokenizer, prompt, row[column])
    return len(tokenizer(prompt + row[column], add_special_tokens=False)["input_ids"])


def drop_overlong(rows: list[dict[str, Any]], tokenizer: Any, max_length: int | None,
                  answer_columns: tuple[str, ...]) -> tuple[list[dict[str, Any]], int]:
    """Keep rows whose prompt + every answer fit in `max_length` tokens; returns (kept, dropped)."""
    if not max_length:
        return rows, 0
    kept = [row for row in rows if max(row_length(tokenizer, row, c) for c in answer_columns) <= max_length]
    return kept, len(rows) - len(kept)


def ends_with_prefill(prompt: Any) -> bool:
    return isinstance(prompt, list) and bool(prompt) and isinstance(prompt[-1], dict) \
        and prompt[-1].get("role") == "assistant"


def render_prefill_rows(rows: list[dict[str, Any]], tokenizer: Any,
                        answer_columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """Render rows to text when some prompt ends in an assistant prefill (the `xml` agent format).

    TRL's conversational path would open a NEW assistant turn after the prefill; here the prompt is
    rendered with the student's template continuing the prefill (as the agent does at inference),
    and each answer is the raw step text (TRL appends EOS). Rows without a prefill are unchanged.
    """
    if not any(ends_with_prefill(row.get("prompt")) for row in rows):
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

    model, tokenizer = load_base_for_training(config.model, chat_template_path=config.trainer.get("chat_template_path"))
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

    from selfimprove.tasks.records import source_name
    from selfimprove.train.outputs import last_checkpoint, merge_adapter, save_adapter, write_run_record

    checkpoint = last_checkpoint(config.output_dir) if resume else None
    trainer_class, config_class = kind.load()
    args = build_trainer_args(config_class, kind, config)
    formats = kind.formats or (DataFormat("rows", kind.columns, True),)
    rows, fmt = read_training_rows(config.data, formats, config.limit,
                                   getattr(args, "dataset_text_field", "text"))
    rows, fmt = implicit_prompts_split(rows, fmt)
    model, tokenizer, peft_config = prepare_model(config)
    rows, dropped = drop_overlong(rows, tokenizer, args.max_length, fmt.answer_columns)
    if not rows:
        raise DataError(source_name(config.data), f"every row is longer than trainer.max_length={args.max_length} tokens")
    if fmt.conversational and "prompt" in fmt.columns:
        rows = render_prefill_rows(rows, tokenizer, fmt.answer_columns)
    if console is not None:
        console.print(f"{kind.name}: {len(rows)} rows, {fmt.name} format ({dropped} dropped as longer than "
                      f"{args.max_length} tokens)", markup=False)
    trainer = trainer_class(model=model, args=args, train_dataset=Dataset.from_list(rows),
                            processing_class=tokenizer, peft_config=peft_config)
    trainer.train(resume_from_checkpoint=checkpoint)
    adapter = save_adapter(trainer.model, tokenizer, config.output_dir)
    should_merge = config.merge if merge is None else merge
    merged = merge_adapter(config.model.spec, adapter, config.output_dir,
                           config.trainer.get("chat_template_path")) if should_merge else None
    extra = {"kind": kind.name, "rows": len(rows), "data_format": fmt.name, "dropped_overlong": dropped, "adapter": str(adapter),
             "merged": str(merged) if merged else None, "resumed_from": checkpoint,
             "reference": "the starting adapter" if kind.name == "dpo" and config.model.adapter else None}
    return write_run_record(trainer, config.output_dir, extra)
