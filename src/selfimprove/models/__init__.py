"""Models layer: one `Generator` protocol and its backends.

- `load_generator(spec)` resolves a model spec (embedded alias, HF id or path, `openai:M@URL`,
  `vllm:M`) to a Generator. Backends import their heavy libraries lazily.
"""

from selfimprove.models.generator import Completion, Generator, SamplingParams
from selfimprove.models.spec import load_generator, parse_model_spec

__all__ = ["Completion", "Generator", "SamplingParams", "load_generator", "parse_model_spec"]
