"""Models with a PEFT adapter: merge an adapter into its base, load a generator with one merged in.

- `merge_into_base(model, adapter_dir)`: base weights + the adapter's delta, as a plain
  transformers model (PEFT's `merge_and_unload`); training outputs save it as `merged/`.
- `load_generator_with_adapter(spec, adapter)`: a Generator for a model spec; with an adapter,
  the local transformers model with that adapter merged in (what eval, distill and rrr evaluate).
- `load_model_with_adapter(spec, adapter)`: (model, tokenizer) with the adapter merged in (what
  the likelihood check scores with).
- `LazyGenerator(spec, adapter)`: the same, loaded on the first `generate` call, so a fully
  resumed stage never loads the model.

Only local transformers specs (an embedded alias, a hub id or a path) take an adapter: an
`openai:`/`vllm:`/`scripted:` spec with one is a `ModelSpecError`. A directory without
`adapter_config.json` is a `UserError` before any weights load. Merging is exact up to float
rounding in the model's dtype; the merged model is not quantized.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfimprove.errors import ModelSpecError, UserError

ADAPTER_CONFIG = "adapter_config.json"


def check_adapter(adapter: str | Path) -> None:
    """Fail before any work when `adapter` is not a PEFT adapter directory."""
    if not (Path(adapter) / ADAPTER_CONFIG).is_file():
        raise UserError(f"--adapter {adapter}: not a PEFT adapter directory (no {ADAPTER_CONFIG})")


def merge_into_base(model: Any, adapter_dir: str | Path) -> Any:
    """`model` with the PEFT adapter in `adapter_dir` merged into its weights (a plain transformers model)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()


def adapter_name(spec: str, adapter: str | Path | None) -> str:
    """The generator name of a spec with an optional adapter: `spec` or `spec+adapter`."""
    return spec if adapter is None else f"{spec}+{adapter}"


def load_generator_with_adapter(spec: str, adapter: str | Path | None = None):
    """A Generator for `spec`, with the PEFT adapter in `adapter` merged in when given."""
    from selfimprove.models.spec import load_generator, parse_model_spec, resolve_local_path

    if adapter is None:
        return load_generator(spec)
    from selfimprove.models.transformers_backend import TransformersGenerator

    model, tokenizer = load_model_with_adapter(spec, adapter)
    path = resolve_local_path(parse_model_spec(spec).model)
    return TransformersGenerator(path, model=model, tokenizer=tokenizer, name=adapter_name(spec, adapter))


def load_model_with_adapter(spec: str, adapter: str | Path | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) of a local transformers spec in eval mode, the adapter merged in when given."""
    from selfimprove.models.spec import parse_model_spec, resolve_local_path
    from selfimprove.models.transformers_backend import load_model_and_tokenizer

    if adapter is not None:
        check_adapter(adapter)
    parsed = parse_model_spec(spec)
    if parsed.kind != "transformers":
        raise ModelSpecError(f"model '{spec}': needs a local transformers model (an adapter, log-probs), "
                             f"not a {parsed.kind} spec")
    model, tokenizer = load_model_and_tokenizer(resolve_local_path(parsed.model))
    return (merge_into_base(model, adapter) if adapter is not None else model).eval(), tokenizer


class LazyGenerator:
    """Loads the model (with its adapter merged) on the first `generate` call, so a fully resumed stage never loads it."""

    def __init__(self, spec: str, adapter: str | Path | None = None):
        from selfimprove.models.spec import parse_model_spec

        parse_model_spec(spec)  # a bad spec or a missing path fails here, before any progress is shown
        if adapter is not None:
            check_adapter(adapter)
        self.spec, self.adapter, self._generator = spec, adapter, None
        self.name = adapter_name(spec, adapter)

    def generate(self, conversations: list, params: Any) -> list:
        if self._generator is None:
            self._generator = load_generator_with_adapter(self.spec, self.adapter)
        return self._generator.generate(conversations, params)
