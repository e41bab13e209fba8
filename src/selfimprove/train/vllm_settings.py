"""Preflight checks for GRPO rollouts through vLLM (TRL's `use_vllm` / `vllm_mode` options).

The options live in the GRPO YAML's `trainer:` block and go unchanged to TRL's `GRPOConfig`:
`use_vllm: true`, `vllm_mode: colocate` (vLLM inside each training process, sharing the GPU:
`vllm_gpu_memory_utilization`, `vllm_tensor_parallel_size`, `vllm_enable_sleep_mode`) or
`vllm_mode: server` (a separate `trl vllm-serve --model M` process: `vllm_server_base_url`, or
`vllm_server_host` + `vllm_server_port`, and `vllm_server_timeout`). `check_vllm_settings` runs
BEFORE any model is loaded and turns what TRL would only discover later (no vllm package, no
CUDA, a bad mode or URL) into one clear error. It does not contact the server: in server mode
TRL waits up to `vllm_server_timeout` seconds for it and fails with its own message.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

from selfimprove.errors import BackendUnavailable, ConfigError

VLLM_MODES = ("colocate", "server")
INSTALL_HINT = "pip install 'selfimprove[vllm]' on a CUDA machine"


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def check_mode_and_url(trainer: Mapping[str, Any]) -> str:
    """The vLLM mode after checking it and, in server mode, the server URL's shape.

    >>> check_mode_and_url({"use_vllm": True, "vllm_mode": "server", "vllm_server_base_url": "http://h:8000"})
    'server'
    >>> check_mode_and_url({"vllm_mode": "remote"})
    Traceback (most recent call last):
    ...
    selfimprove.errors.ConfigError: trainer.vllm_mode: 'remote' is not one of colocate, server
    """
    mode = trainer.get("vllm_mode", "colocate")
    if mode not in VLLM_MODES:
        raise ConfigError(f"trainer.vllm_mode: {mode!r} is not one of {', '.join(VLLM_MODES)}")
    url = trainer.get("vllm_server_base_url")
    if mode == "server" and url is not None and not str(url).startswith(("http://", "https://")):
        raise ConfigError(f"trainer.vllm_server_base_url: {url!r} should look like http://HOST:8000")
    return mode


def check_vllm_settings(trainer: Mapping[str, Any], vllm_present: bool | None = None,
                        cuda_present: bool | None = None) -> str | None:
    """None when vLLM is off; otherwise the mode, after checking vllm + CUDA are there (clear error if not).

    >>> check_vllm_settings({"learning_rate": 1e-5}) is None
    True
    >>> check_vllm_settings({"use_vllm": True}, vllm_present=True, cuda_present=True)
    'colocate'
    """
    if not trainer.get("use_vllm"):
        return None
    mode = check_mode_and_url(trainer)
    vllm_present = vllm_installed() if vllm_present is None else vllm_present
    cuda_present = cuda_available() if cuda_present is None else cuda_present
    missing = [name for name, ok in (("the vllm package", vllm_present), ("a CUDA GPU", cuda_present)) if not ok]
    if missing:
        raise BackendUnavailable(
            f"trainer.use_vllm=true (vllm_mode={mode}) needs {' and '.join(missing)}: {INSTALL_HINT}, "
            "or set trainer.use_vllm=false to generate with transformers")
    return mode
