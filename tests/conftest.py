"""Shared fixtures: a tiny offline model built once per session, paths to the shared test data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]

# Names that run code: the tests' own modules (recipe_scripts, test_rewards' tasks, ...) are named as
# "module:attr" in specs and rewards, so they are allowed explicitly, as a user would with
# --allow-import (docs/reliability.md, "Names that run code"). Subprocesses inherit it.
_TEST_MODULES = sorted(p.stem for p in Path(__file__).parent.glob("*.py") if p.stem != "conftest")
os.environ["SELFIMPROVE_ALLOW_IMPORT"] = ",".join(
    filter(None, [os.environ.get("SELFIMPROVE_ALLOW_IMPORT", ""), *_TEST_MODULES, "tests"]))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama + ChatML tokenizer saved to disk once per test session."""
    from selfimprove.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` beside the repo (or $SELFIMPROVE_SHARED_DATA)."""
    path = Path(os.environ.get("SELFIMPROVE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"shared test data not found at {path}")
    return path
