"""Model specs: the one string users pass as `--model`, resolved to a Generator.

Forms:
- an embedded alias: `smollm2-135m` (the default; converted once from the bundled GGUF);
- a Hugging Face model id or a local checkpoint path: `HuggingFaceTB/SmolLM2-360M-Instruct`, `./ckpt`;
- `openai:MODEL@BASE_URL` for any OpenAI-compatible server (key from $OPENAI_API_KEY, or the
  variable named by `api_key_env`);
- `vllm:MODEL` where MODEL is any of the first two forms (GPU only);
- `scripted:package.module:function` replies with `function(conversation, sample_index) -> str`
  (a ScriptedGenerator: for testing pipelines and recipes end to end without a model); the
  module must be allowed like any user "module:attr" name (`--allow-import`,
  $SELFIMPROVE_ALLOW_IMPORT; never the standard library: `selfimprove.registry`).
A local path that does not exist, or a malformed spec, fails before anything is loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfimprove.errors import ModelSpecError
from selfimprove.models.embedded import EMBEDDED_MODELS, prepare_embedded_model
from selfimprove.models.generator import Generator

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec. `kind` is "transformers", "openai", "vllm" or "scripted"."""

    kind: str
    model: str
    base_url: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


def parse_model_spec(spec: str) -> ModelSpec:
    """Parse a model spec string.

    >>> parse_model_spec("openai:gpt-4o-mini@http://localhost:8000/v1")
    ModelSpec(kind='openai', model='gpt-4o-mini', base_url='http://localhost:8000/v1', options={})
    >>> parse_model_spec("smollm2-135m").kind
    'transformers'
    """
    spec = (spec or "").strip()
    if not spec:
        raise ModelSpecError("empty model spec")
    if spec.startswith("openai:"):
        model, sep, url = spec[len("openai:") :].rpartition("@")
        if not sep or not model or not url.startswith(("http://", "https://")):
            raise ModelSpecError(f"bad model spec '{spec}': expected openai:MODEL@http://HOST:PORT/v1")
        return ModelSpec("openai", model, base_url=url)
    if spec.startswith("scripted:"):
        target = spec[len("scripted:") :]
        if ":" not in target:
            raise ModelSpecError(f"bad model spec '{spec}': expected scripted:package.module:function")
        return ModelSpec("scripted", target)
    if spec.startswith("vllm:"):
        inner = parse_model_spec(spec[len("vllm:") :])
        if inner.kind != "transformers":
            raise ModelSpecError(f"bad model spec '{spec}': vllm: takes an embedded alias, hub id or path")
        return ModelSpec("vllm", inner.model)
    _check_local_or_hub(spec)
    return ModelSpec("transformers", spec)


def _check_local_or_hub(spec: str) -> None:
    if spec in EMBEDDED_MODELS or Path(spec).exists() or _HUB_ID.match(spec):
        return
    if spec.startswith((".", "/", "~")) or Path(spec).suffix:
        raise ModelSpecError(f"model path '{spec}' does not exist")
    known = ", ".join(EMBEDDED_MODELS)
    raise ModelSpecError(
        f"unknown model spec '{spec}': use an embedded alias ({known}), a hub id (org/name), "
        "a local path, openai:MODEL@URL or vllm:MODEL"
    )


def resolve_local_path(model: str) -> str:
    """Embedded aliases become their prepared checkpoint dir; other names pass through."""
    return str(prepare_embedded_model(model)) if model in EMBEDDED_MODELS else model


def load_generator(spec: str, **options: Any) -> Generator:
    """Resolve a spec to a ready Generator; `options` go to the backend's constructor."""
    parsed = parse_model_spec(spec)
    if parsed.kind == "scripted":
        from selfimprove.models.scripted import ScriptedGenerator
        from selfimprove.registry import import_user_target

        return ScriptedGenerator(import_user_target(parsed.model, "script"), name=spec)
    if parsed.kind == "openai":
        from selfimprove.models.openai_backend import OpenAIGenerator

        return OpenAIGenerator(parsed.model, parsed.base_url or "", **options)
    if parsed.kind == "vllm":
        from selfimprove.models.vllm_backend import VLLMGenerator

        return VLLMGenerator(resolve_local_path(parsed.model), name=spec, **options)
    from selfimprove.models.transformers_backend import TransformersGenerator

    return TransformersGenerator(resolve_local_path(parsed.model), name=spec, **options)
