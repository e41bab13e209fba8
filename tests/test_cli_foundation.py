"""CLI basics: help, user errors as one line with exit 2, the vLLM backend's clear error on CPU."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from selfimprove.cli import app
from selfimprove.errors import BackendUnavailable

runner = CliRunner()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "selfimprove", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "generate" in result.output and "models" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "--model", "nonsense", "--prompt", "hi"], "unknown model spec 'nonsense'"),
        (["generate", "--model", "./missing", "--prompt", "hi"], "model path './missing' does not exist"),
        (["generate", "--model", "openai:m@http://127.0.0.1:9/v1", "--prompt", "hi"], "cannot reach server"),
    ],
)
def test_user_errors_are_one_line_without_traceback(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error:")


def test_generate_with_local_model_path(tiny_model_dir):
    result = runner.invoke(app, ["generate", "-m", str(tiny_model_dir), "-p", "hi", "-p", "yo", "--max-tokens", "4",
                                 "--json"])
    assert result.exit_code == 0, result.output
    assert result.output.count('"prompt"') == 2


def test_vllm_backend_explains_missing_gpu():
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    from selfimprove.models.vllm_backend import require_vllm

    with pytest.raises(BackendUnavailable, match="CUDA GPU"):
        require_vllm()


@pytest.mark.slow
def test_embedded_model_answers_paris():
    result = run_cli("generate", "--model", "smollm2-135m", "--prompt",
                     "What is the capital of France? Answer in one word.")
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
