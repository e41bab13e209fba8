"""`selfimprove env`: what this installation runs on, for bug reports and first-run checks.

Prints the versions of python and the libraries the toolkit drives (torch, transformers, trl, peft,
datasets, accelerate, huggingface_hub; vllm, openai, bitsandbytes, deepspeed when present), the
device, the cache paths and the embedded model's state. It reads installed metadata and local files
only: it never touches the network and never converts or downloads the embedded model.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import typer

LIBRARIES = ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "huggingface_hub", "vllm", "openai",
             "bitsandbytes", "deepspeed")


def package_version() -> str:
    """The installed distribution's version (the source tree's `__version__` when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("selfimprove")
    except PackageNotFoundError:
        from selfimprove import __version__

        return __version__


def library_versions() -> dict[str, str]:
    """Installed versions from package metadata (nothing is imported); "not installed" otherwise."""
    from importlib.metadata import PackageNotFoundError, version


    found = {"selfimprove": package_version(), "python": f"{platform.python_version()} ({sys.executable})"}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def device_info() -> dict[str, str]:
    """The device training and local generation would use, and whether bf16 is available."""
    import torch

    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return {"device": f"cuda x{torch.cuda.device_count()} ({names})", "cuda": str(torch.version.cuda),
                "bf16": str(torch.cuda.is_bf16_supported())}
    mps = getattr(torch.backends, "mps", None)
    return {"device": "mps" if mps is not None and mps.is_available() else "cpu", "cuda": "none", "bf16": "False"}


def cache_paths() -> dict[str, str]:
    """selfimprove's cache (embedded models, indexes) and the Hugging Face caches; offline switches."""
    from huggingface_hub import constants

    from selfimprove.cache import cache_dir

    datasets_cache = os.environ.get("HF_DATASETS_CACHE") or str(Path(constants.HF_HOME) / "datasets")
    return {"selfimprove cache": str(cache_dir()), "HF_HOME": str(constants.HF_HOME),
            "hub cache": str(constants.HF_HUB_CACHE), "datasets cache": datasets_cache,
            "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "unset")}


def embedded_model_state() -> dict[str, str]:
    """Whether the embedded default model's package is installed and its checkpoint prepared."""
    from selfimprove.errors import ModelSpecError
    from selfimprove.models.embedded import DEFAULT_MODEL, checkpoint_dir, find_gguf, is_prepared

    target = checkpoint_dir(DEFAULT_MODEL)
    try:
        source = f"installed ({find_gguf(DEFAULT_MODEL)})"
    except ModelSpecError as exc:
        source = f"missing: {exc}"
    prepared = (f"prepared ({target})" if is_prepared(DEFAULT_MODEL)
                else f"not prepared (run `selfimprove models prepare`; it will be written to {target})")
    return {"embedded model": DEFAULT_MODEL, "embedded package": source, "embedded checkpoint": prepared}


def env(as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of lines.")) -> None:
    """Versions (python, torch, transformers, trl, peft, vllm...), device, cache paths, embedded model state."""
    report = {**library_versions(), **device_info(), **cache_paths(), **embedded_model_state()}
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    width = max(len(key) for key in report)
    for key, value in report.items():
        typer.echo(f"{key.ljust(width)}  {value}")


def register(app: typer.Typer) -> None:
    app.command("env")(env)
